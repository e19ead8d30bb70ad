"""The send path's writes: claims, 201s and their attempt events in one group-commit flush, on SQLite and PostgreSQL.

The 201s and events go to the driver as SQL compiled once (``store.driver_sql``), bypassing SQLAlchemy's
type processing: these tests read every field back through Core.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from notifyq import statuses as st
from notifyq.statuses import Channel
from notifyq.store import Store, accepted_send

from .helpers import ACCOUNT, create_deliveries


async def test_claims_accepts_and_suppressions_in_one_flush(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101", "+14155550102"])
    await store.suppress(ACCOUNT, "+14155550101", source="test")
    claimed, suppressed = await store.flush_send_writes(claim_ids=[(d, ACCOUNT) for d in ids], accepted=[], now=100.0)
    assert sorted(claimed) == sorted(ids)
    assert all(c.attempts == 1 and c.dispatched_at == 100.0 for c in claimed.values())
    assert suppressed == {(ACCOUNT, "+14155550101")}
    # a second claim of the same deliveries (the job ran twice) claims nothing; the first one's 201 is
    # recorded in the same transaction
    params = accepted_send(ids[0], channel=Channel.SMS, sid="SM" + "a" * 32, status="queued", segments=1)
    again, _ = await store.flush_send_writes(
        claim_ids=[(d, ACCOUNT) for d in ids],
        accepted=[(params, {"at": 101.0, "status": "queued", "http_status": 201, "reason": "created"})],
        now=101.0,
    )
    assert again == {}
    row = await store.get_delivery(ids[0])
    assert (row.status, row.twilio_sid, row.segments, row.attempts) == ("queued", "SM" + "a" * 32, 1, 1)
    assert [(e["kind"], e["status"], e["http_status"]) for e in await store.events(ids[0])] == [
        ("attempt", "queued", 201)
    ]
    assert (await store.get_delivery(ids[1])).status == st.DISPATCHING


async def test_a_flush_keeps_every_field_of_the_claim_and_the_attempt_event(store: Store) -> None:
    """The accept and event rows go to the driver as compiled SQL: their values must arrive as Core would write them."""
    ids = await create_deliveries(store, ["+14155550100"], variables={"name": "Zoë", "code": "0042"})
    claimed, _ = await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=100.0)
    claim = claimed[ids[0]]
    variables = {"name": "Zoë", "code": "0042"}
    assert (claim.channel, claim.to_number, claim.variables) == (Channel.SMS, "+14155550100", variables)
    sent = {"params": [["To", "+14155550100"], ["Body", "Hi Zoë, «0042»"]], "attempt": 1}
    event = {
        "at": 101.5, "status": "queued", "http_status": 201, "duration_ms": 12.25, "applied": True,
        "reason": "created SM1", "data": sent,
    }  # fmt: skip
    params = accepted_send(ids[0], channel=Channel.SMS, sid="SM" + "c" * 32, status="queued", segments=2)
    await store.flush_send_writes(claim_ids=[], accepted=[(params, event)], now=101.5)
    [stored] = await store.events(ids[0])
    assert {k: stored[k] for k in event} == event
    assert (stored["kind"], stored["error_code"]) == ("attempt", None)
    row = await store.get_delivery(ids[0])
    assert (row.status, row.status_rank, row.segments, row.error_code) == (
        "queued", st.rank(Channel.SMS, "queued"), 2, None,
    )  # fmt: skip


async def test_a_failed_flush_writes_nothing(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101", "+14155550102"])
    sid = "SM" + "b" * 32

    def accept(delivery_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return accepted_send(delivery_id, channel=Channel.SMS, sid=sid, status="queued", segments=1), {"at": 1.0}

    await store.flush_send_writes(claim_ids=[(ids[1], ACCOUNT), (ids[2], ACCOUNT)], accepted=[], now=1.0)
    await store.flush_send_writes(claim_ids=[], accepted=[accept(ids[1])], now=2.0)
    with pytest.raises(IntegrityError):  # a SID is unique: the second 201 with it fails, after the claim
        await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[accept(ids[2])], now=3.0)
    assert (await store.get_delivery(ids[0])).status == st.PENDING  # the claim was rolled back with it
    assert (await store.get_delivery(ids[2])).twilio_sid is None
    assert await store.events(ids[2]) == []
    claimed, _ = await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=4.0)
    assert list(claimed) == [ids[0]]
