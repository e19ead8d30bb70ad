"""The worker's sends-in-flight permits: as many as are free at once, then fair turns between batches."""

from __future__ import annotations

import asyncio

import pytest

from helpers import wait_until
from notifyq.worker.permits import Permits


def queued(permits: Permits) -> int:
    """Takers waiting for a permit."""
    return sum(len(q) for q in permits._waiting.values())


async def test_take_hands_out_what_is_free_and_waits_when_none_is() -> None:
    permits = Permits(5)
    assert await permits.take(3, "a") == 3
    assert await permits.take(10, "a") == 2
    assert permits.free == 0
    waiter = asyncio.create_task(permits.take(4, "a"))
    await wait_until(lambda: queued(permits) == 1, "the taker to wait")
    assert not waiter.done()
    permits.give(3)
    assert await waiter == 3  # one handed over, and the rest that was free (nobody else waits)
    assert permits.free == 0


async def test_freed_permits_go_to_waiting_batches_in_turn() -> None:
    permits = Permits(1)
    assert await permits.take(1, "large") == 1
    order: list[str] = []

    async def take_one(flow: str) -> None:
        await permits.take(1, flow)
        order.append(flow)

    # four chunks of a large batch wait, then one of a small batch arrives
    tasks = [asyncio.create_task(take_one("large")) for _ in range(4)]
    await wait_until(lambda: queued(permits) == 4, "the large batch's chunks to wait")
    tasks.append(asyncio.create_task(take_one("small")))
    await wait_until(lambda: queued(permits) == 5, "the small batch's chunk to wait")
    for given in range(1, 6):
        permits.give(1)
        await wait_until(lambda given=given: len(order) == given, "the permit to be taken")
    await asyncio.gather(*tasks)
    assert order.index("small") == 1  # the small batch's turn comes second, not after the large backlog
    assert permits.free == 0


async def test_a_cancelled_waiter_takes_nothing_and_loses_nothing() -> None:
    permits = Permits(1)
    await permits.take(1, "a")
    waiter = asyncio.create_task(permits.take(1, "a"))
    await wait_until(lambda: queued(permits) == 1, "the taker to wait")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    permits.give(1)
    assert permits.free == 1
    # cancelled after its permit was handed over: the permit comes back
    await permits.take(1, "a")
    handed = asyncio.create_task(permits.take(1, "b"))
    await wait_until(lambda: queued(permits) == 1, "the taker to wait")
    permits.give(1)
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert permits.free == 1
