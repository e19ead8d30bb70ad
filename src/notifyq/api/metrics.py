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

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from notifyq.queue.inbox import CallbackInbox, callback_lag_histogram, dead_letter_counter
from notifyq.queue.jobs import JobQueue
from notifyq.report import ReportGauges, gather_report
from notifyq.settings import Settings
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
        self.callbacks_dead_lettered = dead_letter_counter(r)
        self.callback_lag = callback_lag_histogram(r)


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
        self.figures = ReportGauges(r)  # oldest due age, in flight, retrying; per account and sender

    async def refresh(self, jobs: JobQueue, inbox: CallbackInbox, store: Store, settings: Settings) -> None:
        """Read the gauges held in Redis and the store just before a scrape."""
        report = await gather_report(jobs, inbox, store, settings)
        for lane, figures in report.lanes.items():
            self.queue_deliveries.labels(lane=lane, when="due").set(figures.due)
            self.queue_deliveries.labels(lane=lane, when="later").set(figures.scheduled)
        self.callback_backlog.set(report.callback_backlog)
        self.callback_dead_letters.set(report.callback_dead_letters)
        self.reconcile_stale.set(report.reconcile.stale)
        self.reconcile_oldest.set(report.reconcile.oldest_stale_s)
        self.reconcile_unanswered.set(report.reconcile.unanswered)
        self.figures.set(report)


API_METRICS = web.AppKey("notifyq_api_metrics", ApiMetrics)


def exposition(registry: CollectorRegistry) -> web.Response:
    """The text format Prometheus scrapes."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
