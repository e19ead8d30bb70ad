"""The worker process's composition root: ``create_worker(settings)``.

One process runs two arq workers on one event loop, one per lane, sharing one context (store,
Redis, pacer, Twilio session): urgent jobs get worker slots of their own and never queue behind
bulk ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

import structlog
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.cron import cron
from arq.utils import timestamp_ms
from arq.worker import Function, Retry, Worker, func
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError

from notifyq.ops.metrics import WorkerMetrics, serve_metrics
from notifyq.ops.runtime import freeze_heap
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.connect import redis_from_url
from notifyq.queue.depth import DepthLedger, DepthSync
from notifyq.queue.jobs import (
    BULK_QUEUE,
    CHUNK_FUNCTION,
    CHUNK_SIZE,
    LANES,
    SEND_FUNCTION,
    URGENT_QUEUE,
    JobQueue,
    deserialize,
    serialize,
)
from notifyq.queue.limiter import Pacer
from notifyq.settings import Settings
from notifyq.store.repo import Store
from notifyq.worker.dispatcher import Sender
from notifyq.worker.prepared import BatchCache

log = structlog.get_logger("notifyq.worker")
APP_KEY: Final = "notifyq"
# pacing deferrals are arq retries too; our own attempt count (in the delivery row) is what limits sends
ARQ_MAX_TRIES: Final = 100_000
# a lane that lost Redis polls again after this pause, doubled on each failure up to the cap
REDIS_RETRY_S: Final = (0.5, 30.0)
ORPHAN_MARGIN_S: Final = 10.0  # an in-progress key is taken for this lane's own only this long before it expires
REDIS_PING_S: Final = 2.0  # how long a lane that lost Redis waits for a PING's answer
DEPTH_SYNC_CLOSE_S: Final = 2.0  # on the way out, how long the queue depth's last sync may take
# after an outage, the errors of the job tasks that ran into it may still come out of arq's poll, one per
# poll, while Redis answers again: this many are taken for that, then such errors count as an outage again
STALE_ERRORS_MAX: Final = 64
# what a lost Redis looks like (refused, reset, timed out, still loading its data after a restart)
_REDIS_LOST = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass
class WorkerApp:
    """Everything a send job needs; built once per process."""

    settings: Settings
    store: Store
    redis: ArqRedis
    jobs: JobQueue
    pacer: Pacer
    twilio: TwilioClient
    sender: Sender
    metrics: WorkerMetrics


async def send(ctx: dict[str, Any], batch_id: str, cost: int) -> None:
    """Arq job: send one delivery (the job id is the delivery id)."""
    app: WorkerApp = ctx[APP_KEY]
    delivery_id: str = ctx["job_id"]
    try:
        await app.sender.send(delivery_id, batch_id, cost)
    except Retry:
        app.metrics.deferrals.labels(job="delivery").inc()
        raise
    except _UNAVAILABLE as exc:
        raise _unavailable(app, delivery_id, "delivery", exc) from exc


async def send_chunk(ctx: dict[str, Any], batch_id: str, delivery_ids: list[str], costs: list[int]) -> None:
    """Arq job: send a chunk of one batch's deliveries (the job id names the chunk)."""
    app: WorkerApp = ctx[APP_KEY]
    chunk_id: str = ctx["job_id"]
    try:
        await app.sender.send_chunk(chunk_id, batch_id, delivery_ids, costs)
    except Retry:
        app.metrics.deferrals.labels(job="chunk").inc()
        raise
    except _UNAVAILABLE as exc:
        raise _unavailable(app, chunk_id, "chunk", exc) from exc


# the store or Redis failing mid-job: the job comes back later (a claim already made is settled as an
# unanswered attempt would be); arq would otherwise drop it as failed
_UNAVAILABLE = (DBAPIError, RedisError, ConnectionError)


def _unavailable(app: WorkerApp, job_id: str, job: str, exc: BaseException) -> Retry:
    log.warning("store or Redis unavailable; job comes back later", job_id=job_id, error=str(exc))
    app.metrics.deferrals.labels(job=job).inc()
    return Retry(defer=app.settings.worker.unavailable_retry_s)


async def reconcile(ctx: dict[str, Any]) -> None:
    """Arq cron job: fetch deliveries whose callbacks never came."""
    from notifyq.worker.reconcile import reconcile_once  # noqa: PLC0415 - avoids an import cycle

    await reconcile_once(ctx[APP_KEY])


