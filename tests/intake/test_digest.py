"""RequestDigest: one digest for a request however it is written or split, another for anything sent differently."""

from __future__ import annotations

from typing import Any

from notifyq.intake import BatchIntake, RequestDigest

from .helpers import NOW, UK, US, sms


def digest(payload: dict[str, Any], block: int = 2) -> str:
    """The digest the producer stores for ``payload``: its recipients added as intake accepts them, in blocks."""
    intake = BatchIntake(payload, now=NOW)
    accepted = list(intake.accepted())
    intake.finish()
    found = RequestDigest(payload)
    for start in range(0, len(accepted), block):
        found.add(accepted[start : start + block])
    return found.hexdigest()


BASE = sms(body="Hi {n}", recipients=[{"to": "+14155552000", "vars": {"n": "5"}}, {"to": UK, "vars": {"n": "x"}}])


def test_the_same_request_written_differently_digests_alike() -> None:
    rewritten = {
        "recipients": [{"vars": {"n": 5}, "to": "+1 415 555 2000"}, {"to": "+44 20 7946 0018", "vars": {"n": "x"}}],
        "body": "Hi {n}",
        "metadata": None,
        "from": BASE["from"],
        "channel": "sms",
        "idempotency_key": "k-1",
    }
    assert digest(rewritten) == digest(BASE)
    assert len(digest(BASE)) == 64
    assert set(digest(BASE)) <= set("0123456789abcdef")


def test_where_the_blocks_split_changes_nothing() -> None:
    payload = sms(body="Hi {n}", recipients=[{"to": to, "vars": {"n": str(i)}} for i, to in enumerate([US, UK])])
    assert len({digest(payload, block) for block in (1, 2, 3)}) == 1
    empty_block = RequestDigest(payload)
    empty_block.add([])
    assert empty_block.hexdigest() == RequestDigest(payload).hexdigest()


def test_a_later_copy_of_a_number_changes_nothing() -> None:
    assert digest(sms(recipients=[US, UK, "+1 (415) 555-0100"])) == digest(sms(recipients=[US, UK]))


def test_anything_sent_differently_digests_differently() -> None:
    changed = [
        BASE,
        {**BASE, "body": "Hi {n}!"},
        {**BASE, "priority": "urgent"},
        {**BASE, "recipients": list(reversed(BASE["recipients"]))},
        {**BASE, "recipients": [*BASE["recipients"], {"to": US, "vars": {"n": "x"}}]},
        {**BASE, "recipients": [{"to": "+14155552000", "vars": {"n": "6"}}, BASE["recipients"][1]]},
    ]
    assert len({digest(payload) for payload in changed}) == len(changed)
