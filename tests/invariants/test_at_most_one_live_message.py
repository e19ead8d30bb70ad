"""Invariant 2: at most one live message per delivery.

A create that got no answer may have sent. It is never sent again blindly: its status callback settles
it, or it is looked up in Twilio's message list before any second attempt. These tests take the
callback away (the simulator sends none for the recipient), so only the look-up can settle the
delivery: it must end with the SID of the message the simulator made, after exactly one create.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from redis.asyncio import Redis

from helpers import people, settings_env, settle, sms_batch, wait_until
from notifyq.client import Client
from notifyq.queue.arq_compat import IN_PROGRESS_KEY_PREFIX
from notifyq.simulator import Simulator
from notifyq.testing import API_TOKEN, LocalStack

LOST = "+14155557001"  # the recipient whose create the simulator answers with nothing, and sends no callbacks for


def _creates_to(sim: Simulator, number: str) -> list[str]:
    return [m.sid for m in sim.messages if m.to == number]


async def _answer_after_the_first_create(sim: Simulator, number: str) -> None:
    """Lose only the first answer: a second create, if one is made, is answered (and so counted, not looped)."""
    await wait_until(lambda: _creates_to(sim, number), "the first create")
    sim.config.drop_after_create_to = []


async def test_a_create_whose_answer_and_callbacks_are_lost_is_adopted_from_twilios_list(stack: LocalStack) -> None:
    sim = stack.simulator
    assert sim is not None
    sim.config.drop_after_create_to = [LOST]  # created, then the connection closes: no answer...
    sim.config.no_callbacks_to = [LOST]  # ...and no callback either
    recipients: list[dict[str, object]] = [*people(2), {"to": LOST, "vars": {"name": "L", "code": "7"}}]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(recipients))
        watcher = asyncio.create_task(_answer_after_the_first_create(sim, LOST))
        try:
            status = await settle(stack, client, accepted["id"], timeout_s=10)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    rows = {r.to_number: r for r in await stack.worker_app.store.list_deliveries(accepted["id"])}
    made = _creates_to(sim, LOST)
    assert len(made) == 1, f"{len(made)} creates for one delivery"
    assert sim.counters.list_requests >= 1  # the worker asked Twilio's list
    assert rows[LOST].twilio_sid == made[0]  # and adopted what it found there
    assert status["by_status"] == {"delivered": 3}
    assert sorted(sim.sends_by_callback().values()) == [1, 1, 1]


async def test_a_worker_killed_before_the_answer_leaves_the_send_to_the_look_up(stack: LocalStack) -> None:
    sim = stack.simulator
    assert sim is not None
    assert stack.settings.redis_url is not None
    sim.config.answer_delay_s = 60.0  # the message is made at once; its 201 would come a minute later
    sim.config.no_callbacks_to = [LOST]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        lost: dict[str, object] = {"to": LOST, "vars": {"name": "L", "code": "7"}}
        accepted = await client.submit(sms_batch([lost]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifyq", "worker", env=settings_env(stack.settings)
        )
        try:
            await wait_until(lambda: _creates_to(sim, LOST) and sum(sim.in_flight.values()) == 1, "the create")
        finally:
            proc.send_signal(signal.SIGKILL)  # the request was written and the message made; no answer read
            await proc.wait()
        sim.config.answer_delay_s = 0.0
        [row] = await stack.worker_app.store.list_deliveries(accepted["id"])
        assert (row.status, row.twilio_sid) == ("dispatching", None)
        # arq frees a dead worker's job once its in-progress key expires; expire it now instead of waiting
        redis = Redis.from_url(stack.settings.redis_url)
        try:
            for key in await redis.keys(IN_PROGRESS_KEY_PREFIX + "*"):
                await redis.delete(key)
        finally:
            await redis.aclose()
        status = await settle(stack, client, accepted["id"], timeout_s=10)
    made = _creates_to(sim, LOST)
    assert len(made) == 1, f"{len(made)} creates for one delivery"
    assert sim.counters.list_requests >= 1
    assert (await stack.worker_app.store.get_delivery(row.id)).twilio_sid == made[0]
    assert status["by_status"] == {"delivered": 1}
