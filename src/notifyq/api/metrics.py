"""Prometheus metrics. Each process has its own registry; what lives in Redis has a registry of its own.

Three exposition points, so that ``sum`` over any number of replicas is true:

* the API's ``/metrics``: what this API process did (batches, recipients, callbacks);
* each worker's ``/metrics`` (``NOTIFYQ_WORKER__METRICS_PORT``): what this worker did
  (``worker/metrics.py``);
* the API's ``/metrics/cluster``: what the whole deployment holds, read from Redis at scrape (queue
  depth in deliveries per lane, the callback backlog and dead letter; from the store, how far
  behind the reconciler is). Every replica serves the same figures: scrape
  it through one target, not per replica (``deploy/prometheus.yml``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.settings import ReconcileSettings
from notifyq.store import Store


@dataclass
class ApiMetrics:
    """What one API process did."""

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
        self.callbacks_invalid = Counter(
            "notifyq_callbacks_invalid_values",
            "Signed callbacks with a value that is not valid (kept, not applied when it is the SID or status)",
            ["field"],
            registry=r,
        )
        self.callbacks_dead_lettered = Counter(
            "notifyq_callbacks_dead_lettered", "Callbacks this process's applier moved to the dead letter", registry=r
        )


@dataclass
class ClusterMetrics:
    """What the deployment holds in Redis, the same from every API replica (``/metrics/cluster``)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.queue_deliveries = Gauge(
            "notifyq_queue_deliveries",
            "Deliveries waiting in each lane's jobs: due now (running ones included) or scheduled for later",
            ["lane", "when"],
            registry=r,
        )
        self.callback_backlog = Gauge("notifyq_callback_backlog", "Callbacks buffered, not yet applied", registry=r)
        self.callback_dead_letters = Gauge(
            "notifyq_callback_dead_letters",
            "Callbacks in the dead letter (from every applier), waiting for an operator",
            registry=r,
        )
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

    async def refresh(self, jobs: JobQueue, inbox: CallbackInbox, store: Store, reconcile: ReconcileSettings) -> None:
        """Read the gauges held in Redis and the store just before a scrape."""
        for lane, depth in (await jobs.depth()).items():
            self.queue_deliveries.labels(lane=lane, when="due").set(depth.due)
            self.queue_deliveries.labels(lane=lane, when="later").set(depth.later)
        self.callback_backlog.set(await inbox.backlog())
        self.callback_dead_letters.set(await inbox.dead.count())
        behind = await store.reconcile_backlog(
            older_than=reconcile.stale_after_s, unanswered_after_s=reconcile.unanswered_after_s, now=time.time()
        )
        self.reconcile_stale.set(behind.stale)
        self.reconcile_oldest.set(behind.oldest_stale_s)
        self.reconcile_unanswered.set(behind.unanswered)


API_METRICS = web.AppKey("notifyq_api_metrics", ApiMetrics)


def exposition(registry: CollectorRegistry) -> web.Response:
    """The text format Prometheus scrapes."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
