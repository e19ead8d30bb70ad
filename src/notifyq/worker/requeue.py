"""Queue again what Redis lost: every delivery notifyq still owes a send and that has no job.

Safe to run at any time and as often as you like: a delivery that still has a job is skipped, the
enqueue script never makes a second job for one id, and a delivery left ``dispatching`` goes
through the worker's ambiguous-send path (look in Twilio's list before any new attempt), so no
second live message is ever produced.

Operators run it for every batch (``notifyq requeue``, ``cli/requeue.py``); the reconciler's pass
runs it for the batches whose enqueue was interrupted (``sweep_interrupted``): their rows were
committed, and the process that was queueing their jobs stopped before it marked them enqueued.

One bad row stops nothing: a batch that cannot be prepared (its account is no longer configured) is
reported under ``skipped`` with the reason and its deliveries are left as they are; a delivery whose
body cannot be rendered is queued all the same (one segment), for the worker to settle as ``failed``
with the reason, and counted under ``unrenderable``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import structlog

from notifyq import statuses as st
from notifyq.errors import Unsendable
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.settings import Settings
from notifyq.store import Store
from notifyq.worker.prepared import BatchCache, PreparedBatch

OWED = (st.PENDING, st.RETRYING, st.DISPATCHING)
log = structlog.get_logger("notifyq.requeue")


async def requeue_with(
    store: Store,
    jobs: JobQueue,
    settings: Settings,
    *,
    dry_run: bool = False,
    batch_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Requeue missing jobs (of ``batch_ids``, or of every batch) using open connections; returns counts."""
    batches = _Batches(BatchCache(store, settings))
    checked = queued = 0
    by_batch: dict[str, list[SendJob]] = defaultdict(list)
    async for page in store.iter_unsettled(OWED, batch_ids=batch_ids):
        checked += len(page)
        present = await jobs.has_job([(did, batch_id, seq) for did, batch_id, seq, _ in page])
        for (did, batch_id, _seq, variables), has in zip(page, present, strict=True):
            job = None if has else await batches.job(did, batch_id, variables)
            if job is not None:
                by_batch[batch_id].append(job)
    for batch_id, missing in by_batch.items():
        prepared = await batches.get(batch_id)
        if prepared is None:  # pragma: no cover - only prepared batches have deliveries here
            continue
        row = prepared.row
        if dry_run:
            queued += len(missing)
            continue
        start = await jobs.lane_start(row.priority, not_before_ms=row.send_at * 1000 if row.send_at else None)
        queued += await jobs.enqueue(row.priority, missing, start_ms=start, first_seq=0)
    if not dry_run:
        for batch_id in batch_ids or by_batch:
            batch = await batches.get(batch_id)
            if batch is not None and batch.row.enqueued_at is None:
                await store.mark_enqueued(batch_id)
    out: dict[str, Any] = {"checked": checked, "requeued" if not dry_run else "would_requeue": queued}
    return out | {"batches": len(by_batch), "skipped": batches.skipped, "unrenderable": batches.unrenderable}


class _Batches:
    """Prepared batches for requeue; one that cannot be prepared is noted once in ``skipped`` and is None."""

    def __init__(self, cache: BatchCache) -> None:
        self.cache = cache
        self.skipped: dict[str, str] = {}  # batch id -> why its deliveries were left as they are
        self.unrenderable = 0

    async def job(self, delivery_id: str, batch_id: str, variables: dict[str, str] | None) -> SendJob | None:
        """The job that sends a delivery, costed by its body's segments; None when its batch is skipped."""
        batch = await self.get(batch_id)
        if batch is None:
            return None
        try:
            batch.body(variables)
        except Unsendable as exc:  # queued all the same: the worker fails it with the reason
            log.warning("queued a delivery that cannot be sent", delivery_id=delivery_id, reason=exc.reason)
            self.unrenderable += 1
        return SendJob(delivery_id, batch_id, batch.cost(variables))

    async def get(self, batch_id: str) -> PreparedBatch | None:
        if batch_id in self.skipped:
            return None
        try:
            return await self.cache.get(batch_id)
        except Unsendable as exc:
            log.warning("batch skipped: it cannot be prepared", batch_id=batch_id, reason=exc.reason)
            self.skipped[batch_id] = exc.reason
            return None


async def sweep_interrupted(store: Store, jobs: JobQueue, settings: Settings, *, grace_s: float) -> int:
    """Finish the enqueue of batches whose producer stopped half-way; returns the deliveries queued.

    A batch counts as interrupted when it is not marked enqueued ``grace_s`` after it was created
    (long enough for its producer to have queued it whole); its jobs already in Redis are kept.
    """
    stuck = await store.unenqueued_batches(created_before=time.time() - grace_s)
    if not stuck:
        return 0
    result = await requeue_with(store, jobs, settings, batch_ids=stuck)
    log.warning("interrupted enqueue finished", batches=len(stuck), requeued=result["requeued"])
    return int(result["requeued"])
