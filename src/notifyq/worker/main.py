"""The worker process's composition root: ``create_worker(settings)``.

One process runs two arq workers on one event loop, one per lane, sharing one context (store,
Redis, pacer, Twilio session: ``WorkerApp``): urgent jobs get worker slots of their own and never
queue behind bulk ones. Each lane is an ``arq_compat.LaneWorker``, and outlives a lost Redis here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Final

import structlog
from redis.exceptions import RedisError

from notifyq.queue.arq_compat import ARQ_MAX_TRIES, LaneWorker, drop_finished, running_jobs
from notifyq.queue.connect import REDIS_LOST
from notifyq.queue.depth import DepthLedger, DepthSync
from notifyq.queue.jobs import BULK_QUEUE, CHUNK_SIZE, LANES, URGENT_QUEUE, deserialize, serialize
from notifyq.settings import Settings
from notifyq.worker.app import WorkerApp, build_worker_app
from notifyq.worker.jobs import APP_KEY, LET_GO_KEY, cron_jobs, functions
from notifyq.worker.metrics import serve_metrics

log = structlog.get_logger("notifyq.worker")
# a lane that lost Redis polls again after this pause, doubled on each failure up to the cap
REDIS_RETRY_S: Final = (0.5, 30.0)
REDIS_PING_S: Final = 2.0  # how long a lane that lost Redis waits for a PING's answer
DEPTH_SYNC_CLOSE_S: Final = 2.0  # on the way out, how long the queue depth's last sync may take
# after an outage, the errors of the job tasks that ran into it may still come out of arq's poll, one per
# poll, while Redis answers again: this many are taken for that, then such errors count as an outage again
STALE_ERRORS_MAX: Final = 64


def _slots(sends: int) -> dict[str, Any]:
    """The job slots (and ids read per poll) of a lane's arq worker allowed ``sends`` in flight.

    Twice what the sends take in chunks, plus two: a chunk job that arrives while every permit is
    busy still starts at once and waits for its turn at the permits (fair between batches), instead
    of waiting for an arq slot behind the chunks of a batch that came first. A chunk that has booked
    all it can gives its slot back while its sends wait for their slots (``LaneWorker.let_go``): on a
    slow sender that wait is most of its run, and the sends it holds are counted by the permits.
    """
    jobs = 2 * math.ceil(sends / CHUNK_SIZE) + 2
    return {"max_jobs": jobs, "queue_read_limit": jobs}


def _lane_name(queue_name: str) -> str:
    """``bulk`` or ``urgent`` for a lane's arq queue (the label the other metrics use)."""
    return next((name for name, queue in LANES.items() if queue == queue_name), queue_name)


class NotifyqWorker:
    """Two arq workers (urgent, bulk) over one shared context."""

    def __init__(self, app: WorkerApp, *, burst: bool = False) -> None:
        self.app = app
        cfg = app.settings.worker
        ctx: dict[str, Any] = {APP_KEY: app}
        common: dict[str, Any] = {
            "functions": functions(),
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
        crons = cron_jobs(app.settings.reconcile.interval_s)
        # each lane's queue depth follows the jobs arq finishes or defers
        self.depth = {queue: DepthSync(DepthLedger(app.redis), _lane_name(queue), queue) for queue in LANES.values()}
        # worker.max_jobs is sends in flight per lane (the Dispatcher's permits); arq runs a few more jobs than
        # that takes in chunks and reads no further ahead (see _slots)
        self.workers = [
            self._lane_worker(URGENT_QUEUE, **_slots(cfg.urgent_max_jobs), **common),
            self._lane_worker(BULK_QUEUE, cron_jobs=None if burst else crons, **_slots(cfg.max_jobs), **common),
        ]
        ctx[LET_GO_KEY] = self.let_go

    def let_go(self, job_id: str) -> None:
        """A running job gives its job slot back (in whichever lane runs it) and runs on."""
        for worker in self.workers:
            if worker.let_go(job_id):
                return

    def _lane_worker(self, queue: str, **kwargs: Any) -> LaneWorker:
        depth = self.depth[queue]
        return LaneWorker(queue_name=queue, lane=_lane_name(queue), on_finished=depth.note, **kwargs)

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
            running = [task for worker in self.workers for task in running_jobs(worker)]
            if running:
                grace = self.app.settings.worker.stop_timeout_s if drain_s is None else drain_s
                _done, pending = await asyncio.wait(running, timeout=grace)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            for depth in self.depth.values():
                await depth.close(DEPTH_SYNC_CLOSE_S)

    async def _lane(self, worker: LaneWorker) -> None:
        """Run one lane's arq worker; when Redis is lost, wait and poll again instead of ending the process.

        arq's poll loop raises on the first failed Redis call, and the process would exit. Its jobs are
        safe meanwhile: the job keys and lanes are in Redis, and a job that was running when the
        connection went runs again as soon as Redis is back (``LaneWorker.release_orphans``).
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
            except REDIS_LOST as exc:
                drop_finished(worker)
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
        except REDIS_LOST:  # TimeoutError is an OSError
            return False

    @property
    def jobs_complete(self) -> int:
        """Jobs both lanes finished (arq's own count)."""
        return sum(w.jobs_complete for w in self.workers)


async def run_worker(
    settings: Settings, redis_url: str, *, burst: bool = False, ready: Callable[[], None] | None = None
) -> NotifyqWorker:
    """Build and run a worker until cancelled (or drained, in burst mode).

    ``ready`` runs once the worker is built, before it takes a job (the CLI tunes the process there).
    """
    async with AsyncExitStack() as stack:
        app = await build_worker_app(settings, stack, redis_url)
        worker = NotifyqWorker(app, burst=burst)
        if ready is not None:
            ready()
        cfg = settings.worker
        if cfg.metrics_port is not None:
            runner = await serve_metrics(app.metrics.registry, cfg.metrics_host, cfg.metrics_port, worker.healthy)
            stack.push_async_callback(runner.cleanup)
        await worker.run()
        return worker


async def create_worker(settings: Settings, redis_url: str, stack: AsyncExitStack) -> NotifyqWorker:
    """The composition root of a worker process: its resources live as long as ``stack``."""
    return NotifyqWorker(await build_worker_app(settings, stack, redis_url))
