"""Jobs in Redis: msgpack-serialised arq jobs, enqueued in bulk.

Two kinds of job, both in the same lanes:

* a **chunk job** (``send_chunk``) carries up to ``CHUNK_SIZE`` consecutive deliveries of one batch:
  its id is ``<batch id>.<seq // CHUNK_SIZE>``, so the chunk a delivery was queued in follows from
  the delivery row alone. A fresh batch is queued this way: arq's own work per job (several Redis
  round trips, and its CPU) is paid once per chunk, not once per delivery. While it runs,
  a chunk job may rewrite its own payload to the deliveries it still owes (those the pacer asked to
  wait) and come back later with arq's ``Retry``; a delivery that leaves the chunk for any other
  reason (a retry after an error, an unanswered create) gets a job of its own.
* a **delivery job** (``send``, job id = delivery id): retries, ambiguous sends, and whatever
  ``notifyq requeue`` puts back.

arq's own ``enqueue_job`` runs a WATCH/MULTI transaction per job; a 100,000-recipient batch wants
one script call per chunk instead. The keys and the payload are what arq's worker reads
(``queue/arq_compat.py``), in msgpack: never pickle, so whoever can write to Redis cannot run code in
a worker.

Lanes are separate arq queues: ``urgent`` never waits behind ``bulk``. Inside the bulk lane, batches
are interleaved by start-time fair queueing: a batch's i-th job is scored ``start + i * STEP_MS``,
where ``start`` is the lane's current head when the batch arrives. A batch enqueued behind a
million-job batch therefore shares the lane one-for-one instead of waiting for it to drain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack
from redis.asyncio import Redis

from notifyq.queue.arq_compat import JOB_KEY_PREFIX, job_args, job_payload
from notifyq.queue.depth import LEDGER_LUA, Depth, DepthLedger, ledger_keys

URGENT_QUEUE: Final = "notifyq:queue:urgent"
BULK_QUEUE: Final = "notifyq:queue:bulk"
LANES: Final = {"urgent": URGENT_QUEUE, "bulk": BULK_QUEUE}
SEND_FUNCTION: Final = "send"
CHUNK_FUNCTION: Final = "send_chunk"
STEP_MS: Final = 0.001  # spacing of one batch's deliveries in the lane's order; 1,000,000 span 1 s
JOBS_PER_CALL: Final = 1000  # jobs per enqueue or forget script call
# deliveries per chunk job. Changing it is safe: a chunk id computed with another size is simply
# not found, and the delivery is queued again on its own, which the guarded claim makes harmless.
CHUNK_SIZE: Final = 50

# KEYS[1] queue, KEYS[2..5] the lane's depth ledger; ARGV[1] now (s), then (job_id, score, payload,
# deliveries) quadruples. A job whose key or result exists already is left alone, so enqueueing twice never
# makes a second job while the first is queued or running. (A finished job keeps no key: queued again, it
# runs and finds its delivery no longer claimable.) Each job added is counted in the ledger.
_ENQUEUE = (
    LEDGER_LUA
    + """
