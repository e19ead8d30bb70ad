"""Prometheus metrics. Each process has its own registry; gauges held in Redis or the store are read at scrape.

Queue depth per lane is exported from the API's ``/metrics`` so an autoscaler can add workers, and so is
how far behind the reconciler is; each worker exports its send counters and latency on
``NOTIFYQ_WORKER__METRICS_PORT``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.settings import ReconcileSettings
from notifyq.store.repo import Store


@dataclass
class ApiMetrics:
    """The API process's metrics."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.batches = Counter("notifyq_batches_accepted", "Batches accepted", ["channel"], registry=r)
        self.recipients = Counter("notifyq_recipients_accepted", "Recipients accepted", ["channel"], registry=r)
        self.rejected = Counter("notifyq_batches_rejected", "Batches refused by validation", registry=r)
        self.callbacks = Counter(
            "notifyq_callbacks_received", "Signed callbacks made durable", ["kind", "to"], registry=r
        )
        self.callbacks_forbidden = Counter("notifyq_callbacks_forbidden", "Callbacks refused (signature)", registry=r)
        self.queue_depth = Gauge(
            "notifyq_queue_depth",
            "Jobs waiting per lane (queued and deferred; a chunk job carries up to 50 deliveries)",
            ["lane"],
            registry=r,
        )
        self.callback_backlog = Gauge("notifyq_callback_backlog", "Callbacks buffered, not yet applied", registry=r)
        self.reconcile_stale = Gauge(
            "notifyq_reconcile_stale_deliveries",
            "Deliveries whose status is past its deadline, waiting for the reconciler's fetch",
            registry=r,
        )
        self.reconcile_oldest = Gauge(
            "notifyq_reconcile_oldest_stale_seconds",
            "How long the oldest delivery waiting for the reconciler has gone without news",
            registry=r,
        )
        self.reconcile_unanswered = Gauge(
            "notifyq_reconcile_unanswered_deliveries",
            "Unanswered attempts (dispatching, no SID) past the reconciler's deadline",
            registry=r,
        )


@dataclass
class WorkerMetrics:
    """A worker process's metrics."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.jobs = Counter("notifyq_send_jobs", "Send jobs run, by result", ["result"], registry=r)
        self.deferred = Counter("notifyq_send_deferred", "Send jobs deferred (pacing, backoff, pauses)", registry=r)
        self.redis_lost = Counter(
            "notifyq_worker_redis_lost", "Times a lane lost Redis and waited to poll again", ["lane"], registry=r
        )
        self.twilio_latency = Histogram(
            "notifyq_twilio_request_seconds",
            "Create request latency",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
            registry=r,
        )


async def refresh_queue_gauges(metrics: ApiMetrics, jobs: JobQueue, inbox: CallbackInbox) -> None:
    """Read the Redis-held gauges just before a scrape."""
    for lane, depth in (await jobs.depth()).items():
        metrics.queue_depth.labels(lane=lane).set(depth)
    metrics.callback_backlog.set(await inbox.backlog())


async def refresh_reconcile_gauges(metrics: ApiMetrics, store: Store, cfg: ReconcileSettings) -> None:
    """Read how far behind the reconciler is from the store, just before a scrape."""
    behind = await store.reconcile_backlog(
        older_than=cfg.stale_after_s, unanswered_after_s=cfg.unanswered_after_s, now=time.time()
    )
    metrics.reconcile_stale.set(behind.stale)
    metrics.reconcile_oldest.set(behind.oldest_stale_s)
    metrics.reconcile_unanswered.set(behind.unanswered)


API_METRICS = web.AppKey("notifyq_api_metrics", ApiMetrics)


def exposition(registry: CollectorRegistry) -> web.Response:
    """The text format Prometheus scrapes."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    """A tiny /metrics server for a process that has no HTTP API of its own (the worker)."""

    async def handle(_request: web.Request) -> web.StreamResponse:
        return exposition(registry)

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
