"""Queue again what Redis lost: every delivery notifyq still owes a send and that has no job.

Safe to run at any time and as often as you like: a delivery that still has a job is skipped, the
enqueue script never makes a second job for one id, and a delivery left ``dispatching`` goes
through the worker's ambiguous-send path (look in Twilio's list before any new attempt), so no
second live message is ever produced.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from notifyq import statuses as st
from notifyq.queue.connect import redis_from_url
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.segments import segment_count
from notifyq.settings import Settings
from notifyq.statuses import Channel
from notifyq.store.repo import Store
from notifyq.worker.prepared import BatchCache

OWED = (st.PENDING, st.RETRYING, st.DISPATCHING)


async def requeue_with(
    store: Store,
    jobs: JobQueue,
    settings: Settings,
    *,
    dry_run: bool = False,
    batch_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Requeue missing jobs (of ``batch_ids``, or of every batch) using open connections; returns counts."""
    batches = BatchCache(store, settings)
    checked = queued = 0
    by_batch: dict[str, list[SendJob]] = defaultdict(list)
    async for chunk in store.iter_unsettled(OWED, batch_ids=batch_ids):
        checked += len(chunk)
        present = await jobs.has_job([(did, batch_id, seq) for did, batch_id, seq, _ in chunk])
        for (did, batch_id, _seq, variables), has in zip(chunk, present, strict=True):
            if has:
                continue
            batch = await batches.get(batch_id)
            body = batch.body(variables) if batch.channel is not Channel.CALL else None
            by_batch[batch_id].append(SendJob(did, batch_id, segment_count(body) if body else 1))
    for batch_id, missing in by_batch.items():
        row = (await batches.get(batch_id)).row
        if dry_run:
            queued += len(missing)
            continue
        start = await jobs.lane_start(row.priority, not_before_ms=row.send_at * 1000 if row.send_at else None)
        queued += await jobs.enqueue(row.priority, missing, start_ms=start, first_seq=0)
    if not dry_run:
        for batch_id in batch_ids or by_batch:
            if (await batches.get(batch_id)).row.enqueued_at is None:
                await store.mark_enqueued(batch_id)
    return {"checked": checked, "requeued" if not dry_run else "would_requeue": queued, "batches": len(by_batch)}


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


async def sweep_interrupted(store: Store, jobs: JobQueue, settings: Settings, *, grace_s: float = 60.0) -> int:
    """Finish the enqueue of batches whose producer stopped half-way (run by the worker's cron)."""
    stuck = await store.unenqueued_batches(created_before=time.time() - grace_s)
    if not stuck:
        return 0
    result = await requeue_with(store, jobs, settings, batch_ids=stuck)
    return int(result["requeued"])
