"""A worker's lane outlives a lost Redis: it waits, polls again, and counts each loss."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from helpers import wait_until
from notifyq.queue.jobs import BULK_QUEUE
from notifyq.worker import NotifyqWorker, WorkerMetrics
from notifyq.worker import main as worker_main


class _FlakyArqWorker:
    """Stands in for arq's Worker: ``main`` raises the given errors in turn, then returns (a drained burst)."""

    def __init__(self, *errors: BaseException, forever: BaseException | None = None) -> None:
        self.queue_name = BULK_QUEUE
        self.poll_delay_s = 0.001
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.errors = list(errors)
        self.forever = forever
        self.calls = 0

    async def release_orphans(self) -> None:
        return None  # no job of this stand-in was cut off

    async def main(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        if self.forever is not None:
            raise self.forever


class _Redis:
    def __init__(self, *, up: bool) -> None:
        self.up = up
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        if not self.up:
            raise RedisConnectionError("Error 111 connecting")
        return True


def _owner(*, redis_up: bool) -> Any:
    """What ``NotifyqWorker._lane`` uses of its worker: the app's metrics and Redis, and the PING check."""
    owner = SimpleNamespace(app=SimpleNamespace(metrics=WorkerMetrics(), redis=_Redis(up=redis_up)))
    owner._redis_answers = functools.partial(NotifyqWorker._redis_answers, owner)  # type: ignore[arg-type]
    return owner


def _lost(owner: Any) -> float | None:
    metrics: WorkerMetrics = owner.app.metrics
    return metrics.registry.get_sample_value("notifyq_worker_redis_lost_total", {"lane": "bulk"})


async def _lane(owner: Any, arq: _FlakyArqWorker) -> None:
    await NotifyqWorker._lane(owner, arq)  # type: ignore[arg-type]


async def test_a_lane_polls_again_after_redis_is_lost_and_counts_each_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (0.01, 0.04))
    owner = _owner(redis_up=False)
    arq = _FlakyArqWorker(
        RedisConnectionError("Error 111 connecting"), OSError("reset"), BusyLoadingError("Redis is loading")
    )
    await _lane(owner, arq)
    assert arq.calls == 4  # three losses, then it ran to its end
    assert _lost(owner) == 3


async def test_other_redis_errors_are_not_taken_for_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (0.01, 0.04))
    owner = _owner(redis_up=False)
    arq = _FlakyArqWorker(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    with pytest.raises(ResponseError):
        await _lane(owner, arq)
    assert arq.calls == 1
    assert _lost(owner) is None


async def test_errors_of_jobs_from_before_do_not_make_a_lane_wait_once_redis_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (5.0, 10.0))  # a pause would show in the time taken
    owner = _owner(redis_up=True)
    arq = _FlakyArqWorker(*[RedisConnectionError("Connection closed by server.") for _ in range(5)])

    async def failed() -> None:
        raise RedisConnectionError("Connection closed by server.")

    async def ok() -> None:
        return None

    arq.tasks = {"a": asyncio.ensure_future(failed()), "b": asyncio.ensure_future(ok())}
    await asyncio.wait(arq.tasks.values())  # both jobs finished, one with the error of the outage
    pause = worker_main.REDIS_RETRY_S[0]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(_lane(owner, arq), 2 * pause)
    assert asyncio.get_running_loop().time() - started < pause  # it never paused
    assert arq.calls == 6
    assert _lost(owner) is None  # Redis answered each time: no outage
    assert arq.tasks == {}  # the finished job tasks were dropped, their errors retrieved


async def test_errors_that_go_on_while_redis_answers_count_as_an_outage_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_main, "REDIS_RETRY_S", (0.01, 0.04))
    monkeypatch.setattr(worker_main, "STALE_ERRORS_MAX", 3)
    owner = _owner(redis_up=True)
    arq = _FlakyArqWorker(forever=RedisConnectionError("Connection closed by server."))
    started = asyncio.get_running_loop().time()
    task = asyncio.ensure_future(_lane(owner, arq))
    await wait_until(lambda: (_lost(owner) or 0) >= 3, "three losses counted")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = asyncio.get_running_loop().time() - started
    assert owner.app.redis.pings == 3  # the first three were taken for errors from before
    lost = _lost(owner)
    assert lost is not None
    # then each counts, with a pause after it (not a busy loop): one poll per loss after the first three,
    # and at most one loss per shortest pause
    assert arq.calls <= worker_main.STALE_ERRORS_MAX + lost + 1, (arq.calls, lost)
    assert lost <= 1 + elapsed / worker_main.REDIS_RETRY_S[0], (lost, elapsed)
