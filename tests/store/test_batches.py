"""Batches: created with their deliveries, found by id or idempotency key, counted, marked enqueued, canceled."""

from __future__ import annotations

import pytest

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.ids import new_ids
from notifyq.statuses import Channel
from notifyq.store import Store

from .helpers import ACCOUNT, batch_row, create_deliveries


async def test_a_batch_is_found_by_its_idempotency_key_and_by_id(store: Store) -> None:
    batch = {**batch_row(), "idempotency_key": "welcome-1", "request_hash": "h" * 64}
    created = await store.create_batch(batch, [[(new_ids(1)[0], "+14155550100", None)]])
    assert (created.id, created.channel, created.total, created.request_hash) == (batch["id"], Channel.SMS, 1, "h" * 64)
    assert await store.find_batch_by_key("welcome-1") == created
    assert await store.get_batch(batch["id"]) == created
    assert await store.find_batch_by_key("welcome-2") is None
    with pytest.raises(NotFound):
        await store.get_batch(new_ids(1)[0])


async def test_a_batchs_deliveries_are_counted_by_status_and_error_code(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101", "+14155550102"])
    batch_id = (await store.get_delivery(ids[0])).batch_id
    await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT), (ids[1], ACCOUNT)], accepted=[], now=10.0)
    failed = {"at": 11.0, "reason": "unknown destination"}
    assert await store.record_outcome(
        ids[0], channel=Channel.SMS, status=st.FAILED, error_code=21211, error_message="bad", event=failed
    )
    assert await store.batch_counts(batch_id) == ({st.FAILED: 1, st.DISPATCHING: 1, st.PENDING: 1}, {"21211": 1})


async def test_a_batch_is_unenqueued_until_marked_and_canceled_batches_are_left_out(store: Store) -> None:
    first, second = batch_row(created_at=5.0), batch_row(created_at=5.0)
    for batch in (first, second):
        await store.create_batch(batch, [[(new_ids(1)[0], "+14155550100", None)]])
    assert sorted(await store.unenqueued_batches(created_before=6.0)) == sorted([first["id"], second["id"]])
    assert await store.unenqueued_batches(created_before=5.0) == []  # not older than the moment asked for
    await store.mark_enqueued(first["id"])
    assert (await store.get_batch(first["id"])).enqueued_at is not None
    await store.cancel_batch(second["id"])
    assert await store.unenqueued_batches(created_before=6.0) == []


async def test_cancel_takes_the_unclaimed_deliveries_and_leaves_the_sends_in_flight(store: Store) -> None:
    ids = await create_deliveries(store, ["+14155550100", "+14155550101", "+14155550102"])
    batch_id = (await store.get_delivery(ids[0])).batch_id
    await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=10.0)
    await store.record_outcome(
        ids[1], channel=Channel.SMS, status=st.RETRYING, error_code=None, error_message=None,
        event={"at": 11.0}, only_from=(st.PENDING,),
    )  # fmt: skip
    assert await store.cancel_batch(batch_id) == 2  # the pending one and the retrying one
    rows = {d.id: d for d in await store.get_deliveries(ids)}
    assert [rows[d].status for d in ids] == [st.DISPATCHING, st.CANCELED, st.CANCELED]
    assert all(rows[d].status_rank == st.FINAL_RANK and rows[d].final_at is not None for d in ids[1:])
    canceled_at = (await store.get_batch(batch_id)).canceled_at
    assert canceled_at is not None
    assert await store.cancel_batch(batch_id) == 0  # again: nothing left to cancel, the first time kept
    assert (await store.get_batch(batch_id)).canceled_at == canceled_at
