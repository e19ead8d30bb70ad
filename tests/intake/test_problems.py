"""Problems: all reported at once, recipient problems listed up to a cap and counted, what was sent quoted short."""

from __future__ import annotations

from typing import Any

from notifyq.errors import Problem
from notifyq.intake.problems import MAX_RECIPIENT_PROBLEMS, Problems

from .helpers import US, call, problem, problems, sms


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        sms(
            channel="sms",
            body="{bad.attr}",
            priority="high",
            validity_s=0,
            recipients=["+1415", "not a number", US],
            idempotency_key="",
        )
    )
    fields = [p.field for p in found]
    assert fields == ["body", "idempotency_key", "priority", "validity_s", "recipients[0]", "recipients[1]"]


def test_recipient_problems_are_capped_with_a_count() -> None:
    found = problems(sms(channel="fax", recipients=[f"bad {i}" for i in range(250)]))
    assert found[0].field == "channel"
    assert [p.index for p in found[1:101]] == list(range(100))
    assert found[101] == Problem("recipients", "150 more recipient problem(s) not listed")
    assert len(found) == 102


def test_unlisted_problems_are_still_counted_exactly() -> None:
    raws = ["+1 (415) 555-0100", "+44 (0)20 7946 0018", "+1 099 555 0100", "+44 1234", "nope", "+99912345678"]
    found = problems(sms(recipients=["bad"] * 100 + raws))
    assert found[-1].reason == "4 more recipient problem(s) not listed"


def test_problems_quote_what_was_sent_shortened() -> None:
    long_name = "x" * 10_000
    found = problem(sms(**{long_name: 1}))
    assert len(found.field) < 100
    assert len(found.reason) < 100
    deep: Any = "completed"
    for _ in range(100_000):
        deep = [deep]
    found = problem(call(status_callback_event=["initiated", deep, "y" * 10_000]))
    assert found.field == "status_callback_event"
    assert len(found.reason) < 300


# -- the collector


def test_nothing_found_lists_nothing() -> None:
    found = Problems()
    assert (found.found, found.listing, found.listed()) == (False, True, [])


def test_a_problem_with_the_whole_list_is_listed_where_the_list_is_read() -> None:
    found = Problems()
    found.add("channel", "is required")
    found.mark_list_place()
    found.add("priority", "must be one of 'bulk', 'urgent'")
    found.recipient("recipients[0]", "is empty", 0)
    found.add_list_problem("needs at least one recipient")
    assert found.listed() == [
        Problem("channel", "is required"),
        Problem("recipients", "needs at least one recipient"),
        Problem("priority", "must be one of 'bulk', 'urgent'"),
        Problem("recipients[0]", "is empty", 0),
    ]


def test_recipient_problems_past_the_cap_are_counted_not_listed() -> None:
    found = Problems()
    for i in range(MAX_RECIPIENT_PROBLEMS + 5):
        assert found.listing == (i < MAX_RECIPIENT_PROBLEMS)
        found.recipient(f"recipients[{i}]", "is empty", i)
    listed = found.listed()
    assert [p.index for p in listed[:-1]] == list(range(MAX_RECIPIENT_PROBLEMS))
    assert listed[-1] == Problem("recipients", "5 more recipient problem(s) not listed")


def test_a_refused_list_drops_the_problems_of_its_recipients() -> None:
    found = Problems()
    found.mark_list_place()
    for i in range(3):
        found.recipient(f"recipients[{i}]", "is empty", i)
    found.refuse_list("has 11 recipients; at most 10 per batch")
    assert found.found
    assert found.listed() == [Problem("recipients", "has 11 recipients; at most 10 per batch")]