def _every(interval_s: float) -> tuple[set[int] | None, set[int]]:
    """The arq cron (minute, second) fields for "every ``interval_s`` seconds", as a clock face allows."""
    step = max(1, round(interval_s))
    if step < 60:
        return None, set(range(0, 60, step))
    return set(range(0, 60, max(1, step // 60))), {0}


def _slots(sends: int) -> dict[str, Any]:
    """The job slots (and ids read per poll) of a lane's arq worker allowed ``sends`` in flight.

    Twice what the sends take in chunks, plus two: a chunk job that arrives while every permit is
    busy still starts at once and waits for its turn at the permits (fair between batches), instead
    of waiting for an arq slot behind the chunks of a batch that came first.
    """
    jobs = 2 * math.ceil(sends / CHUNK_SIZE) + 2
    return {"max_jobs": jobs, "queue_read_limit": jobs}


def _functions() -> list[Function]:
    return [
        func(send, name=SEND_FUNCTION, max_tries=ARQ_MAX_TRIES, keep_result=0),
        func(send_chunk, name=CHUNK_FUNCTION, max_tries=ARQ_MAX_TRIES, keep_result=0),
    ]


def _lane_name(queue_name: str) -> str:
    """``bulk`` or ``urgent`` for a lane's arq queue (the label the other metrics use)."""
    return next((name for name, queue in LANES.items() if queue == queue_name), queue_name)


def _drop_finished(worker: Worker) -> None:
    """Forget the lane's finished job tasks, as arq's poll does, without raising their errors.

    A job that failed for want of Redis runs again (``_LaneWorker.release_orphans``); any other failure
    of arq's job task is logged here.
    """
    for job_id, task in list(worker.tasks.items()):
        if task.done():
            del worker.tasks[job_id]
            error = None if task.cancelled() else task.exception()
            if isinstance(error, _REDIS_LOST):
                log.debug("job cut off by the Redis outage", job_id=job_id, error=repr(error))
            elif error is not None:  # arq's poll would have raised it, and ended the process
                log.error("job task failed", job_id=job_id, error=repr(error))


# arq's check before it starts a job, for a group of jobs in one call: a job starts if it is due in the queue
# and not in progress anywhere, and is then marked in progress, as arq's WATCH transaction does for one job.
# KEYS: the queue, then each job's in-progress key; ARGV: now (ms, the worker's clock, as arq compares),
# the in-progress key's life (ms), then the job ids. Returns, per job, its score, or false (it does not start).
_START_LUA: Final = """
local now, ttl, out = tonumber(ARGV[1]), ARGV[2], {}
for i = 2, #KEYS do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i + 1])
  if score and tonumber(score) <= now and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('PSETEX', KEYS[i], ttl, '1')
    out[i - 1] = score
  else
    out[i - 1] = false
  end
end
return out
"""
START_GROUP: Final = 16  # jobs checked and started per call; between calls, other workers start theirs


class _LaneWorker(Worker):
    """arq's Worker: its jobs started in groups, and made to come through a Redis outage.

    - **Jobs start in groups.** arq's ``start_jobs`` checks each id its poll read with four or five
      round trips (WATCH, EXISTS and ZSCORE, then MULTI, PSETEX and EXEC, or UNWATCH), also the ids of
      jobs that are running: a chunk job stays in the queue while it runs. With two workers that was
      most of the Redis calls a worker made, and a worker that lost a job to the other paid its checks
      too. Here this lane's own running jobs are dropped from the ids at once, and the others go
      ``START_GROUP`` at a time to one script that does arq's check and marks the due, free ones in
      progress, atomically: one round trip per group. Each job is started as arq starts it (a slot,
      a task running ``run_job``, the slot given back when it ends). When every id read can start,
      the lane begins at a random one: two workers that read the same ids at once then mostly take
      different groups instead of contending for the same ones in the same order.
    - **Job slots.** A slot is taken only for a job the script started, after it answered: a start
      that loses Redis takes none (arq's own took the slot before its calls and kept it when one
      failed: after enough outages the lane would take no jobs at all).
    - **Queue depth.** After arq finishes or defers a job, the lane's depth ledger is synced for it
      (``queue/depth.py``), a few jobs per call.
    - **In-progress keys.** A job whose task ended on a lost Redis (at its start, or at its finish,
      when arq records the outcome) leaves its in-progress key behind, and no worker runs it again
      until the key expires (``job_timeout_s`` + 10 s). The key is this process' own while the job
      started less than that long ago, so ``release_orphans`` deletes it once Redis answers: the job
      runs again at once. (A job run twice is harmless: its claims keep each delivery to one send.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started: dict[str, float] = {}  # job id -> when this lane started it (monotonic)
        self.orphans: dict[str, float] = {}  # jobs whose task ended on a lost Redis -> when they started
        self._start_script: AsyncScript | None = None
        self._depth: DepthSync | None = None

    @property
    def depth(self) -> DepthSync:
        """The lane's depth ledger sync (built at first use: arq opens the pool when it has none)."""
        if self._depth is None:
            self._depth = DepthSync(DepthLedger(self.pool), _lane_name(self.queue_name), self.queue_name)
        return self._depth

    async def finish_job(self, job_id: str, *args: Any) -> None:
        """Run arq's finish (the job done, or deferred: moved in the lane); then the lane's depth ledger follows."""
        await super().finish_job(job_id, *args)
        self.depth.note(job_id)

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """Run arq's finish of a job that could not run (expired, unreadable); then the depth ledger follows."""
        await super().finish_failed_job(job_id, result_data)
        self.depth.note(job_id)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        ids = [job_id.decode() for job_id in job_ids]
        # a job that runs again after a Retry keeps its id: its finished task may still be listed here
        ids = [job_id for job_id in ids if (task := self.tasks.get(job_id)) is None or task.done()]
        if 1 < len(ids) <= self.max_jobs - self.job_counter:
            turn = random.randrange(len(ids))
            ids = ids[turn:] + ids[:turn]
        at = 0
        while at < len(ids) and self.job_counter < self.max_jobs:  # full: as arq, leave the rest to a later poll
            group = ids[at : at + min(START_GROUP, self.max_jobs - self.job_counter)]
            at += len(group)
            await self._start_group(group)

    async def _start_group(self, job_ids: list[str]) -> None:
        if self._start_script is None:
            self._start_script = self.pool.register_script(_START_LUA)
        keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in job_ids)]
        args: list[str | int] = [timestamp_ms(), int(self.in_progress_timeout_s * 1000), *job_ids]
        scores = await self._start_script(keys=keys, args=args)
        now = time.monotonic()
        for job_id, score in zip(job_ids, scores, strict=True):
            if score is None:  # not due, gone from the queue, or running elsewhere
                continue
            await self.sem.acquire()  # at once: the group is no larger than the free slots
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            task.add_done_callback(functools.partial(self._ended, job_id))
            self.tasks[job_id] = task
            self._started[job_id] = now

    def _ended(self, job_id: str, task: asyncio.Task[Any]) -> None:
        started = self._started.pop(job_id, None)
        if started is not None and not task.cancelled() and isinstance(task.exception(), _REDIS_LOST):
            self.orphans[job_id] = started

    async def release_orphans(self) -> None:
        """Delete the in-progress keys this lane left behind in an outage (raises if Redis is still lost)."""
        keep_s = self.in_progress_timeout_s - ORPHAN_MARGIN_S
        now = time.monotonic()
        mine = [job_id for job_id, started in self.orphans.items() if now - started < keep_s]
        if mine:
            await self.pool.delete(*(in_progress_key_prefix + job_id for job_id in mine))
            log.warning("jobs cut off by the Redis outage run again", lane=_lane_name(self.queue_name), jobs=len(mine))
        self.orphans.clear()


class NotifyqWorker:
    """Two arq workers (urgent, bulk) over one shared context."""

    def __init__(self, app: WorkerApp, *, burst: bool = False) -> None:
        self.app = app
        cfg = app.settings.worker
        ctx = {APP_KEY: app}
        common: dict[str, Any] = {
            "functions": _functions(),
            "redis_pool": app.redis,
            "burst": burst,
            "poll_delay": cfg.poll_delay_s,
            "job_timeout": cfg.job_timeout_s,
            "keep_result": 0,
            "max_tries": ARQ_MAX_TRIES,
            "handle_signals": False,
            "job_serializer": serialize,
            "job_deserializer": deserialize,
            "ctx": ctx,
        }
        cron_minute, cron_second = _every(app.settings.reconcile.interval_s)
        crons = [cron(reconcile, name="reconcile", unique=True, minute=cron_minute, second=cron_second)]
        # worker.max_jobs is sends in flight per lane (the Sender's permits); arq runs a few more jobs than
        # that takes in chunks and reads no further ahead (see _slots)
        self.workers = [
            _LaneWorker(queue_name=URGENT_QUEUE, **_slots(cfg.urgent_max_jobs), **common),
            _LaneWorker(queue_name=BULK_QUEUE, cron_jobs=None if burst else crons, **_slots(cfg.max_jobs), **common),
        ]

    async def run(self, *, drain_s: float | None = None) -> None:
        """Run until cancelled (or, in burst mode, until both lanes are empty).

        On cancellation, jobs already running get ``drain_s`` (by default ``worker.stop_timeout_s``) to
        finish; what is still running then is cancelled, and its delivery is settled later like any
        unanswered send. The shared Redis pool is not ours to close.
        """
        adopting = asyncio.create_task(self._adopt_depth())
        try:
            await asyncio.gather(*(self._lane(w) for w in self.workers))
        finally:
            adopting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await adopting
            running = [t for w in self.workers for t in w.tasks.values() if not t.done()]
            if running:
                grace = self.app.settings.worker.stop_timeout_s if drain_s is None else drain_s
                _done, pending = await asyncio.wait(running, timeout=grace)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            for worker in self.workers:
                await worker.depth.close(DEPTH_SYNC_CLOSE_S)

    async def _lane(self, worker: _LaneWorker) -> None:
        """Run one lane's arq worker; when Redis is lost, wait and poll again instead of ending the process.

        arq's poll loop raises on the first failed Redis call, and the process would exit. Its jobs are
        safe meanwhile: the job keys and lanes are in Redis, and a job that was running when the
        connection went runs again as soon as Redis is back (``_LaneWorker.release_orphans``).
        arq's poll also raises the error of each job task that ran into the outage, one per poll: the
        tasks finished by then are dropped here, and an error that comes out once Redis answers again
        (a job that failed later) makes the lane poll again at once, not wait.
        """
        lane = _lane_name(worker.queue_name)
        low, high = REDIS_RETRY_S
        pause, stale = low, 0
        while True:
            started = time.monotonic()
            try:
                await worker.release_orphans()
                await worker.main()
            except _REDIS_LOST as exc:
                _drop_finished(worker)
                if time.monotonic() - started > high:
                    pause, stale = low, 0  # it had been polling: a new outage starts from the shortest pause
                if stale < STALE_ERRORS_MAX and await self._redis_answers():
                    # the error of a job that ran into the outage, raised now: Redis is back, poll again
                    stale += 1
                    await asyncio.sleep(worker.poll_delay_s)
                    continue
                self.app.metrics.redis_lost.labels(lane=lane).inc()
                log.warning("Redis unavailable; the lane polls again", lane=lane, retry_in_s=pause, error=str(exc))
                await asyncio.sleep(pause)
                pause = min(2 * pause, high)
            else:
                return

    async def _adopt_depth(self) -> None:
        """Count the jobs queued before the depth ledger existed (once per deployment; see ``DepthLedger.adopt``)."""
        for worker in self.workers:
            try:
                await self.app.jobs.ledger.adopt(_lane_name(worker.queue_name), worker.queue_name)
            except (RedisError, OSError) as exc:  # the next worker to start does it
                log.warning("queue depth: queued jobs not adopted", error=str(exc))
                return

    async def healthy(self) -> bool:
        """Whether Redis answers (the worker's /healthz)."""
        return await self._redis_answers()

    async def _redis_answers(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.app.redis.ping(), REDIS_PING_S))
        except _REDIS_LOST:  # TimeoutError is an OSError
            return False

    @property
    def jobs_complete(self) -> int:
        """Jobs both lanes finished (arq's own count)."""
        return sum(w.jobs_complete for w in self.workers)


