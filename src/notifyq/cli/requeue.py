"""``notifyq requeue``: queue again every delivery notifyq still owes a send and that has no job.

The work is the worker's own (``worker/requeue.py``, which the reconciler also runs for interrupted
enqueues); this opens the connections an operator's command needs.
"""

from __future__ import annotations

from typing import Any

from notifyq.queue.connect import redis_from_url
from notifyq.queue.jobs import JobQueue
from notifyq.settings import Settings
from notifyq.store import Store
from notifyq.worker import requeue_with


async def requeue_missing(settings: Settings, redis_url: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Open the store and Redis, requeue, close."""
    store = await Store.open(settings.sqlalchemy_url())
    redis = redis_from_url(redis_url)
    try:
        await redis.ping()  # Redis down is said as such, even when nothing is owed
        return await requeue_with(store, JobQueue(redis), settings, dry_run=dry_run)
    finally:
        await redis.aclose()
        await store.close()
