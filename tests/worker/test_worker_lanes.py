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

from helpers import wait_until
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


async def test_a_job_start_that_loses_redis_takes_no_slot() -> None:
    # Redis at a port where nothing listens: the start's first call fails
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
        assert plain.job_counter == 1  # arq keeps the slot of the start that failed
        assert ours.job_counter == 0  # ours takes one only for a job that started: the lane can take all its jobs
        for _ in range(3):
            await asyncio.wait_for(ours.sem.acquire(), 1)
    finally:
        await pool.aclose()


async def _commands(pool: ArqRedis) -> dict[str, int]:
    """Commands that ran (a script's first EVALSHA fails with NOSCRIPT, and it is loaded and sent again)."""
    stats = await pool.info("commandstats")
    ran = {name.removeprefix("cmdstat_"): int(v["calls"]) - int(v.get("failed_calls", 0)) for name, v in stats.items()}
    return {name: n for name, n in ran.items() if n}


async def test_a_poll_starts_the_free_due_jobs_in_one_call(redis_url: str) -> None:
    # five ids read: one running elsewhere (its in-progress key is set), one running in this lane, one not
    # due yet, one no longer queued, one free. One script call starts the free one; the lane's own is not
    # even asked about
    pool = ArqRedis.from_url(redis_url)
    started: list[str] = []

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        started.append(ctx["job_id"])

    lane = _LaneWorker(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=5, handle_signals=False)
    here = asyncio.get_running_loop().create_future()
    lane.tasks["here"] = asyncio.ensure_future(here)
    try:
        for job_id in ("elsewhere", "here", "free"):
            await pool.enqueue_job("noop", _job_id=job_id)
        await pool.enqueue_job("noop", _job_id="later", _defer_by=60)
        await pool.psetex(in_progress_key_prefix + "elsewhere", 60_000, b"1")
        await pool.config_resetstat()
        await lane.start_jobs([b"elsewhere", b"here", b"later", b"gone", b"free"])
        calls = await _commands(pool)
        assert calls.get("evalsha", 0) + calls.get("eval", 0) == 1
        assert "watch" not in calls
        assert calls["zscore"] == 4  # here is not asked about
        assert set(lane.tasks) == {"here", "free"}
        await asyncio.wait_for(lane.tasks["free"], 5)
        assert started == ["free"]
        assert lane.job_counter == 0  # the slot of the job that ended came back; none was kept for the others
        assert await pool.exists(in_progress_key_prefix + "later", in_progress_key_prefix + "gone") == 0
        # a job of this lane that has ended (a retry keeps its id) is asked about again, not skipped
        here.set_result(None)
        await lane.tasks["here"]
        await pool.config_resetstat()
        await lane.start_jobs([b"here"])
        assert (await _commands(pool))["zscore"] == 1
    finally:
        lane.tasks["here"].cancel()
        await pool.aclose()


async def test_two_lanes_reading_the_same_ids_start_each_job_once(redis_url: str) -> None:
    pool = ArqRedis.from_url(redis_url)
    runs: list[str] = []
    gate = asyncio.Event()

    async def hold(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        runs.append(ctx["job_id"])
        await gate.wait()

    ids = [f"job-{i}" for i in range(100)]
    lanes = [_LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=80, handle_signals=False)]
    lanes.append(_LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=80, handle_signals=False))
    try:
        for job_id in ids:
            await pool.enqueue_job("hold", _job_id=job_id)
        read = [job_id.encode() for job_id in ids]
        await asyncio.gather(*(lane.start_jobs(read) for lane in lanes))
        await wait_until(lambda: len(runs) >= len(ids), "the started jobs to reach their function")
        assert sorted(runs) == sorted(ids)  # each job started once, by one lane
        assert sum(lane.job_counter for lane in lanes) == len(ids)
        assert all(lane.job_counter <= 80 for lane in lanes)
    finally:
        gate.set()
        for lane in lanes:
            await asyncio.gather(*lane.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_a_full_lane_leaves_the_other_ids_to_a_later_poll(redis_url: str) -> None:
    pool = ArqRedis.from_url(redis_url)
    gate = asyncio.Event()

    async def hold(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del ctx, args, kwargs
        await gate.wait()

    lane = _LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=10, handle_signals=False)
    ids = [f"job-{i}" for i in range(30)]
    try:
        for job_id in ids:
            await pool.enqueue_job("hold", _job_id=job_id)
        await asyncio.wait_for(lane.start_jobs([job_id.encode() for job_id in ids]), 5)
        assert lane.job_counter == 10
        assert len(lane.tasks) == 10
        marked = await pool.exists(*(in_progress_key_prefix + job_id for job_id in ids))
        assert marked == 10  # the twenty it did not start are free for another worker
    finally:
        gate.set()
        await asyncio.gather(*lane.tasks.values(), return_exceptions=True)
        await pool.aclose()