async def build_worker_app(
    settings: Settings, stack: AsyncExitStack, redis_url: str, *, store: Store | None = None
) -> WorkerApp:
    """Open every resource a worker needs; ``stack`` closes them (``store`` may be shared, then not closed)."""
    logging.getLogger("arq").setLevel(logging.WARNING)  # arq logs a line per job; ours is enough
    if store is None:
        store = await Store.open(settings.sqlalchemy_url(), wait=True)
        stack.push_async_callback(store.close)
    redis = redis_from_url(redis_url, ArqRedis, decode_responses=False)
    # arq enqueues cron jobs through the pool: it must use msgpack too, never its pickle default
    redis.job_serializer = serialize
    redis.job_deserializer = deserialize
    stack.push_async_callback(redis.aclose)
    twilio = TwilioClient(settings.twilio)
    stack.push_async_callback(twilio.close)
    pacer = Pacer(redis, settings)
    jobs = JobQueue(redis)
    metrics = WorkerMetrics()
    sender = Sender(settings, store, BatchCache(store, settings), pacer, twilio, jobs, metrics=metrics)
    return WorkerApp(settings, store, redis, jobs, pacer, twilio, sender, metrics)


async def run_worker(settings: Settings, redis_url: str, *, burst: bool = False) -> NotifyqWorker:
    """Build and run a worker until cancelled (or drained, in burst mode)."""
    async with AsyncExitStack() as stack:
        app = await build_worker_app(settings, stack, redis_url)
        # what lives as long as the process (modules, phone metadata, the app) leaves the collector's
        # full walks: unfrozen, each one stalled the worker 90-180 ms, in the middle of sends at their slots
        freeze_heap()
        worker = NotifyqWorker(app, burst=burst)
        cfg = settings.worker
        if cfg.metrics_port is not None:
            runner = await serve_metrics(app.metrics.registry, cfg.metrics_host, cfg.metrics_port, worker.healthy)
            stack.push_async_callback(runner.cleanup)
        await worker.run()
        return worker


async def create_worker(settings: Settings, redis_url: str, stack: AsyncExitStack) -> NotifyqWorker:
    """The composition root of a worker process: its resources live as long as ``stack``."""
    return NotifyqWorker(await build_worker_app(settings, stack, redis_url))
