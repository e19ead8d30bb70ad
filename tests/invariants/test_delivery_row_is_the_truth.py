"""Invariants 1 and 10: the delivery row is the truth; Redis holds only work; nothing non-final is forgotten.

Redis loses its data in the middle of a batch: some deliveries are accepted by Twilio, some have their
create in flight at a slow Twilio, two wait for a second look after a create whose answer was lost,
and the rest are pending. ``notifyq requeue`` then finds in the store every delivery notifyq still
owes and queues it again, and the worker (which kept running) finishes them: every delivery ends
final, with one message each at Twilio. Callbacks received but not yet applied were in Redis too
(its stream, which production runs with ``appendonly yes``); the reconciler recovers their statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from helpers import people, sms_batch, wait_until
from notifyq import statuses as st
from notifyq.client import Client
from notifyq.queue.redis_server import EmbeddedRedis
from notifyq.simulator import SimulatorConfig
from notifyq.testing import API_TOKEN, local_stack
from notifyq.worker import NotifyqWorker, reconcile_once, requeue_with

from .helpers import SENDER

RATE = 20.0  # messages a second: the batch takes about three seconds to go out
LATENCY_S = 0.4  # Twilio holds each create this long: some are always in flight
GRACE_S = 2.0  # an unanswered create is looked up after this (longer than a create can be in flight)
LOST = ["+14155557101", "+14155557102"]  # first in the batch: created, unanswered, no callbacks


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A redis-server of this test's own: it is flushed whole."""
    server = EmbeddedRedis()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.slow
async def test_redis_losing_its_data_mid_batch_loses_nothing_and_sends_each_once(
    tmp_path: Path, own_redis: str, database_url: str, sim_config: SimulatorConfig
) -> None:
    sim_config.latency_s = LATENCY_S
    sim_config.drop_after_create_to = list(LOST)
    sim_config.no_callbacks_to = list(LOST)
    recipients: list[dict[str, object]] = [{"to": n, "vars": {"name": "L", "code": "1"}} for n in LOST]
    recipients += people(58)
    async with (
        local_stack(
            data_dir=tmp_path,
            redis_url=own_redis,
            database_url=database_url,
            sim_config=sim_config,
            run_worker=False,
            pacing={"senders": {SENDER: RATE}},
            worker={"callback_grace_s": GRACE_S, "poll_delay_s": 0.01, "unavailable_retry_s": 0.2},
        ) as stack,
        Client(stack.api_url, token=API_TOKEN) as client,
    ):
        sim, store = stack.simulator, stack.worker_app.store
        assert sim is not None
        accepted = await client.submit(sms_batch(recipients))
        batch_id = accepted["id"]
        worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run(drain_s=1))
        try:

            async def partly_sent() -> bool:
                rows = await store.list_deliveries(batch_id)
                by_status = Counter(r.status for r in rows)
                # the lost ones were created first: by the time five others are answered, the worker has long
                # seen their connections close (and given each a job that comes back after the grace period)
                created = {m.to for m in sim.messages}
                lost = [r for r in rows if r.to_number in LOST and r.to_number in created]
                unanswered = [r for r in lost if r.status == st.DISPATCHING and r.twilio_sid is None]
                answered = sum(1 for r in rows if r.twilio_sid is not None)
                in_flight = sum(sim.in_flight.values())
                return len(unanswered) == len(LOST) and answered >= 5 and in_flight > 0 and by_status[st.PENDING] >= 10

            await wait_until(partly_sent, "a partly sent batch")
            redis = Redis.from_url(own_redis)
            try:
                await redis.flushall()  # the jobs, the pacer's state, the callback stream: all gone
            finally:
                await redis.aclose()
            owed = Counter(r.status for r in await store.list_deliveries(batch_id) if not st.is_final("sms", r.status))
            result = await requeue_with(stack.worker_app.store, stack.worker_app.jobs, stack.settings)
            assert result["requeued"] >= owed[st.PENDING] > 0

            # callbacks that were in the Redis stream, not yet applied, went with it: the reconciler asks
            # Twilio about deliveries whose status stays put past a deadline (shortened here)
            stack.settings.reconcile.stale_after_s = dict.fromkeys(stack.settings.reconcile.stale_after_s, 1.0)
            stack.settings.reconcile.requests_per_minute = 6000.0

            async def all_final() -> bool:
                await stack.inbox.drain()
                await reconcile_once(stack.worker_app)
                return bool((await client.batch(batch_id))["done"])

            await wait_until(all_final, "every delivery to be final")
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        status = await client.batch(batch_id)
        rows = await store.list_deliveries(batch_id)
    assert owed[st.DISPATCHING] > 0  # Redis went while creates were in flight or unanswered
    assert status["by_status"] == {"delivered": 60}
    sends = sim.sends_by_callback()
    assert len(sends) == 60
    assert set(sends.values()) == {1}  # one message per delivery
    made = {m.to: m.sid for m in sim.messages}
    assert {r.to_number: r.twilio_sid for r in rows} == made
