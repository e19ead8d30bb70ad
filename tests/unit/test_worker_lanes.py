"""A worker's lane outlives a lost Redis: it waits, polls again, counts each loss, and keeps its job slots."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
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
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(_lane(owner, arq), 2)
    assert asyncio.get_running_loop().time() - started < 1.0
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
    task = asyncio.ensure_future(_lane(owner, arq))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert owner.app.redis.pings == 3  # the first three were taken for errors from before
    lost = _lost(owner)
    assert lost is not None
    assert lost >= 3  # then each counts, with a pause between (not a busy loop)
    assert arq.calls < 50


async def test_a_job_start_that_loses_redis_gives_its_slot_back() -> None:
    # Redis at a port where nothing listens: the start's first call (WATCH of the in-progress key) fails
    pool = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del ctx, args, kwargs

    def lane(cls: type[Worker]) -> Worker:
        return cls(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=3, handle_signals=False)

    async def unchecked(job_ids: list[bytes]) -> list[bytes]:
        return job_ids

    try:
        plain, ours, first_check = lane(Worker), lane(_LaneWorker), lane(_LaneWorker)
        # ours fails in arq's own checks (its look-up of running jobs is skipped); first_check already in
        # that look-up, before any slot is taken
        ours._not_running = unchecked  # type: ignore[method-assign]
        for worker in (plain, ours, first_check):
            with pytest.raises(RedisConnectionError):
                await worker.start_jobs([b"job-1"])
        assert first_check.job_counter == 0
        # arq keeps the slot of the start that failed (if this changes, _LaneWorker must go: it would give
        # the slot back twice)
        assert plain.job_counter == 1
        # ours gives it back: the lane can still take all its jobs
        assert ours.job_counter == 0
        for _ in range(3):
            await asyncio.wait_for(ours.sem.acquire(), 1)
    finally:
        await pool.aclose()


class _CountingPipelines(ArqRedis):
    """ArqRedis that counts the transactional pipelines opened (arq opens one per job id it checks)."""

    transactions = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        if transaction:
            type(self).transactions += 1
        return super().pipeline(transaction=transaction, shard_hint=shard_hint)


async def test_a_poll_checks_only_the_jobs_that_no_one_runs(redis_url: str) -> None:
    # three jobs queued: one running elsewhere (its in-progress key is set), one running in this lane,
    # one free. arq checks each id it reads with a WATCH transaction; the lane skips the two running ones
    pool = _CountingPipelines.from_url(redis_url)
    started: list[str] = []

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        started.append(ctx["job_id"])

    try:
        for job_id in ("elsewhere", "here", "free"):
            await pool.enqueue_job("noop", _job_id=job_id)
        await pool.psetex(in_progress_key_prefix + "elsewhere", 60_000, b"1")
        lane = _LaneWorker(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=5, handle_signals=False)
        here = asyncio.get_running_loop().create_future()
        lane.tasks["here"] = asyncio.ensure_future(here)
        _CountingPipelines.transactions = 0
        await lane.start_jobs([b"elsewhere", b"here", b"free"])
        assert _CountingPipelines.transactions == 1  # the free job's, nothing for the running two
        assert set(lane.tasks) == {"here", "free"}
        await asyncio.wait_for(lane.tasks["free"], 5)
        assert started == ["free"]
        assert lane.job_counter == 0  # the slot of the job that ended came back; none was kept for the skipped
        # a job of this lane that has ended (a retry keeps its id) is checked again, not skipped
        here.set_result(None)
        await lane.tasks["here"]
        _CountingPipelines.transactions = 0
        await lane.start_jobs([b"here"])
        assert _CountingPipelines.transactions == 1
    finally:
        lane.tasks["here"].cancel()
        await pool.aclose()
