"""arq's Worker as notifyq runs it (``LaneWorker``): jobs started in groups, one script call each, and a start
that loses Redis keeps no job slot."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Retry, Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError

from helpers import wait_until
from notifyq.queue.arq_compat import IN_PROGRESS_KEY_PREFIX, START_LUA, LaneWorker
from notifyq.testing import free_port


async def test_a_job_start_that_loses_redis_takes_no_slot() -> None:
    # Redis at a port where nothing listens: the start's first call fails
    pool = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del ctx, args, kwargs

    def lane(cls: type[Worker]) -> Worker:
        return cls(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=3, handle_signals=False)

    try:
        plain, ours = lane(Worker), lane(LaneWorker)
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

    lane = LaneWorker(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=5, handle_signals=False)
    here = asyncio.get_running_loop().create_future()
    lane.tasks["here"] = asyncio.ensure_future(here)
    try:
        for job_id in ("elsewhere", "here", "free"):
            await pool.enqueue_job("noop", _job_id=job_id)
        await pool.enqueue_job("noop", _job_id="later", _defer_by=60)
        await pool.psetex(IN_PROGRESS_KEY_PREFIX + "elsewhere", 60_000, b"1")
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
        assert await pool.exists(IN_PROGRESS_KEY_PREFIX + "later", IN_PROGRESS_KEY_PREFIX + "gone") == 0
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
    lanes = [LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=80, handle_signals=False)]
    lanes.append(LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=80, handle_signals=False))
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

    lane = LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=10, handle_signals=False)
    ids = [f"job-{i}" for i in range(30)]
    try:
        for job_id in ids:
            await pool.enqueue_job("hold", _job_id=job_id)
        await asyncio.wait_for(lane.start_jobs([job_id.encode() for job_id in ids]), 5)
        assert lane.job_counter == 10
        assert len(lane.tasks) == 10
        marked = await pool.exists(*(IN_PROGRESS_KEY_PREFIX + job_id for job_id in ids))
        assert marked == 10  # the twenty it did not start are free for another worker
    finally:
        gate.set()
        await asyncio.gather(*lane.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_a_job_cut_off_by_an_outage_runs_again_at_the_next_poll(redis_url: str) -> None:
    """A job whose task ended on a lost Redis after the lane had resumed polling left its in-progress key; the
    next poll deletes it and starts the job, instead of leaving it until the key expires."""
    pool = ArqRedis.from_url(redis_url)
    started: list[str] = []

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        started.append(ctx["job_id"])

    lane = LaneWorker(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=5, handle_signals=False)
    try:
        await pool.enqueue_job("noop", _job_id="cut-off")
        await pool.psetex(IN_PROGRESS_KEY_PREFIX + "cut-off", 60_000, lane.token)  # left by the task the outage ended
        lane.orphans["cut-off"] = time.monotonic()
        await lane.start_jobs([b"cut-off"])
        await asyncio.wait_for(lane.tasks["cut-off"], 5)
        assert started == ["cut-off"]
        assert lane.orphans == {}
    finally:
        await pool.aclose()


async def _due(pool: ArqRedis, queue: str) -> list[str]:
    """The ids a poll reads: the due part of the queue."""
    return [i.decode() for i in await pool.zrangebyscore(queue, "-inf", time.time() * 1000)]


async def test_running_jobs_leave_the_due_part_of_the_queue_and_come_back_at_their_time(redis_url: str) -> None:
    # a poll reads the first queue_read_limit due ids: jobs already running there would hide the due ones behind
    # them from every worker. A running job is parked; deferred, it is due when it asked; cancelled, at once
    pool = ArqRedis.from_url(redis_url)
    gate = asyncio.Event()

    async def hold(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        await gate.wait()
        if ctx["job_id"] == "deferred":
            raise Retry(defer=30)

    lane = LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=5, handle_signals=False)
    queue = lane.queue_name
    try:
        for job_id in ("deferred", "cancelled", "done"):
            await pool.enqueue_job("hold", _job_id=job_id)
        await lane.start_jobs([b"deferred", b"cancelled", b"done"])
        await pool.enqueue_job("hold", _job_id="waiting")
        assert await _due(pool, queue) == ["waiting"]
        parked = await pool.zscore(queue, "done")
        assert parked is not None
        assert parked >= (time.time() + lane.in_progress_timeout_s - 5) * 1000
        lane.tasks["cancelled"].cancel()
        await asyncio.gather(lane.tasks["cancelled"], return_exceptions=True)
        await wait_until(lane.tasks["cancelled"].done, "the cancelled job ended")
        assert sorted(await _due(pool, queue)) == ["cancelled", "waiting"]  # runs again at once
        before = time.time() * 1000
        gate.set()
        await asyncio.gather(lane.tasks["deferred"], lane.tasks["done"])
        again = await pool.zscore(queue, "deferred")
        assert again is not None
        assert before + 29_000 <= again <= time.time() * 1000 + 30_000
        assert await pool.zscore(queue, "done") is None
    finally:
        gate.set()
        await asyncio.gather(*lane.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_a_job_that_lets_go_of_its_slot_runs_on_and_gives_nothing_back_twice(redis_url: str) -> None:
    pool = ArqRedis.from_url(redis_url)
    gate = asyncio.Event()

    async def hold(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del ctx, args, kwargs
        await gate.wait()

    lane = LaneWorker(functions=[func(hold, name="hold")], redis_pool=pool, max_jobs=2, handle_signals=False)
    try:
        for job_id in ("a", "b", "c"):
            await pool.enqueue_job("hold", _job_id=job_id)
        await lane.start_jobs([b"a", b"b", b"c"])
        assert set(lane.tasks) == {"a", "b"}
        assert lane.job_counter == 2
        assert lane.let_go("a")
        assert not lane.let_go("a")  # once
        assert not lane.let_go("c")  # not running here
        assert lane.job_counter == 1
        await lane.start_jobs([b"c"])  # a's slot went to c; a still runs
        assert lane.job_counter == 2
        assert not lane.tasks["a"].done()
        gate.set()
        await asyncio.gather(*lane.tasks.values())
        await wait_until(lambda: lane.job_counter == 0, "every slot back")
        for _ in range(2):  # every slot is free again, and no more than that
            await asyncio.wait_for(lane.sem.acquire(), 1)
        assert lane.job_counter == 0
    finally:
        gate.set()
        await asyncio.gather(*lane.tasks.values(), return_exceptions=True)
        await pool.aclose()


async def test_a_start_whose_answer_the_outage_cut_off_runs_its_jobs_at_the_next_poll(redis_url: str) -> None:
    """The start script ran, marked the jobs in progress and parked them, but its answer was lost: the lane did
    not start them, and nothing would until the marks expired. The next poll deletes the marks that are the
    lane's own and puts their jobs back where they were due, and leaves another worker's."""
    pool = ArqRedis.from_url(redis_url)
    started: list[str] = []

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        started.append(ctx["job_id"])

    lane = LaneWorker(functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=5, handle_signals=False)
    try:
        for job_id in ("cut-off", "elsewhere"):
            await pool.enqueue_job("noop", _job_id=job_id)
        await pool.psetex(IN_PROGRESS_KEY_PREFIX + "elsewhere", 60_000, b"1")  # another worker runs it
        script = pool.register_script(START_LUA)

        async def applied_then_lost(*, keys: list[str], args: list[Any]) -> Any:
            await script(keys=keys, args=args)
            raise RedisConnectionError("Connection closed by server.")

        lane._start_script = applied_then_lost  # type: ignore[assignment]
        with pytest.raises(RedisConnectionError):
            await lane.start_jobs([b"cut-off", b"elsewhere"])
        assert await pool.get(IN_PROGRESS_KEY_PREFIX + "cut-off") == lane.token.encode()  # marked, not started
        assert "cut-off" not in await _due(pool, lane.queue_name)  # and parked
        assert started == []
        assert lane.job_counter == 0
        lane._start_script = None
        await lane.start_jobs([b"cut-off", b"elsewhere"])
        await asyncio.wait_for(lane.tasks["cut-off"], 5)
        assert started == ["cut-off"]
        assert "elsewhere" not in lane.tasks
        assert await pool.get(IN_PROGRESS_KEY_PREFIX + "elsewhere") == b"1"
        assert lane.unsure == {}
    finally:
        await pool.aclose()
