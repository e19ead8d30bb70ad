"""A worker's lane outlives a lost Redis: it waits, polls again, counts each loss, and keeps its job slots."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker, func
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from notifyq.ops.metrics import WorkerMetrics
from notifyq.ops.stack import free_port
from notifyq.queue.jobs import BULK_QUEUE
from notifyq.worker import main as worker_main
from notifyq.worker.main import NotifyqWorker, _LaneWorker


class _FlakyArqWorker:
    """Stands in for arq's Worker: ``main`` raises the given errors in turn, then returns (a drained burst)."""

    def __init__(self, *errors: BaseException) -> None:
        self.queue_name = BULK_QUEUE
        self.errors = list(errors)
        self.calls = 0

    async def main(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def _owner() -> Any:
    return SimpleNamespace(app=SimpleNamespace(metrics=WorkerMetrics()))


def _lost(owner: Any) -> float | None:
    metrics: WorkerMetrics = owner.app.metrics
    return metrics.registry.get_sample_value("notifyq_worker_redis_lost_total", {"lane": "bulk"})


async def test_a_lane_polls_again_after_redis_is_lost_and_counts_each_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (0.01, 0.04))
    owner = _owner()
    arq = _FlakyArqWorker(
        RedisConnectionError("Error 111 connecting"), OSError("reset"), BusyLoadingError("Redis is loading")
    )
    await NotifyqWorker._lane(owner, arq)  # type: ignore[arg-type]
    assert arq.calls == 4  # three losses, then it ran to its end
    assert _lost(owner) == 3


async def test_other_redis_errors_are_not_taken_for_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (0.01, 0.04))
    owner = _owner()
    arq = _FlakyArqWorker(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    with pytest.raises(ResponseError):
        await NotifyqWorker._lane(owner, arq)  # type: ignore[arg-type]
    assert arq.calls == 1
    assert _lost(owner) is None


async def test_a_job_start_that_loses_redis_gives_its_slot_back() -> None:
    # Redis at a port where nothing listens: the start's first call (WATCH of the in-progress key) fails
    pool = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del ctx, args, kwargs

    def lane(cls: type[Worker]) -> Worker:
        return cls(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=3, handle_signals=False)

    try:
        plain, ours = lane(Worker), lane(_LaneWorker)
        for worker in (plain, ours):
            with pytest.raises(RedisConnectionError):
                await worker.start_jobs([b"job-1"])
        # arq keeps the slot of the start that failed (if this changes, _LaneWorker must go: it would give
        # the slot back twice)
        assert plain.job_counter == 1
        # ours gives it back: the lane can still take all its jobs
        assert ours.job_counter == 0
        for _ in range(3):
            await asyncio.wait_for(ours.sem.acquire(), 1)
    finally:
        await pool.aclose()
