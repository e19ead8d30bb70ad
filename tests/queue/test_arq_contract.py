"""notifyq's contract with arq, checked against arq itself.

notifyq writes arq's jobs with scripts of its own (``JobQueue``), and starts them with a script of
its own (``LaneWorker``): everything that takes for granted about arq is in ``queue/arq_compat.py``.
Here what notifyq writes is read back with arq's public API (``Job.info``, ``Job.status``,
``deserialize_job``) and run by arq's own ``Worker``, and the keys notifyq's scripts read and set are
checked against the ones arq's worker reads and sets.

The contract: arq 0.28 (uv.lock installs 0.28.0; pyproject.toml pins ``arq>=0.28,<0.29``). To take
another arq release, widen the pin and run this file: where it fails, adapt ``queue/arq_compat.py``.
Nothing else in notifyq reaches past arq's public API (the last test holds that).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus, deserialize_job
from arq.utils import timestamp_ms
from arq.worker import Retry, Worker, func
from redis.asyncio import Redis

import notifyq
from notifyq.queue.arq_compat import (
    ARQ_MAX_TRIES,
    IN_PROGRESS_KEY_PREFIX,
    JOB_KEY_PREFIX,
    RESULT_KEY_PREFIX,
    RETRY_KEY_PREFIX,
    START_LUA,
    LaneWorker,
)
from notifyq.queue.jobs import (
    BULK_QUEUE,
    CHUNK_FUNCTION,
    SEND_FUNCTION,
    STEP_MS,
    URGENT_QUEUE,
    JobQueue,
    SendJob,
    chunk_job_id,
    deserialize,
    serialize,
)

Ran = list[tuple[str, int, tuple[Any, ...]]]  # (job id, try, args) of each run


@pytest.fixture
async def pools(scratch_redis_url: str, rdb: Redis) -> AsyncIterator[Callable[[], ArqRedis]]:
    """arq's pools on the test's flushed Redis, with notifyq's serializer; closed after the test."""
    del rdb  # flushed
    opened: list[ArqRedis] = []

    def pool() -> ArqRedis:
        made = ArqRedis.from_url(scratch_redis_url)
        made.job_serializer, made.job_deserializer = serialize, deserialize
        opened.append(made)
        return made

    yield pool
    for made in opened:
        await made.aclose()


def job(pool: ArqRedis, job_id: str, queue: str = BULK_QUEUE) -> Job:
    return Job(job_id, pool, _queue_name=queue, _deserializer=deserialize)


def arq_worker(cls: type[Worker], pool: ArqRedis, ran: Ran, **kwargs: Any) -> Worker:
    """A burst worker of ``cls`` with notifyq's two send functions, each noting its runs in ``ran``."""

    async def note(ctx: dict[str, Any], *args: Any) -> None:
        ran.append((ctx["job_id"], ctx["job_try"], args))

    functions = [
        func(note, name=name, max_tries=ARQ_MAX_TRIES, keep_result=0) for name in (SEND_FUNCTION, CHUNK_FUNCTION)
    ]
    return cls(
        functions=functions,
        queue_name=BULK_QUEUE,
        redis_pool=pool,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
        job_serializer=serialize,
        job_deserializer=deserialize,
        **kwargs,
    )


