"""Jobs in Redis: msgpack-serialised arq jobs, enqueued in bulk, one per delivery (job id = delivery id).

arq's own ``enqueue_job`` runs a WATCH/MULTI transaction per job; a 100,000-recipient batch wants
one script call per chunk instead. The payload is what arq's worker reads (``t f a k et``), in
msgpack: never pickle, so whoever can write to Redis cannot run code in a worker.

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

JOB_KEY_PREFIX: Final = "arq:job:"
RESULT_KEY_PREFIX: Final = "arq:result:"
URGENT_QUEUE: Final = "notifyq:queue:urgent"
BULK_QUEUE: Final = "notifyq:queue:bulk"
LANES: Final = {"urgent": URGENT_QUEUE, "bulk": BULK_QUEUE}
SEND_FUNCTION: Final = "send"
STEP_MS: Final = 0.001  # spacing of one batch's jobs in the lane's order; 1,000,000 jobs span 1 s
CHUNK: Final = 1000

# KEYS[1] queue; ARGV: (job_id, score, payload) triples. A job whose key or result exists
# already is left alone, so enqueueing twice never makes a second job while the first is queued or running.
# (A finished job keeps no key: queued again, it runs and finds its delivery no longer claimable.)
_ENQUEUE = """
local added = 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('exists', 'arq:job:' .. id, 'arq:result:' .. id) == 0 then
    redis.call('set', 'arq:job:' .. id, ARGV[i + 2])
    redis.call('zadd', KEYS[1], ARGV[i + 1], id)
    added = added + 1
  end
end
return added
"""

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


class JobQueue:
    """Puts send jobs into the lanes."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
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
        for offset in range(0, len(jobs), CHUNK):
            args: list[Any] = []
            for i, job in enumerate(jobs[offset : offset + CHUNK], start=first_seq + offset):
                payload = serialize({"t": 1, "f": SEND_FUNCTION, "a": [job.batch_id, job.cost], "k": {}, "et": now_ms})
                args += [job.delivery_id, start_ms + i * STEP_MS, payload]
            added += int(await self._enqueue(keys=[LANES[lane]], args=args))
        return added

    async def has_job(self, delivery_ids: Sequence[str]) -> list[bool]:
        """Whether each delivery has a job that will run: its key, and its place in a lane."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for did in delivery_ids:
                pipe.exists(JOB_KEY_PREFIX + did)
                for queue in LANES.values():
                    pipe.zscore(queue, did)
            replies = await pipe.execute()
        step = 1 + len(LANES)
        return [
            bool(replies[i]) and any(r is not None for r in replies[i + 1 : i + step])
            for i in range(0, len(replies), step)
        ]

    async def depth(self) -> dict[str, int]:
        """Jobs waiting in each lane (queued and deferred)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in LANES.values():
                pipe.zcard(queue)
            counts = await pipe.execute()
        return dict(zip(LANES, (int(c) for c in counts), strict=True))
