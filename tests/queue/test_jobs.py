"""The lanes in Redis: job payloads, start-time fair queueing scores, enqueueing twice.

These read the lanes' ZSETs directly (no worker): what arq will run first is the lowest score.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import msgpack
import pytest
from redis.asyncio import Redis

from notifyq.queue.arq_compat import JOB_KEY_PREFIX, RESULT_KEY_PREFIX
from notifyq.queue.depth import Depth
from notifyq.queue.jobs import (
    BULK_QUEUE,
    CHUNK_SIZE,
    JOBS_PER_CALL,
    STEP_MS,
    URGENT_QUEUE,
    JobQueue,
    SendJob,
    chunk_job_id,
    deserialize,
    serialize,
)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def queue(redis: Redis) -> JobQueue:
    return JobQueue(redis)


def jobs(tag: str, n: int, *, cost: int = 1) -> list[SendJob]:
    return [SendJob(f"{tag}{i:06d}", f"batch-{tag}", cost) for i in range(n)]


async def lane(redis: Redis, queue_name: str = BULK_QUEUE) -> list[tuple[str, float]]:
    """The lane in the order arq takes it: (job id, score), lowest score first."""
    return [(m.decode(), s) for m, s in await redis.zrange(queue_name, 0, -1, withscores=True)]


async def add(queue: JobQueue, tag: str, n: int, lane_name: str = "bulk") -> list[SendJob]:
    """Enqueue a batch the way the producer does: from the lane's current start."""
    batch = jobs(tag, n)
    start = await queue.lane_start(lane_name)
    assert await queue.enqueue(lane_name, batch, start_ms=start, first_seq=0) == n
    return batch


# ---- payloads --------------------------------------------------------------------------------------


