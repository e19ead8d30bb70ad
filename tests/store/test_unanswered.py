"""Unanswered attempts: found once they have been quiet long enough, taken over by exactly one worker,
failed when no new attempt may follow, and canceled (never sent again) when their batch was canceled."""

from __future__ import annotations

import asyncio

from notifyq import statuses as st
from notifyq.statuses import Channel
from notifyq.store import Store, accepted_send

from .helpers import ACCOUNT, create_deliveries

NUMBERS = ["+14155550100", "+14155550101", "+14155550102"]


async def _dispatched(store: Store, now: float) -> list[str]:
    """Three deliveries claimed at ``now``; the first one answered (it has a SID)."""
    ids = await create_deliveries(store, NUMBERS, variables={"code": "1"})
    await store.flush_send_writes(claim_ids=[(d, ACCOUNT) for d in ids], accepted=[], now=now)
    params = accepted_send(ids[0], channel=Channel.SMS, sid="SM" + "a" * 32, status="queued", segments=1)
    await store.flush_send_writes(claim_ids=[], accepted=[(params, {"at": now})], now=now)
    return ids


async def test_attempts_without_an_answer_are_listed_once_quiet_long_enough(store: Store) -> None:
    ids = await _dispatched(store, now=100.0)
    batch_id = (await store.get_delivery(ids[0])).batch_id
    assert await store.unanswered(older_than=100.0, limit=10) == []  # updated at 100: not older than that
    rows = await store.unanswered(older_than=101.0, limit=10)
    assert sorted(rows) == sorted((d, batch_id, seq, {"code": "1"}) for seq, d in enumerate(ids) if seq > 0)
    assert len(await store.unanswered(older_than=101.0, limit=1)) == 1


async def test_exactly_one_worker_takes_over_an_unanswered_attempt(store: Store) -> None:
    ids = await _dispatched(store, now=100.0)
    assert not await store.reclaim_ambiguous(ids[1], 99.0)  # not the attempt that is in flight
    assert not await store.reclaim_ambiguous(ids[0], 100.0)  # answered: it has a SID
    won = await asyncio.gather(*(store.reclaim_ambiguous(ids[1], 100.0, now=200.0) for _ in range(4)))
    assert won.count(True) == 1
    row = await store.get_delivery(ids[1])
    assert (row.status, row.attempts, row.dispatched_at) == (st.DISPATCHING, 2, 200.0)
    assert not await store.reclaim_ambiguous(ids[1], 100.0)  # the old attempt is over


async def test_an_unanswered_attempt_of_a_canceled_batch_is_canceled_not_taken_over(store: Store) -> None:
    ids = await _dispatched(store, now=100.0)
    assert not await store.cancel_ambiguous(ids[1], 100.0)  # its batch goes on: nothing to cancel
    await store.cancel_batch((await store.get_delivery(ids[0])).batch_id)
    assert not await store.reclaim_ambiguous(ids[1], 100.0)
    assert await store.cancel_ambiguous(ids[1], 100.0)
    row = await store.get_delivery(ids[1])
    assert (row.status, row.status_rank, row.attempts) == (st.CANCELED, st.FINAL_RANK, 1)
    assert [(e["kind"], e["status"]) for e in await store.events(ids[1])] == [("state", st.CANCELED)]
    assert not await store.cancel_ambiguous(ids[1], 100.0)  # once
    assert not await store.cancel_ambiguous(ids[0], 100.0)  # answered: Twilio holds it


async def test_an_unanswered_attempt_that_may_not_be_tried_again_is_failed_once(store: Store) -> None:
    ids = await _dispatched(store, now=100.0)
    reason = "unanswered after the last attempt"
    assert not await store.fail_unanswered(ids[1], 99.0, reason)  # not the attempt that is in flight
    assert not await store.fail_unanswered(ids[0], 100.0, reason)  # answered: Twilio holds it
    assert await store.fail_unanswered(ids[1], 100.0, reason)
    row = await store.get_delivery(ids[1])
    assert (row.status, row.status_rank, row.error_code, row.error_message) == (st.FAILED, st.FINAL_RANK, None, reason)
    assert row.final_at is not None
    assert [(e["kind"], e["status"], e["reason"]) for e in await store.events(ids[1])] == [("state", st.FAILED, reason)]
    assert not await store.fail_unanswered(ids[1], 100.0, reason)  # once
    await store.cancel_batch(row.batch_id)
    assert not await store.fail_unanswered(ids[2], 100.0, reason)  # a canceled batch's is canceled instead
    assert await store.cancel_ambiguous(ids[2], 100.0)


async def test_a_waiting_send_restarts_its_own_attempt_and_cannot_touch_one_taken_over(store: Store) -> None:
    ids = await _dispatched(store, now=100.0)
    assert await store.restamp_attempt(ids[1], 100.0, 150.0)  # still its attempt: it starts again at 150
    assert not await store.restamp_attempt(ids[1], 100.0, 160.0)  # the attempt of 100 is over
    assert not await store.restamp_attempt(ids[0], 100.0, 150.0)  # answered: it has a SID
    # another worker takes the attempt of 150 over; the first may not hand it back to retrying
    assert await store.reclaim_ambiguous(ids[1], 150.0, now=200.0)
    event = {"at": 201.0, "reason": "not sent: its turn did not come"}
    handed_back = await store.record_outcome(
        ids[1], channel=Channel.SMS, status=st.RETRYING, error_code=None, error_message=None,
        event=event, refund_attempt=True, attempt_at=150.0,
    )  # fmt: skip
    assert not handed_back
    row = await store.get_delivery(ids[1])
    assert (row.status, row.dispatched_at, row.attempts) == (st.DISPATCHING, 200.0, 2)
    assert await store.record_outcome(
        ids[1], channel=Channel.SMS, status=st.RETRYING, error_code=None, error_message=None,
        event=event, refund_attempt=True, attempt_at=200.0,
    )  # fmt: skip
    assert (await store.get_delivery(ids[1])).status == st.RETRYING
