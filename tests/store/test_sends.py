"""The send path's writes: claims, 201s and their attempt events in one group-commit flush, on SQLite and PostgreSQL.

The 201s and events go to the driver as SQL compiled once (``store.driver_sql``), bypassing SQLAlchemy's
type processing: these tests read every field back through Core.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from notifyq import statuses as st
from notifyq.statuses import Channel
from notifyq.store import Store, WriteCoalescer, accepted_send

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


async def test_two_claims_of_one_delivery_in_one_flush_give_it_to_one_of_them(store: Store) -> None:
    """A job that runs twice at once asks for the same deliveries twice; the group commit may put both
    requests in one flush. The guarded UPDATE claims each row once: one requester gets it, not both."""
    ids = await create_deliveries(store, ["+14155550100", "+14155550101"])
    writes = WriteCoalescer(store)
    try:
        first, second = await asyncio.gather(writes.claim_many(ids, ACCOUNT), writes.claim_many(ids, ACCOUNT))
    finally:
        await writes.close()
    assert writes.flushes == 1  # both requests in one flush
    for got in zip(first, second, strict=True):
        assert sum(claim is not None for claim in got) == 1, got


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


async def test_a_claim_is_taken_once_and_a_201_records_the_sid(store: Store) -> None:
    [did] = await create_deliveries(store, ["+14155550100"])
    claim = await store.claim(did, now=50.0)
    assert claim is not None
    assert (claim.id, claim.attempts, claim.dispatched_at) == (did, 1, 50.0)
    assert await store.claim(did) is None  # someone has it
    event = {"at": 51.0, "status": "queued", "http_status": 201}
    await store.record_accepted(did, channel=Channel.SMS, sid="SM" + "d" * 32, status="queued", segments=3, event=event)
    row = await store.get_delivery(did)
    assert (row.status, row.twilio_sid, row.segments) == ("queued", "SM" + "d" * 32, 3)


async def test_an_outcome_moves_only_a_delivery_in_the_states_it_comes_from(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101"])
    await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=1.0)
    failed = {"at": 2.0, "reason": "21211"}
    moved = await store.record_outcome(
        ids[0], channel=Channel.SMS, status=st.FAILED, error_code=21211, error_message="bad To", event=failed
    )
    assert moved
    row = await store.get_delivery(ids[0])
    assert (row.status, row.status_rank, row.final_at, row.error_code, row.error_message) == (
        st.FAILED, st.FINAL_RANK, 2.0, 21211, "bad To",
    )  # fmt: skip
    assert [(e["kind"], e["status"], e["error_code"]) for e in await store.events(ids[0])] == [
        ("state", st.FAILED, 21211)
    ]
    again = {"at": 3.0, "reason": "expired"}
    kw = {"channel": Channel.SMS, "error_code": None, "error_message": None}
    assert not await store.record_outcome(ids[0], status=st.EXPIRED, event=again, **kw)  # not dispatching any more
    assert not await store.record_outcome(ids[1], status=st.EXPIRED, event=again, **kw)  # never claimed
    assert (await store.get_delivery(ids[0])).status == st.FAILED
    assert await store.record_outcome(ids[1], status=st.SUPPRESSED, event=again, only_from=(st.PENDING,), **kw)
    assert (await store.get_delivery(ids[1])).status == st.SUPPRESSED


async def test_a_retry_of_a_canceled_batch_is_canceled_and_a_refund_gives_the_attempt_back(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101"])
    await store.flush_send_writes(claim_ids=[(d, ACCOUNT) for d in ids], accepted=[], now=1.0)
    kw = {"channel": Channel.SMS, "status": st.RETRYING, "error_code": 20429, "error_message": "too many"}
    assert await store.record_outcome(ids[0], event={"at": 2.0}, refund_attempt=True, **kw)
    row = await store.get_delivery(ids[0])
    assert (row.status, row.status_rank, row.final_at, row.attempts) == (st.RETRYING, 1, None, 0)
    await store.cancel_batch(row.batch_id)
    assert await store.record_outcome(ids[1], event={"at": 3.0}, **kw)
    row = await store.get_delivery(ids[1])
    assert (row.status, row.status_rank, row.final_at, row.attempts) == (st.CANCELED, st.FINAL_RANK, 3.0, 1)
