"""The dispatcher's runs end as values: what it did with each delivery, and when a job comes back for the rest."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from helpers import SENDER, people, sms_batch
from notifyq.api.app import STATE
from notifyq.testing import LocalStack
from notifyq.worker import ChunkRun, Deferred, Outcome


async def _submitted(stack: LocalStack, batch: dict[str, object]) -> tuple[str, list[str]]:
    producer = stack.app[STATE].require_producer()
    submitted = await producer.submit(batch, enqueue="none")
    rows = await stack.worker_app.store.list_deliveries(submitted.batch.id, limit=100)
    return submitted.batch.id, [r.id for r in rows]


async def test_a_chunk_before_its_batchs_send_at_is_deferred_to_it_untouched(stack: LocalStack) -> None:
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    batch_id, ids = await _submitted(stack, sms_batch(people(2), send_at=send_at.isoformat()))
    ran = await stack.worker_app.dispatcher.send_chunk(batch_id, ids, [1] * len(ids))
    assert isinstance(ran, Deferred)
    assert ran.until == send_at.timestamp()
    assert {r.status for r in await stack.worker_app.store.list_deliveries(batch_id, limit=100)} == {"pending"}


async def test_a_chunk_sends_what_its_sender_has_slots_for_and_owes_the_rest(stack: LocalStack) -> None:
    await stack.worker_app.pacer.admin.set_sender_rate(SENDER, 2.0)  # a few slots within the pacer's horizon
    batch_id, ids = await _submitted(stack, sms_batch(people(10)))
    started = time.time()
    ran = await stack.worker_app.dispatcher.send_chunk(batch_id, ids, [1] * len(ids))
    assert isinstance(ran, ChunkRun)
    assert ran.owed is not None
    sent = len(ran.done)
    assert 1 <= sent < len(ids)
    assert {d.outcome for d in ran.done} == {Outcome.SENT}
    # the rest, with their costs, and the time the pacer named for them
    assert len(ran.owed.delivery_ids) == len(ids) - sent
    assert (ran.owed.costs, ran.owed.lane) == ([1] * (len(ids) - sent), "bulk")
    assert ran.owed.until > started
    rows = {r.id: r.status for r in await stack.worker_app.store.list_deliveries(batch_id, limit=100)}
    assert {d for d, status in rows.items() if status == "pending"} == set(ran.owed.delivery_ids)  # not claimed