local D = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local folded = depth_fold(D, tonumber(ARGV[1]))
local added = {}
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('exists', ARQ_JOB_KEY .. id, ARQ_RESULT_KEY .. id) == 0 then
    redis.call('set', ARQ_JOB_KEY .. id, ARGV[i + 2])
    redis.call('zadd', KEYS[1], ARGV[i + 1], id)
    depth_take(D, folded, id)
    depth_put(D, folded, id, tonumber(ARGV[i + 3]), depth_second(ARGV[i + 1]))
    added[#added + 1] = (i + 2) / 4
  end
end
return added
"""
)

# KEYS[1] the chunk's job key, KEYS[2..5] its lane's depth ledger; ARGV: now (s), payload, deliveries, job id.
# The payload is replaced only while the job exists; the ledger keeps the job's due second (arq moves the
# job when it is deferred, and the worker syncs the ledger then), and a canceled chunk's 0.
_REWRITE = (
    LEDGER_LUA
    + """
if not redis.call('set', KEYS[1], ARGV[2], 'XX') then return 0 end
local D = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local folded = depth_fold(D, tonumber(ARGV[1]))
local id = ARGV[4]
local n, s = depth_take(D, folded, id)
if n then depth_put(D, folded, id, n == 0 and 0 or tonumber(ARGV[3]), s) end
return 1
"""
)

# KEYS[1] queue, KEYS[2..5] the lane's depth ledger; ARGV[1] now (s), ARGV[2] '1' to drop the jobs too, then
# job ids. Dropped, a job leaves the lane and the ledger, unless it is running; a job that stays in the lane
# stays in the ledger with 0 deliveries (so that a sync does not count it again from its payload).
_FORGET = (
    LEDGER_LUA
    + """
local D = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local folded = depth_fold(D, tonumber(ARGV[1]))
local gone = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local n = depth_take(D, folded, id)
  if n then gone = gone + n end
  if ARGV[2] == '1' and redis.call('exists', ARQ_IN_PROGRESS_KEY .. id) == 0 then
    redis.call('zrem', KEYS[1], id)
    redis.call('del', ARQ_JOB_KEY .. id, ARQ_RETRY_KEY .. id)
  else
    local score = redis.call('zscore', KEYS[1], id)
    if score then depth_put(D, folded, id, 0, depth_second(score)) end
  end
end
return gone
"""
)

# KEYS[1] queue; ARGV[1] now_ms. The score a new batch starts from: the head when there is a backlog.
_LANE_START = """
local head = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
local now = tonumber(ARGV[1])
if head[2] and tonumber(head[2]) < now then return head[2] end
return ARGV[1]
"""


def serialize(obj: dict[str, Any]) -> bytes:
    """Arq's job serializer, msgpack instead of pickle."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def deserialize(data: bytes) -> dict[str, Any]:
    """Arq's job deserializer; refuses anything that is not a msgpack map."""
    obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(obj, dict):
        raise TypeError("job payload is not a map")
    return obj


@dataclass(frozen=True, slots=True)
class SendJob:
    """What a worker needs to pace and send one delivery without reading its row first."""

    delivery_id: str
    batch_id: str
    cost: int  # segments for messages, 1 for calls
    seq: int = -1  # the delivery's place in its batch (names its chunk); -1: unknown


def chunk_job_id(batch_id: str, seq: int) -> str:
    """The id of the chunk job that delivery number ``seq`` of ``batch_id`` was queued in."""
    return f"{batch_id}.{seq // CHUNK_SIZE}"


def _payload(function: str, args: list[Any], enqueued_ms: int) -> bytes:
    return serialize(job_payload(function, args, enqueued_ms))


class JobQueue:
    """Puts send jobs into the lanes."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._rewrite = redis.register_script(_REWRITE)
        self._forget = redis.register_script(_FORGET)
        self.ledger = DepthLedger(redis)
        self._lane_start = redis.register_script(_LANE_START)

    async def lane_start(self, lane: str, *, not_before_ms: float | None = None) -> float:
        """The score the next batch in ``lane`` starts at (fair share behind a backlog)."""
        now_ms = time.time() * 1000
        if not_before_ms is not None and not_before_ms > now_ms:
            return not_before_ms
        return float(await self._lane_start(keys=[LANES[lane]], args=[now_ms]))

    async def enqueue(self, lane: str, jobs: Sequence[SendJob], *, start_ms: float, first_seq: int) -> int:
        """Enqueue ``jobs`` in ``lane``; the i-th is scored ``start_ms + (first_seq + i) * STEP_MS``.

        Returns how many were new (jobs still queued or running are not queued twice).
        """
        added = 0
        now_ms = int(time.time() * 1000)
        for offset in range(0, len(jobs), JOBS_PER_CALL):
            args: list[Any] = [now_ms // 1000]
            for i, job in enumerate(jobs[offset : offset + JOBS_PER_CALL], start=first_seq + offset):
                payload = _payload(SEND_FUNCTION, [job.batch_id, job.cost], now_ms)
                args += [job.delivery_id, start_ms + i * STEP_MS, payload, 1]
            added += len(await self._enqueue(keys=_lane_keys(lane), args=args))
        return added

    async def enqueue_chunks(self, lane: str, jobs: Sequence[SendJob], *, start_ms: float) -> int:
        """Enqueue one batch's deliveries as chunk jobs, grouped by ``seq // CHUNK_SIZE``.

        A chunk is scored at its first delivery's place (``start_ms + seq * STEP_MS``), so batches
        share a lane as they would one job per delivery. Returns how many deliveries were queued
        (a chunk that is still queued or running is not queued twice).
        """
        chunks: dict[str, list[SendJob]] = {}
        for job in jobs:
            if job.seq < 0:
                raise ValueError(f"delivery {job.delivery_id} has no seq: it cannot be put in a chunk")
            chunks.setdefault(chunk_job_id(job.batch_id, job.seq), []).append(job)
        items = list(chunks.items())
        added = 0
        now_ms = int(time.time() * 1000)
        for offset in range(0, len(items), JOBS_PER_CALL):
            args: list[Any] = [now_ms // 1000]
            part = items[offset : offset + JOBS_PER_CALL]
            for chunk_id, members in part:
                payload = _payload(
                    CHUNK_FUNCTION,
                    [members[0].batch_id, [m.delivery_id for m in members], [m.cost for m in members]],
                    now_ms,
                )
                args += [chunk_id, start_ms + min(m.seq for m in members) * STEP_MS, payload, len(members)]
            for index in await self._enqueue(keys=_lane_keys(lane), args=args):
                added += len(part[int(index) - 1][1])
        return added

    async def defer(self, lane: str, job: SendJob, *, at_s: float) -> bool:
        """Give one delivery a job of its own, due at ``at_s`` (epoch seconds); False if it has one already."""
        now_ms = int(time.time() * 1000)
        payload = _payload(SEND_FUNCTION, [job.batch_id, job.cost], now_ms)
        args: list[Any] = [now_ms // 1000, job.delivery_id, at_s * 1000, payload, 1]
        return bool(await self._enqueue(keys=_lane_keys(lane), args=args))

    async def rewrite_chunk(
        self, chunk_id: str, batch_id: str, delivery_ids: Sequence[str], costs: Sequence[int], *, lane: str
    ) -> None:
        """Replace a running chunk job's payload with the deliveries it still owes (arq reads it at the next run)."""
        now_ms = int(time.time() * 1000)
        payload = _payload(CHUNK_FUNCTION, [batch_id, list(delivery_ids), list(costs)], now_ms)
        keys = [JOB_KEY_PREFIX + chunk_id, *ledger_keys(lane)]
        await self._rewrite(keys=keys, args=[now_ms // 1000, payload, len(delivery_ids), chunk_id])

    async def forget_batch(self, lane: str, batch_id: str, total: int, *, drop: bool) -> int:
        """Take a canceled batch's chunk jobs out of the queue depth; returns the deliveries taken out.

        ``drop``: out of the lane too (only for a batch that has not started: none of its deliveries was
        ever claimed, so every one listed was canceled). Otherwise the jobs run and find nothing to
        send. A delivery of the batch with a job of its own (a retry) is counted until that job runs.
        """
        chunk_ids = [chunk_job_id(batch_id, seq) for seq in range(0, total, CHUNK_SIZE)]
        gone = 0
        for at in range(0, len(chunk_ids), JOBS_PER_CALL):
            args = [int(time.time()), "1" if drop else "0", *chunk_ids[at : at + JOBS_PER_CALL]]
            gone += int(await self._forget(keys=_lane_keys(lane), args=args))
        return gone

    async def has_job(self, deliveries: Sequence[tuple[str, str, int]]) -> list[bool]:
        """Whether each (delivery id, batch id, seq) has a job that will run.

        A job will run when its key exists and it has a place in a lane: the delivery's own job, or
        the chunk it was queued in, as long as that chunk's payload still lists it.
        """
        distinct = sorted({chunk_job_id(b, s) for _, b, s in deliveries if s >= 0})
        async with self.redis.pipeline(transaction=False) as pipe:
            for did, _, _ in deliveries:
                pipe.exists(JOB_KEY_PREFIX + did)
                for queue in LANES.values():
                    pipe.zscore(queue, did)
            for chunk_id in distinct:
                pipe.get(JOB_KEY_PREFIX + chunk_id)
                for queue in LANES.values():
                    pipe.zscore(queue, chunk_id)
            replies = await pipe.execute()
        step = 1 + len(LANES)
        groups = [replies[i : i + step] for i in range(0, len(replies), step)]
        live = [bool(g[0]) and any(r is not None for r in g[1:]) for g in groups]
        members: set[str] = set()
        for group, alive in zip(groups[len(deliveries) :], live[len(deliveries) :], strict=True):
            if alive:
                members.update(job_args(deserialize(group[0]))[1])
        return [own or did in members for own, (did, _, _) in zip(live[: len(deliveries)], deliveries, strict=True)]

    async def depth(self) -> dict[str, Depth]:
        """Deliveries waiting in each lane's jobs, due now and scheduled for later (see ``queue/depth.py``)."""
        return await self.ledger.read(list(LANES))

    async def oldest_due_age(self, *, now: float | None = None) -> dict[str, float]:
        """Per lane, how long its oldest due delivery has waited, in seconds (0 for a lane with none due)."""
        return {lane: await self.ledger.oldest_due_age(lane, queue, now=now) for lane, queue in LANES.items()}


def _lane_keys(lane: str) -> list[str]:
    """KEYS of the enqueue script: the lane's queue, then its depth ledger."""
    return [LANES[lane], *ledger_keys(lane)]