async def test_a_job_is_an_arq_msgpack_payload_keyed_by_its_delivery_id(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue("bulk", [SendJob("d1", "b1", 3)], start_ms=1000.0, first_seq=0)
    raw = await redis.get(JOB_KEY_PREFIX + "d1")
    assert raw is not None
    payload = deserialize(raw)
    assert payload["f"] == "send"
    assert payload["a"] == ["b1", 3]  # the delivery id is the job id; the payload does not repeat it
    assert payload["k"] == {}
    assert payload["t"] == 1
    assert await redis.pttl(JOB_KEY_PREFIX + "d1") == -1  # no TTL: requeue checks the lane too (has_job)
    assert await redis.zscore(BULK_QUEUE, "d1") == 1000.0
    assert deserialize(serialize({"a": 1})) == {"a": 1}


def test_deserialize_refuses_anything_but_a_map() -> None:
    with pytest.raises(TypeError):
        deserialize(msgpack.packb([1, 2, 3]))


# ---- scores ----------------------------------------------------------------------------------------


async def test_lane_start_of_an_empty_lane_is_now(queue: JobQueue) -> None:
    before = time.time() * 1000
    start = await queue.lane_start("bulk")
    assert before <= start <= time.time() * 1000


async def test_lane_start_honours_a_future_not_before_and_ignores_a_past_one(queue: JobQueue) -> None:
    future = time.time() * 1000 + 60_000
    assert await queue.lane_start("bulk", not_before_ms=future) == future
    past = time.time() * 1000 - 60_000
    before = time.time() * 1000
    assert await queue.lane_start("bulk", not_before_ms=past) >= before


async def test_a_batch_is_scored_in_order_across_chunks(redis: Redis, queue: JobQueue) -> None:
    n = JOBS_PER_CALL * 2 + 500
    batch = jobs("a", n)
    start = time.time() * 1000
    assert await queue.enqueue("bulk", batch, start_ms=start, first_seq=7) == n
    got = await lane(redis)
    assert [job_id for job_id, _ in got] == [j.delivery_id for j in batch]
    scores = [s for _, s in got]
    assert all(a < b for a, b in itertools.pairwise(scores))  # no ties inside a batch
    assert scores[0] == pytest.approx(start + 7 * STEP_MS, abs=1e-3)
    assert scores[-1] == pytest.approx(start + (7 + n - 1) * STEP_MS, abs=1e-3)
    assert await queue.depth() == {"urgent": Depth(0, 0), "bulk": Depth(n, 0)}


async def test_a_batch_enqueued_behind_a_waiting_one_is_interleaved_one_for_one(redis: Redis, queue: JobQueue) -> None:
    await add(queue, "L", 1000)
    small = await add(queue, "S", 10)  # a moment later: starts at the lane's head, not after 1,000 jobs
    order = [job_id for job_id, _ in await lane(redis)]
    for j, job in enumerate(small):
        # the j-th small job ties with the j-th large one
        assert order.index(job.delivery_id) in {2 * j, 2 * j + 1}
    assert sum(1 for job_id in order[:20] if job_id.startswith("S")) == 10


async def test_a_batch_enqueued_mid_run_shares_from_the_current_head(redis: Redis, queue: JobQueue) -> None:
    large = await add(queue, "L", 1000)
    # a worker has run (and arq has removed) the first 400 large jobs
    await redis.zrem(BULK_QUEUE, *[j.delivery_id for j in large[:400]])
    head = (await lane(redis))[0]
    assert head[0] == large[400].delivery_id
    assert await queue.lane_start("bulk") == head[1]
    small = await add(queue, "S", 10)
    order = [job_id for job_id, _ in await lane(redis)]
    ranks = [order.index(job.delivery_id) for job in small]
    assert ranks == sorted(ranks)
    for j, rank in enumerate(ranks):
        assert 2 * j - 1 <= rank <= 2 * j + 2, ranks
    assert order[-1] == large[-1].delivery_id


async def test_three_batches_share_the_lane(redis: Redis, queue: JobQueue) -> None:
    await add(queue, "A", 600)
    await add(queue, "B", 300)
    await add(queue, "C", 30)
    first_90 = [job_id[0] for job_id, _ in (await lane(redis))[:90]]
    assert first_90.count("C") == 30
    assert first_90.count("A") == first_90.count("B") == 30


async def test_deferred_jobs_do_not_push_a_new_batch_into_the_future(redis: Redis, queue: JobQueue) -> None:
    # only jobs waiting for a retry or a pacing slot: their scores are in the future
    await redis.zadd(BULK_QUEUE, {"retry-1": time.time() * 1000 + 30_000})
    before = time.time() * 1000
    start = await queue.lane_start("bulk")
    assert before <= start <= time.time() * 1000
    await add(queue, "N", 5)
    order = [job_id for job_id, _ in await lane(redis)]
    assert order[-1] == "retry-1"


async def test_the_lanes_are_separate_queues(redis: Redis, queue: JobQueue) -> None:
    await add(queue, "B", 100)
    urgent = await add(queue, "U", 3, lane_name="urgent")
    assert await queue.depth() == {"urgent": Depth(3, 0), "bulk": Depth(100, 0)}
    assert [job_id for job_id, _ in await lane(redis, URGENT_QUEUE)] == [j.delivery_id for j in urgent]
    # an urgent batch does not start from the bulk lane's head, nor the other way round
    assert (await lane(redis, URGENT_QUEUE))[0][1] >= (await lane(redis))[0][1]


# ---- enqueueing twice ------------------------------------------------------------------------------


async def test_enqueueing_the_same_jobs_twice_makes_no_second_job(redis: Redis, queue: JobQueue) -> None:
    batch = await add(queue, "D", JOBS_PER_CALL + 5)
    before = await lane(redis)
    payload = await redis.get(JOB_KEY_PREFIX + batch[0].delivery_id)
    again = await queue.enqueue("bulk", batch, start_ms=await queue.lane_start("bulk"), first_seq=0)
    assert again == 0
    assert await redis.zcard(BULK_QUEUE) == JOBS_PER_CALL + 5
    assert await lane(redis) == before  # same scores: a re-enqueue does not move jobs
    assert await redis.get(JOB_KEY_PREFIX + batch[0].delivery_id) == payload
    # into the other lane neither: the job key is what makes a job exist
    assert await queue.enqueue("urgent", batch[:3], start_ms=0.0, first_seq=0) == 0
    assert await redis.zcard(URGENT_QUEUE) == 0


async def test_enqueue_counts_only_the_new_jobs(redis: Redis, queue: JobQueue) -> None:
    first = jobs("P", 10)
    await queue.enqueue("bulk", first[:4], start_ms=1.0, first_seq=0)
    assert await queue.enqueue("bulk", first, start_ms=1.0, first_seq=0) == 6
    assert await redis.zcard(BULK_QUEUE) == 10
    asked = [(j.delivery_id, j.batch_id, -1) for j in first] + [("nope", "batch-P", -1)]
    assert await queue.has_job(asked) == [True] * 10 + [False]


async def test_a_job_with_a_result_is_not_queued_again(redis: Redis, queue: JobQueue) -> None:
    await redis.set(RESULT_KEY_PREFIX + "done-1", b"x")
    assert await queue.enqueue("bulk", [SendJob("done-1", "b", 1)], start_ms=1.0, first_seq=0) == 0
    assert await redis.zcard(BULK_QUEUE) == 0


async def test_a_job_key_without_a_place_in_a_lane_does_not_count_as_a_job(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue("bulk", [SendJob("d1", "b1", 1), SendJob("d2", "b1", 1)], start_ms=1.0, first_seq=0)
    await redis.zrem(BULK_QUEUE, "d2")  # an orphaned key: requeue must still see that d2 has no job
    assert await queue.has_job([("d1", "b1", -1), ("d2", "b1", -1), ("d3", "b1", -1)]) == [True, False, False]


# ---- chunk jobs ------------------------------------------------------------------------------------


def chunked(tag: str, n: int) -> list[SendJob]:
    return [SendJob(f"{tag}{i:06d}", f"batch-{tag}", 1 + i % 3, i) for i in range(n)]


async def test_a_batch_is_queued_as_chunk_jobs_named_by_batch_and_seq(redis: Redis, queue: JobQueue) -> None:
    n = CHUNK_SIZE * 3 + 7
    batch = chunked("K", n)
    start = time.time() * 1000
    assert await queue.enqueue_chunks("bulk", batch, start_ms=start) == n
    got = await lane(redis)
    assert [job_id for job_id, _ in got] == [f"batch-K.{i}" for i in range(4)]
    # each chunk sits at its first delivery's place, as one job per delivery would
    for i, (_, score) in enumerate(got):
        assert score == pytest.approx(start + i * CHUNK_SIZE * STEP_MS, abs=1e-3)
    payload = deserialize(await redis.get(JOB_KEY_PREFIX + "batch-K.3"))
    assert payload["f"] == "send_chunk"
    assert payload["a"] == ["batch-K", [j.delivery_id for j in batch[3 * CHUNK_SIZE :]], [j.cost for j in batch[150:]]]
    assert chunk_job_id("batch-K", CHUNK_SIZE * 3 + 6) == "batch-K.3"
    # enqueueing again makes nothing new
    assert await queue.enqueue_chunks("bulk", batch, start_ms=start) == 0
    assert await redis.zcard(BULK_QUEUE) == 4


async def test_chunks_without_a_seq_are_refused(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="no seq"):
        await queue.enqueue_chunks("bulk", [SendJob("x", "b", 1)], start_ms=1.0)


async def test_a_small_batch_behind_a_large_one_is_interleaved_chunk_for_chunk(redis: Redis, queue: JobQueue) -> None:
    await queue.enqueue_chunks("bulk", chunked("L", CHUNK_SIZE * 20), start_ms=await queue.lane_start("bulk"))
    await queue.enqueue_chunks("bulk", chunked("S", CHUNK_SIZE * 2), start_ms=await queue.lane_start("bulk"))
    order = [job_id for job_id, _ in await lane(redis)]
    assert {order.index("batch-S.0"), order.index("batch-S.1")} <= {0, 1, 2, 3}


async def test_has_job_sees_a_delivery_in_its_chunk_while_the_chunk_lists_it(redis: Redis, queue: JobQueue) -> None:
    batch = chunked("H", CHUNK_SIZE + 2)
    await queue.enqueue_chunks("bulk", batch, start_ms=1.0)
    asked = [(j.delivery_id, j.batch_id, j.seq) for j in batch]
    assert await queue.has_job(asked) == [True] * len(batch)
    # the first chunk still owes only its last two deliveries (the rest were sent, or left for jobs of their own)
    rest = batch[CHUNK_SIZE - 2 : CHUNK_SIZE]
    await queue.rewrite_chunk(
        "batch-H.0", "batch-H", [j.delivery_id for j in rest], [j.cost for j in rest], lane="bulk"
    )
    present = await queue.has_job(asked)
    assert present == [False] * (CHUNK_SIZE - 2) + [True] * 4
    # one of the others got a job of its own
    assert await queue.defer("bulk", batch[0], at_s=time.time() + 60)
    assert not await queue.defer("bulk", batch[0], at_s=time.time())  # one job per delivery, still
    assert (await queue.has_job(asked[:2])) == [True, False]
    # a chunk with no place in a lane is no job
    await redis.zrem(BULK_QUEUE, "batch-H.1")
    assert (await queue.has_job(asked[-2:])) == [False, False]


async def test_rewriting_a_chunk_that_is_gone_creates_nothing(redis: Redis, queue: JobQueue) -> None:
    await queue.rewrite_chunk("batch-Z.0", "batch-Z", ["z1"], [1], lane="bulk")
    assert await redis.exists(JOB_KEY_PREFIX + "batch-Z.0") == 0
