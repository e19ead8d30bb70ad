"""The age of each lane's oldest due delivery: 0 when none is due, else since the head's due time.

The clock is passed in (``now``), so every age here is exact.
"""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from notifyq.queue import depth as depth_module
from notifyq.queue.arq_compat import JOB_KEY_PREFIX, job_payload
from notifyq.queue.jobs import BULK_QUEUE, CHUNK_SIZE, JobQueue, SendJob, serialize


def chunked(tag: str, n: int) -> list[SendJob]:
    return [SendJob(f"{tag}{i:06d}", f"batch-{tag}", 1, i) for i in range(n)]


async def test_lanes_with_nothing_due_are_zero(rdb: Redis) -> None:
    queue = JobQueue(rdb)
    now = time.time()
    assert await queue.oldest_due_age(now=now) == {"urgent": 0.0, "bulk": 0.0}
    await queue.enqueue_chunks("bulk", chunked("L", 10), start_ms=(now + 600) * 1000)  # scheduled, not due
    assert await queue.oldest_due_age(now=now) == {"urgent": 0.0, "bulk": 0.0}


async def test_the_age_is_the_head_s_wait(rdb: Redis) -> None:
    queue = JobQueue(rdb)
    now = time.time()
    await queue.enqueue_chunks("bulk", chunked("A", 2 * CHUNK_SIZE), start_ms=(now - 30) * 1000)
    await queue.enqueue_chunks("bulk", chunked("B", 5), start_ms=(now - 120) * 1000)
    await queue.enqueue("urgent", [SendJob("u1", "batch-U", 1)], start_ms=(now - 2) * 1000, first_seq=0)
    assert await queue.oldest_due_age(now=now) == {"urgent": 2.0, "bulk": 120.0}
    assert (await queue.oldest_due_age(now=now + 10))["bulk"] == 130.0  # it grows while nothing runs


async def test_jobs_without_deliveries_are_not_the_head(rdb: Redis) -> None:
    queue = JobQueue(rdb)
    now = time.time()
    await queue.enqueue_chunks("bulk", chunked("C", CHUNK_SIZE), start_ms=(now - 600) * 1000)
    await queue.enqueue_chunks("bulk", chunked("D", 3), start_ms=(now - 60) * 1000)
    # a canceled batch's chunk stays in the lane, counted empty, until it runs
    assert await queue.forget_batch("bulk", "batch-C", CHUNK_SIZE, drop=False) == CHUNK_SIZE
    # arq's cron job, older still, carries no deliveries
    await rdb.set(JOB_KEY_PREFIX + "cron:reconcile:1", serialize(job_payload("reconcile", [], 0)))
    await rdb.zadd(BULK_QUEUE, {"cron:reconcile:1": (now - 900) * 1000})
    assert (await queue.oldest_due_age(now=now))["bulk"] == 60.0


async def test_the_search_for_the_head_is_bounded(rdb: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = JobQueue(rdb)
    now = time.time()
    await queue.enqueue_chunks("bulk", chunked("E", 3 * CHUNK_SIZE), start_ms=(now - 60) * 1000)
    for i in range(150):  # empty jobs ahead of it, more than a page
        await rdb.zadd(BULK_QUEUE, {f"cron:x:{i}": (now - 900 + i) * 1000})
    monkeypatch.setattr(depth_module, "OLDEST_LOOKS", 4)
    # gave up within the bound: the head is no older than the last job looked at
    assert (await queue.oldest_due_age(now=now))["bulk"] == 900.0 - 3
    monkeypatch.setattr(depth_module, "OLDEST_LOOKS", 200)
    assert (await queue.oldest_due_age(now=now))["bulk"] == 60.0
