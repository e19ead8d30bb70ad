"""The arq job functions, and the only place where a send's result becomes arq's ``Retry``.

* ``send`` (job id: the delivery id) and ``send_chunk`` (job id: ``<batch id>.<n>``) run the
  dispatcher and put what it returns in arq's terms: a ``Deferred`` is ``Retry(defer=...)``; a
  chunk that still owes deliveries (``Owed``) has its payload rewritten to them first. Each
  deferral is counted (``notifyq_job_deferrals_total``).
* The store or Redis failing mid-job: the job comes back after ``worker.unavailable_retry_s``
  (arq would otherwise drop it as failed; a claim already made is settled as an unanswered attempt
  would be).
* ``reconcile``: arq's cron job, in one worker at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

import structlog
from arq.cron import CronJob, cron
from arq.worker import Function, Retry, func
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from notifyq.queue.arq_compat import ARQ_MAX_TRIES
from notifyq.queue.jobs import CHUNK_FUNCTION, SEND_FUNCTION
from notifyq.worker.app import WorkerApp
from notifyq.worker.outcomes import ChunkRun, Deferred, defer_s
from notifyq.worker.reconcile import reconcile_once

log = structlog.get_logger("notifyq.worker")
APP_KEY: Final = "notifyq"  # the WorkerApp in arq's job context
# in arq's job context: give the running job's slot back (``LaneWorker.let_go``) while it still runs
LET_GO_KEY: Final = "notifyq_let_go"
# the store or Redis failing mid-job
_UNAVAILABLE = (DBAPIError, RedisError, ConnectionError)


async def send(ctx: dict[str, Any], batch_id: str, cost: int) -> None:
    """Arq job: send one delivery (the job id is the delivery id)."""
    app: WorkerApp = ctx[APP_KEY]
    delivery_id: str = ctx["job_id"]
    try:
        result = await app.dispatcher.send(delivery_id, batch_id, cost)
    except _UNAVAILABLE as exc:
        raise _unavailable(app, delivery_id, "delivery", exc) from exc
    if isinstance(result, Deferred):
        raise _deferred(app, "delivery", result.until)


async def send_chunk(ctx: dict[str, Any], batch_id: str, delivery_ids: list[str], costs: list[int]) -> None:
    """Arq job: send a chunk of one batch's deliveries (the job id names the chunk)."""
    app: WorkerApp = ctx[APP_KEY]
    chunk_id: str = ctx["job_id"]
    let_go: Callable[[str], object] | None = ctx.get(LET_GO_KEY)
    # once the chunk has booked what it can, it only waits for its slots: its job slot goes to another job
    booked = functools.partial(let_go, chunk_id) if let_go is not None else lambda: None
    try:
        ran = await app.dispatcher.send_chunk(batch_id, delivery_ids, costs, booked=booked)
        owed = ran.owed if isinstance(ran, ChunkRun) else None
        if owed is not None:  # the chunk comes back with the deliveries it still owes, and only those
            await app.jobs.rewrite_chunk(chunk_id, batch_id, owed.delivery_ids, owed.costs, lane=owed.lane)
    except _UNAVAILABLE as exc:
        raise _unavailable(app, chunk_id, "chunk", exc) from exc
    if isinstance(ran, Deferred):
        raise _deferred(app, "chunk", ran.until)
    if owed is not None:
        raise _deferred(app, "chunk", owed.until)


async def reconcile(ctx: dict[str, Any]) -> None:
    """Arq cron job: fetch deliveries whose callbacks never came."""
    await reconcile_once(ctx[APP_KEY])


def _deferred(app: WorkerApp, job: str, until: float) -> Retry:
    app.metrics.deferrals.labels(job=job).inc()
    return Retry(defer=defer_s(until))


def _unavailable(app: WorkerApp, job_id: str, job: str, exc: BaseException) -> Retry:
    log.warning("store or Redis unavailable; job comes back later", job_id=job_id, error=str(exc))
    app.metrics.deferrals.labels(job=job).inc()
    return Retry(defer=app.settings.worker.unavailable_retry_s)


def functions() -> list[Function]:
    """The send jobs as arq runs them: no result kept; tries bounded by the delivery row, not by arq."""
    return [
        func(send, name=SEND_FUNCTION, max_tries=ARQ_MAX_TRIES, keep_result=0),
        func(send_chunk, name=CHUNK_FUNCTION, max_tries=ARQ_MAX_TRIES, keep_result=0),
    ]


def cron_jobs(interval_s: float) -> list[CronJob]:
    """The reconciler's pass every ``interval_s`` seconds, in one worker at a time."""
    minute, second = _every(interval_s)
    return [cron(reconcile, name="reconcile", unique=True, minute=minute, second=second)]


def _every(interval_s: float) -> tuple[set[int] | None, set[int]]:
    """The arq cron (minute, second) fields for "every ``interval_s`` seconds", as a clock face allows."""
    step = max(1, round(interval_s))
    if step < 60:
        return None, set(range(0, 60, step))
    return set(range(0, 60, max(1, step // 60))), {0}
