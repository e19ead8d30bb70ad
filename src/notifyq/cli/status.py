"""What operators ask: how deep are the lanes, how far is a batch, which accounts are paused."""

from __future__ import annotations

from typing import Any

from notifyq.producer import Producer
from notifyq.queue.connect import redis_from_url
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.report import gather_report
from notifyq.settings import Settings
from notifyq.store import Store


async def gather_status(settings: Settings, batch_id: str | None) -> dict[str, Any]:
    """The deployment's figures (``notifyq.report``: lanes, accounts, senders, callbacks, reconciler), a batch."""
    redis = redis_from_url(settings.redis_url or "")
    store = await Store.open(settings.sqlalchemy_url())
    try:
        jobs = JobQueue(redis)
        out = (await gather_report(jobs, CallbackInbox(redis, store), store, settings)).as_status()
        if batch_id:
            out["batch"] = await Producer(settings, store, jobs).batch_status(batch_id)
        return out
    finally:
        await redis.aclose()
        await store.close()
