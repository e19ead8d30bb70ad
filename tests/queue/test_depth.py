"""The queue depth: deliveries (not jobs) per lane, due now or later, kept true as jobs come and go."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from notifyq.queue import depth as depth_module
from notifyq.queue.arq_compat import IN_PROGRESS_KEY_PREFIX, JOB_KEY_PREFIX, job_payload
from notifyq.queue.depth import Depth, DepthSync
from notifyq.queue.jobs import BULK_QUEUE, CHUNK_SIZE, URGENT_QUEUE, JobQueue, SendJob, serialize


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def queue(redis: Redis) -> JobQueue:
    return JobQueue(redis)


def chunked(tag: str, n: int) -> list[SendJob]:
    return [SendJob(f"{tag}{i:06d}", f"batch-{tag}", 1, i) for i in range(n)]


async def bulk(queue: JobQueue) -> Depth:
    return (await queue.depth())["bulk"]


async def test_depth_counts_the_deliveries_a_chunk_job_carries(queue: JobQueue) -> None:
    n = 2 * CHUNK_SIZE + 20  # three chunk jobs
    assert await queue.enqueue_chunks("bulk", chunked("A", n), start_ms=time.time() * 1000) == n
    await queue.enqueue("urgent", [SendJob("u1", "batch-U", 1)], start_ms=time.time() * 1000, first_seq=0)
    assert await queue.depth() == {"urgent": Depth(due=1, later=0), "bulk": Depth(due=n, later=0)}


async def test_jobs_scheduled_for_later_are_counted_apart_until_their_second_comes(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue.enqueue_chunks("bulk", chunked("N", 30), start_ms=time.time() * 1000)
    soon = time.time() + 1.5
    await queue.enqueue_chunks("bulk", chunked("S", 70), start_ms=soon * 1000)
    await queue.enqueue_chunks("bulk", chunked("H", 5), start_ms=(time.time() + 3600) * 1000)
    assert await bulk(queue) == Depth(due=30, later=75)
    monkeypatch.setattr(depth_module, "_now_s", lambda: int(soon) - 1)  # the clock, simulated: not yet
    assert await bulk(queue) == Depth(due=30, later=75)
    monkeypatch.setattr(depth_module, "_now_s", lambda: int(soon))  # the second comes
    assert await bulk(queue) == Depth(due=100, later=5)


async def test_reading_folds_any_number_of_seconds_at_once(queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    for k in range(1500):  # one job in each of 1,500 seconds to come (more than a fold's page)
        await queue.defer("bulk", SendJob(f"d{k}", "batch-D", 1), at_s=now + 600 + k)
    assert await bulk(queue) == Depth(due=0, later=1500)
    monkeypatch.setattr(depth_module, "_now_s", lambda: int(now) + 2100)
    assert await bulk(queue) == Depth(due=1500, later=0)


async def test_a_chunk_that_rewrites_itself_counts_what_it_still_owes(queue: JobQueue) -> None:
    batch = chunked("R", CHUNK_SIZE)
    await queue.enqueue_chunks("bulk", batch, start_ms=time.time() * 1000)
    rest = batch[-10:]
    await queue.rewrite_chunk("batch-R.0", "batch-R", [j.delivery_id for j in rest], [1] * 10, lane="bulk")
    assert await bulk(queue) == Depth(due=10, later=0)


async def test_the_ledger_follows_the_lane_when_arq_defers_or_finishes_a_job(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue_chunks("bulk", chunked("M", CHUNK_SIZE), start_ms=time.time() * 1000)
    # arq defers the job (a pacing wait): its score moves a minute ahead
    await redis.zadd(BULK_QUEUE, {"batch-M.0": (time.time() + 60) * 1000})
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-M.0"])
    assert await bulk(queue) == Depth(due=0, later=CHUNK_SIZE)
    # synced twice: still counted once
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-M.0"])
    assert await bulk(queue) == Depth(due=0, later=CHUNK_SIZE)
    # arq finishes it: it leaves the lane, and the depth
    await redis.zrem(BULK_QUEUE, "batch-M.0")
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-M.0", "not-a-job"])
    assert await bulk(queue) == Depth(due=0, later=0)


async def test_a_job_the_ledger_missed_is_counted_from_its_payload_when_synced(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue_chunks("bulk", chunked("P", CHUNK_SIZE + 3), start_ms=time.time() * 1000)
    await queue.defer("bulk", SendJob("own", "batch-P", 1), at_s=time.time() + 60)
    await redis.delete("notifyq:depth:bulk:jobs", "notifyq:depth:bulk:totals")  # as if queued before the ledger
    await redis.delete("notifyq:depth:bulk:buckets", "notifyq:depth:bulk:seconds")
    assert await bulk(queue) == Depth(due=0, later=0)
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-P.0", "batch-P.1", "own"])
    assert await bulk(queue) == Depth(due=CHUNK_SIZE + 3, later=1)


async def test_jobs_queued_before_the_ledger_are_adopted_once(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue_chunks("bulk", chunked("O", 30 * CHUNK_SIZE), start_ms=time.time() * 1000)
    await queue.enqueue_chunks("bulk", chunked("F", CHUNK_SIZE), start_ms=(time.time() + 600) * 1000)
    await redis.delete(*(f"notifyq:depth:bulk:{part}" for part in ("jobs", "buckets", "seconds", "totals")))
    assert await queue.ledger.adopt("bulk", BULK_QUEUE) == 31
    assert await bulk(queue) == Depth(due=30 * CHUNK_SIZE, later=CHUNK_SIZE)
    assert await queue.ledger.adopt("bulk", BULK_QUEUE) == 0  # once
    assert await bulk(queue) == Depth(due=30 * CHUNK_SIZE, later=CHUNK_SIZE)


async def test_a_job_without_deliveries_is_not_counted(redis: Redis, queue: JobQueue) -> None:
    await redis.set(JOB_KEY_PREFIX + "cron:reconcile:1", serialize(job_payload("reconcile", [], 0)))
    await redis.zadd(BULK_QUEUE, {"cron:reconcile:1": time.time() * 1000})  # as arq's cron enqueues it
    await queue.ledger.sync("bulk", BULK_QUEUE, ["cron:reconcile:1"])
    assert await bulk(queue) == Depth(due=0, later=0)


async def test_a_job_queued_again_is_counted_once(redis: Redis, queue: JobQueue) -> None:
    job = SendJob("twice", "batch-T", 1)
    assert await queue.defer("bulk", job, at_s=time.time() + 60)
    assert not await queue.defer("bulk", job, at_s=time.time())  # it has a job: nothing added
    assert await bulk(queue) == Depth(due=0, later=1)
    # the job ran and arq dropped its key, but the ledger was not told (Redis went away in between)
    await redis.delete(JOB_KEY_PREFIX + "twice")
    await redis.zrem(BULK_QUEUE, "twice")
    assert await queue.defer("bulk", job, at_s=time.time())
    assert await bulk(queue) == Depth(due=1, later=0)


async def test_forgetting_a_canceled_batch_takes_its_chunks_out(redis: Redis, queue: JobQueue) -> None:
    n = 2 * CHUNK_SIZE + 1
    await queue.enqueue_chunks("bulk", chunked("C", n), start_ms=time.time() * 1000)
    await queue.enqueue_chunks("bulk", chunked("K", 7), start_ms=(time.time() + 3600) * 1000)
    assert await queue.forget_batch("bulk", "batch-C", n, drop=False) == n
    assert await bulk(queue) == Depth(due=0, later=7)
    assert await queue.forget_batch("bulk", "batch-C", n, drop=False) == 0  # once
    # its jobs stay in the lane, counted as empty: deferred (a sync), or rewritten, they are not counted again
    assert await redis.zcard(BULK_QUEUE) == 4
    await redis.zadd(BULK_QUEUE, {"batch-C.0": (time.time() + 60) * 1000})
    await queue.rewrite_chunk("batch-C.1", "batch-C", ["C000051"], [1], lane="bulk")
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-C.0", "batch-C.1"])
    assert await bulk(queue) == Depth(due=0, later=7)
    await redis.zrem(BULK_QUEUE, "batch-C.0")  # one runs, and arq drops it
    await queue.ledger.sync("bulk", BULK_QUEUE, ["batch-C.0"])
    assert await bulk(queue) == Depth(due=0, later=7)


async def test_a_canceled_batch_that_has_not_started_leaves_the_lane_but_a_running_chunk_stays(
    redis: Redis, queue: JobQueue
) -> None:
    later = (time.time() + 3600) * 1000
    await queue.enqueue_chunks("bulk", chunked("C", 2 * CHUNK_SIZE), start_ms=later)
    await queue.enqueue_chunks("bulk", chunked("K", 7), start_ms=later)
    await redis.set(IN_PROGRESS_KEY_PREFIX + "batch-C.1", "1")  # a worker runs this one now
    assert await queue.forget_batch("bulk", "batch-C", 2 * CHUNK_SIZE, drop=True) == 2 * CHUNK_SIZE
    assert await bulk(queue) == Depth(due=0, later=7)
    assert sorted(m.decode() for m in await redis.zrange(BULK_QUEUE, 0, -1)) == ["batch-C.1", "batch-K.0"]
    assert await redis.exists(JOB_KEY_PREFIX + "batch-C.0", JOB_KEY_PREFIX + "batch-C.1") == 1


async def test_depth_sync_sends_what_it_noted_in_one_go(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue("urgent", [SendJob(f"s{i}", "b", 1) for i in range(5)], start_ms=1.0, first_seq=0)
    await redis.zrem(URGENT_QUEUE, "s0", "s1", "s2")
    sync = DepthSync(queue.ledger, "urgent", URGENT_QUEUE)
    for job_id in ("s0", "s1", "s2"):
        sync.note(job_id)
    await sync.close(timeout_s=5)
    assert not sync.pending
    assert (await queue.depth())["urgent"] == Depth(due=2, later=0)


# ---- the ledger heals what it was not told -------------------------------------------------------------------


async def test_the_ledger_heals_entries_whose_job_left_unseen_and_jobs_it_missed(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue_chunks("bulk", chunked("A", 3 * CHUNK_SIZE), start_ms=time.time() * 1000)
    await queue.defer("bulk", SendJob("later", "batch-L", 1), at_s=time.time() + 600)
    assert await bulk(queue) == Depth(due=3 * CHUNK_SIZE, later=1)
    # arq finished a chunk, and the worker was killed before it synced the ledger
    await redis.zrem(BULK_QUEUE, "batch-A.1")
    await redis.delete(JOB_KEY_PREFIX + "batch-A.1")
    # a job reached the lane without the ledger (queued as arq queues it)
    payload = serialize({"t": 1, "f": "send", "a": ["batch-M", 1], "k": {}, "et": int(time.time() * 1000)})
    await redis.set(JOB_KEY_PREFIX + "missed", payload)
    await redis.zadd(BULK_QUEUE, {"missed": time.time() * 1000})
    assert await bulk(queue) == Depth(due=3 * CHUNK_SIZE, later=1)  # wrong, and stays so: nothing syncs them
    healed = await queue.ledger.heal("bulk", BULK_QUEUE, limit=1000)
    assert (healed.dropped, healed.added) == (1, 1)
    assert await bulk(queue) == Depth(due=2 * CHUNK_SIZE + 1, later=1)
    again = await queue.ledger.heal("bulk", BULK_QUEUE, limit=1000)
    assert (again.dropped, again.added) == (0, 0)
    assert await bulk(queue) == Depth(due=2 * CHUNK_SIZE + 1, later=1)


async def test_healing_takes_a_bounded_share_per_call_and_goes_round(redis: Redis, queue: JobQueue) -> None:
    n = 2000
    await queue.enqueue("bulk", [SendJob(f"g{i:05d}", "batch-G", 1) for i in range(n)], start_ms=1.0, first_seq=0)
    await redis.delete(BULK_QUEUE)  # every job gone behind the ledger's back
    assert await bulk(queue) == Depth(due=n, later=0)
    calls = 0
    while (await bulk(queue)).due:
        healed = await queue.ledger.heal("bulk", BULK_QUEUE, limit=400)
        assert healed.synced <= 2 * 400  # a scan's COUNT is a hint: about the limit, never the whole ledger
        calls += 1
        assert calls <= 20, "healing did not go round the ledger"
    assert calls >= 3
    assert await bulk(queue) == Depth(due=0, later=0)
