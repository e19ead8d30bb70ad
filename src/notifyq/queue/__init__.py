"""Redis: connections (plain or Sentinel), the embedded server, job enqueue, queue depth, the callback inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifyq.lazy import lazy_exports

if TYPE_CHECKING:
    from notifyq.queue.arq_compat import ARQ_MAX_TRIES, JOB_KEY_PREFIX, LaneWorker, drop_finished, running_jobs
    from notifyq.queue.connect import REDIS_LOST, redis_from_url
    from notifyq.queue.deadletter import ENTRY_ID, DeadLetters
    from notifyq.queue.depth import Depth, DepthLedger, DepthSync
    from notifyq.queue.inbox import STREAM, CallbackInbox, dead_letters, run_applier
    from notifyq.queue.jobs import (
        BULK_QUEUE,
        CHUNK_FUNCTION,
        CHUNK_SIZE,
        JOBS_PER_CALL,
        LANES,
        SEND_FUNCTION,
        URGENT_QUEUE,
        JobQueue,
        SendJob,
        deserialize,
        serialize,
    )
    from notifyq.queue.redis_server import EmbeddedRedis, EmbeddedRedisError, die_with_parent, redis_binary

__all__ = [
    "ARQ_MAX_TRIES",
    "BULK_QUEUE",
    "CHUNK_FUNCTION",
    "CHUNK_SIZE",
    "ENTRY_ID",
    "JOBS_PER_CALL",
    "JOB_KEY_PREFIX",
    "LANES",
    "REDIS_LOST",
    "SEND_FUNCTION",
    "STREAM",
    "URGENT_QUEUE",
    "CallbackInbox",
    "DeadLetters",
    "Depth",
    "DepthLedger",
    "DepthSync",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "JobQueue",
    "LaneWorker",
    "SendJob",
    "dead_letters",
    "deserialize",
    "die_with_parent",
    "drop_finished",
    "redis_binary",
    "redis_from_url",
    "run_applier",
    "running_jobs",
    "serialize",
]

# each name loads its module on first use, so that a process loads only the parts of the queue it uses
_HOMES: dict[str, str] = {
    "ARQ_MAX_TRIES": "notifyq.queue.arq_compat",
    "BULK_QUEUE": "notifyq.queue.jobs",
    "JOBS_PER_CALL": "notifyq.queue.jobs",
    "CHUNK_FUNCTION": "notifyq.queue.jobs",
    "CHUNK_SIZE": "notifyq.queue.jobs",
    "CallbackInbox": "notifyq.queue.inbox",
    "DeadLetters": "notifyq.queue.deadletter",
    "Depth": "notifyq.queue.depth",
    "DepthLedger": "notifyq.queue.depth",
    "DepthSync": "notifyq.queue.depth",
    "ENTRY_ID": "notifyq.queue.deadletter",
    "EmbeddedRedis": "notifyq.queue.redis_server",
    "EmbeddedRedisError": "notifyq.queue.redis_server",
    "JOB_KEY_PREFIX": "notifyq.queue.arq_compat",
    "JobQueue": "notifyq.queue.jobs",
    "LANES": "notifyq.queue.jobs",
    "LaneWorker": "notifyq.queue.arq_compat",
    "REDIS_LOST": "notifyq.queue.connect",
    "SEND_FUNCTION": "notifyq.queue.jobs",
    "STREAM": "notifyq.queue.inbox",
    "SendJob": "notifyq.queue.jobs",
    "URGENT_QUEUE": "notifyq.queue.jobs",
    "dead_letters": "notifyq.queue.inbox",
    "deserialize": "notifyq.queue.jobs",
    "die_with_parent": "notifyq.queue.redis_server",
    "drop_finished": "notifyq.queue.arq_compat",
    "redis_binary": "notifyq.queue.redis_server",
    "redis_from_url": "notifyq.queue.connect",
    "run_applier": "notifyq.queue.inbox",
    "running_jobs": "notifyq.queue.arq_compat",
    "serialize": "notifyq.queue.jobs",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