async def test_a_delivery_job_reads_back_as_arqs_job(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    start = timestamp_ms() - 1000
    jobs = [SendJob("d1", "b1", 2, seq=0), SendJob("d2", "b1", 1, seq=1)]
    before_ms = math.floor(time.time() * 1000)
    assert await JobQueue(pool).enqueue("bulk", jobs, start_ms=start, first_seq=7) == 2
    after_ms = math.ceil(time.time() * 1000)
    info = await job(pool, "d2").info()
    assert info is not None
    assert (info.function, list(info.args), info.kwargs, info.job_try) == (SEND_FUNCTION, ["b1", 1], {}, 1)
    assert info.score == int(start + 8 * STEP_MS)
    assert before_ms <= round(info.enqueue_time.timestamp() * 1000) <= after_ms  # stamped when it was enqueued
    assert await job(pool, "d2").status() == JobStatus.queued
    raw = await pool.get(JOB_KEY_PREFIX + "d1")
    assert raw is not None
    read = deserialize_job(raw, deserializer=deserialize)
    assert (read.function, list(read.args)) == (SEND_FUNCTION, ["b1", 2])


async def test_a_chunk_job_and_its_rewrite_read_back_as_arqs_job(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    queue = JobQueue(pool)
    start = timestamp_ms() - 1000
    members = [SendJob(f"d{i}", "b1", 1 + i % 2, seq=i) for i in range(3)]
    assert await queue.enqueue_chunks("urgent", members, start_ms=start) == 3
    chunk_id = chunk_job_id("b1", 0)
    info = await job(pool, chunk_id, URGENT_QUEUE).info()
    assert info is not None
    assert (info.function, list(info.args)) == (CHUNK_FUNCTION, ["b1", ["d0", "d1", "d2"], [1, 2, 1]])
    assert info.score == start
    await queue.rewrite_chunk(chunk_id, "b1", ["d2"], [1], lane="urgent")
    info = await job(pool, chunk_id, URGENT_QUEUE).info()
    assert info is not None
    assert (info.function, list(info.args), info.score) == (CHUNK_FUNCTION, ["b1", ["d2"], [1]], start)


async def test_a_deferred_job_is_arqs_deferred_job_at_its_time(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    at_s = time.time() + 60
    assert await JobQueue(pool).defer("bulk", SendJob("d9", "b1", 3), at_s=at_s)
    assert await job(pool, "d9").status() == JobStatus.deferred
    info = await job(pool, "d9").info()
    assert info is not None
    assert info.score is not None
    assert abs(info.score - at_s * 1000) <= 1
    assert list(info.args) == ["b1", 3]


async def test_a_job_with_a_result_is_complete_for_arq_and_not_queued_again(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    await pool.set(RESULT_KEY_PREFIX + "done", serialize({"s": True}))
    assert await job(pool, "done").status() == JobStatus.complete
    assert await JobQueue(pool).defer("bulk", SendJob("done", "b1", 1), at_s=time.time()) is False


@pytest.mark.parametrize("cls", [Worker, LaneWorker])
async def test_arqs_worker_runs_what_notifyq_enqueued(pools: Callable[[], ArqRedis], cls: type[Worker]) -> None:
    pool = pools()
    queue = JobQueue(pool)
    start = timestamp_ms() - 1000
    await queue.enqueue("bulk", [SendJob("d1", "b1", 2)], start_ms=start, first_seq=0)
    await queue.enqueue_chunks("bulk", [SendJob(f"c{i}", "b2", 1, seq=i) for i in range(2)], start_ms=start)
    ran: Ran = []
    finished: list[str] = []
    extra = {"on_finished": finished.append} if cls is LaneWorker else {}
    worker = arq_worker(cls, pools(), ran, **extra)
    await asyncio.wait_for(worker.main(), 20)
    assert sorted(ran) == [("b2.0", 1, ("b2", ["c0", "c1"], [1, 1])), ("d1", 1, ("b1", 2))]
    assert await pool.exists(JOB_KEY_PREFIX + "d1", JOB_KEY_PREFIX + "b2.0", RESULT_KEY_PREFIX + "d1") == 0
    if cls is LaneWorker:  # its hook after arq's finish heard of each job
        assert sorted(finished) == ["b2.0", "d1"]


async def test_a_job_that_retries_counts_its_tries_under_the_retry_key(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    tries: list[tuple[int, bytes | None]] = []

    async def again_once(ctx: dict[str, Any], *_: Any) -> None:
        tries.append((ctx["job_try"], await pool.get(RETRY_KEY_PREFIX + ctx["job_id"])))
        if ctx["job_try"] == 1:
            raise Retry(defer=0.01)

    await JobQueue(pool).enqueue("bulk", [SendJob("d1", "b1", 1)], start_ms=timestamp_ms() - 1000, first_seq=0)
    finished: list[str] = []
    worker = LaneWorker(
        functions=[func(again_once, name=SEND_FUNCTION, max_tries=ARQ_MAX_TRIES)],
        queue_name=BULK_QUEUE,
        redis_pool=pools(),
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
        job_serializer=serialize,
        job_deserializer=deserialize,
        on_finished=finished.append,
    )
    await asyncio.wait_for(worker.main(), 20)
    # the key notifyq deletes with a job it drops (JobQueue.forget_batch) is the one arq counts tries in
    assert tries == [(1, b"1"), (2, b"2")]
    assert finished == ["d1", "d1"]  # deferred by arq, then done: the hook heard both
    assert await pool.exists(RETRY_KEY_PREFIX + "d1") == 0


async def test_a_job_whose_payload_is_gone_reaches_the_hook_after_arqs_failed_finish(
    pools: Callable[[], ArqRedis],
) -> None:
    pool = pools()
    await pool.zadd(BULK_QUEUE, {"gone": timestamp_ms() - 1000})  # in the lane, no job key
    finished: list[str] = []
    worker = arq_worker(LaneWorker, pools(), [], on_finished=finished.append)
    await asyncio.wait_for(worker.main(), 20)
    assert finished == ["gone"]
    assert await pool.zcard(BULK_QUEUE) == 0


async def test_notifyqs_start_and_arqs_see_each_others_jobs_in_progress(pools: Callable[[], ArqRedis]) -> None:
    pool = pools()
    start = timestamp_ms() - 1000
    await JobQueue(pool).enqueue(
        "bulk", [SendJob("ours", "b1", 1), SendJob("arqs", "b1", 1)], start_ms=start, first_seq=0
    )
    started = pool.register_script(START_LUA)
    # notifyq's start marks a job in progress: arq's Job says so, and arq's own worker does not start it
    [score] = await started(
        keys=[BULK_QUEUE, IN_PROGRESS_KEY_PREFIX + "ours"], args=[timestamp_ms(), 60_000, "a-token", "ours"]
    )
    assert int(float(score)) == start
    assert await job(pool, "ours").status() == JobStatus.in_progress
    gate = asyncio.Event()

    async def hold(ctx: dict[str, Any], *_: Any) -> None:
        del ctx
        await gate.wait()

    plain = Worker(
        functions=[func(hold, name=SEND_FUNCTION)],
        queue_name=BULK_QUEUE,
        redis_pool=pool,
        handle_signals=False,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
    try:
        await plain.start_jobs([b"ours", b"arqs"])
        assert set(plain.tasks) == {"arqs"}  # "ours" is running elsewhere, as far as arq can tell
        # arq's own start marks its job in progress, for as long as notifyq's start marks one: notifyq's skips it
        assert await started(
            keys=[BULK_QUEUE, IN_PROGRESS_KEY_PREFIX + "arqs"], args=[timestamp_ms(), 60_000, "a-token", "arqs"]
        ) == [None]
        lane = LaneWorker(functions=[func(hold, name=SEND_FUNCTION)], queue_name=BULK_QUEUE, redis_pool=pool)
        assert lane.in_progress_timeout_s == plain.in_progress_timeout_s
        marked_ms = await pool.pttl(IN_PROGRESS_KEY_PREFIX + "arqs")
        assert plain.in_progress_timeout_s * 1000 - 5000 < marked_ms <= plain.in_progress_timeout_s * 1000
    finally:
        gate.set()
        await asyncio.gather(*plain.tasks.values(), return_exceptions=True)


# what only queue/arq_compat.py may hold: arq's key names, its private modules, its Worker's inner parts
PAST_THE_PUBLIC_API = re.compile(
    r"arq:[a-z-]+:|arq\.constants|arq\.utils|job_counter|_release_sem|in_progress_timeout_s|run_job|start_jobs"
)


def test_nothing_else_reaches_past_arqs_public_api() -> None:
    package = Path(notifyq.__file__).parent
    allowed = package / "queue" / "arq_compat.py"
    found = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted([*package.rglob("*.py"), *package.rglob("*.lua")])
        if path != allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if PAST_THE_PUBLIC_API.search(line)
    ]
    assert found == []
