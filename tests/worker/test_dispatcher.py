"""The dispatcher's runs end as values: what it did with each delivery, and when a job comes back for the rest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import SENDER, people, sms_batch, wait_until
from notifyq.api.app import STATE
from notifyq.testing import LocalStack
from notifyq.worker import ChunkRun, Deferred, Done, Outcome
from notifyq.worker.turns import Turn


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


async def _send_held_at_its_turn(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, asyncio.Event, asyncio.Task[Any]]:
    """One delivery's send job, claimed and then held before its turn at the pacer until the event is set.

    The callback grace is shorter than a request may take: a send that goes out later than the grace after
    its claim re-checks the claim first. The send is held until its claim is older than that.
    """
    monkeypatch.setattr(stack.worker_app.dispatcher.cfg, "callback_grace_s", 0.2)
    batch_id, (delivery_id,) = await _submitted(stack, sms_batch(people(1)))
    gate = asyncio.Event()
    take = Turn.take

    async def held(turn: Turn) -> None:
        await gate.wait()
        await take(turn)

    monkeypatch.setattr(Turn, "take", held)
    sending = asyncio.create_task(stack.worker_app.dispatcher.send(delivery_id, batch_id, 1))
    store = stack.worker_app.store

    async def claimed() -> bool:
        return (await store.get_delivery(delivery_id)).status == "dispatching"

    await wait_until(claimed, "the delivery claimed")
    claimed_at = (await store.get_delivery(delivery_id)).dispatched_at or 0.0
    await wait_until(lambda: time.time() > claimed_at + 0.25, "the claim to be older than the grace")
    return delivery_id, gate, sending


async def test_a_send_whose_attempt_was_taken_over_while_it_waited_for_its_turn_does_not_go(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 2: while a claimed send waits for its turn, its attempt looks unanswered once the grace is
    over; another worker finds nothing in Twilio's list and takes it over to send again. The first must
    then not send: two messages would go."""
    delivery_id, gate, sending = await _send_held_at_its_turn(stack, monkeypatch)
    store = stack.worker_app.store
    row = await store.get_delivery(delivery_id)
    assert await store.reclaim_ambiguous(delivery_id, row.dispatched_at or 0.0)  # the other worker's take-over
    taken_over = (await store.get_delivery(delivery_id)).dispatched_at
    gate.set()
    done = await sending
    assert done == Done(Outcome.TAKEN_BY_ANOTHER_WORKER)
    assert stack.simulator is not None
    assert stack.simulator.messages == []
    after = await store.get_delivery(delivery_id)
    assert (after.status, after.dispatched_at) == ("dispatching", taken_over)  # the other's attempt, untouched


async def test_a_send_that_waited_long_for_its_turn_goes_with_its_attempt_restarted(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery_id, gate, sending = await _send_held_at_its_turn(stack, monkeypatch)
    store = stack.worker_app.store
    claimed_at = (await store.get_delivery(delivery_id)).dispatched_at or 0.0
    gate.set()
    done = await sending
    assert done.outcome is Outcome.SENT
    assert stack.simulator is not None
    assert len(stack.simulator.messages) == 1
    assert (
        (await store.get_delivery(delivery_id)).dispatched_at or 0.0
    ) > claimed_at  # the look-up counts from the send


async def test_a_send_granted_before_its_account_was_paused_does_not_go(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sends of one chunk hold their grants; the first is refused (401, 20003) and pauses the account.
    The second, granted before the pause, must not then go out with the refused credentials."""
    from pydantic import SecretStr  # noqa: PLC0415

    account = stack.settings.twilio.accounts["main"]
    account.auth_token = SecretStr("revoked-token")  # Twilio now answers 401 / 20003
    stack.worker_app.twilio._auth.clear()
    batch_id, ids = await _submitted(stack, sms_batch(people(2)))
    gate = asyncio.Event()
    take = Turn.take
    granted: list[Turn] = []

    async def first_goes_second_waits(turn: Turn) -> None:
        await take(turn)  # the grant is taken before the pause
        granted.append(turn)
        if len(granted) > 1:
            await gate.wait()

    monkeypatch.setattr(Turn, "take", first_goes_second_waits)
    sending = asyncio.create_task(stack.worker_app.dispatcher.send_chunk(batch_id, ids, [1, 1]))

    async def paused() -> bool:
        return await stack.worker_app.pacer.admin.paused(account.account_sid) is not None

    await wait_until(paused, "the refused send to pause the account")
    await wait_until(lambda: len(granted) == 2, "the second send to hold its grant")
    gate.set()
    await sending
    assert stack.simulator is not None
    assert stack.simulator.counters.requests == 1
    rows = await stack.worker_app.store.list_deliveries(batch_id, limit=10)
    assert sorted(r.status for r in rows) == ["retrying", "retrying"]  # both wait; no attempt used up
    assert any("account paused" in (r.error_message or "") for r in rows)
