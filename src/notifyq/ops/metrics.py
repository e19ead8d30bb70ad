"""Prometheus metrics. Each process has its own registry; what lives in Redis has a registry of its own.

Three exposition points, so that ``sum`` over any number of replicas is true:

* the API's ``/metrics``: what this API process did (batches, recipients, callbacks);
* each worker's ``/metrics`` (``NOTIFYQ_WORKER__METRICS_PORT``): what this worker did (create
  requests by result, errors by code, latency, job deferrals, Redis outages);
* the API's ``/metrics/cluster``: what the whole deployment holds, read from Redis at scrape (queue
  depth in deliveries per lane, the callback backlog and dead letter; from the store, how far
  behind the reconciler is). Every replica serves the same figures: scrape
  it through one target, not per replica (``deploy/prometheus.yml``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from notifyq.classify import CODE_RANGES, CODES, Action
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.settings import ReconcileSettings
from notifyq.store import Store

# what a create request came to (notifyq_sends_total's result label)
ACCEPTED: Final = "accepted"  # 201: Twilio took the message or call
THROTTLED: Final = "throttled"  # 429
REFUSED: Final = "refused"  # any other 4xx
SERVER_ERROR: Final = "server_error"  # 5xx
NO_ANSWER: Final = "no_answer"  # written, then no answer (timeout, connection lost): Twilio may have acted
UNREACHED: Final = "unreached"  # no connection: the request never reached Twilio
SEND_RESULTS: Final = (ACCEPTED, THROTTLED, REFUSED, SERVER_ERROR, NO_ANSWER, UNREACHED)
# the action label of notifyq_send_errors_total for an unanswered create: it is never sent again blindly,
# but waits for its status callback or a look-up in Twilio's list (invariant 2)
AWAIT_CALLBACK: Final = "await_callback"


def error_code_label(http_status: int | None, code: int | None) -> str:
    """A bounded label for a failed create: a code from the error table, else the kind of failure."""
    if code is not None and (code in CODES or any(code in codes for codes, _, _ in CODE_RANGES)):
        return str(code)
    if http_status is None:
        return "transport" if code is None else "other"
    if http_status == 429:
        return "http_429"
    return "other_5xx" if http_status >= 500 else "other_4xx"


def send_result(http_status: int) -> str:
    """The result label of a create that Twilio answered with an error status."""
    if http_status == 429:
        return THROTTLED
    return SERVER_ERROR if http_status >= 500 else REFUSED


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


@dataclass
class WorkerMetrics:
    """What one worker process did, counted where it happens (each create request, each deferral)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.sends = Counter(
            "notifyq_sends", "Create requests to Twilio (Messages, Calls), by what came back", ["result"], registry=r
        )
        self.send_errors = Counter(
            "notifyq_send_errors",
            "Create requests that failed, by Twilio error code (or kind of failure) and what was done about it",
            ["code", "action"],
            registry=r,
        )
        self.skipped = Counter(
            "notifyq_sends_skipped",
            "Deliveries settled without a request (opted out, expired, unsendable, unanswered)",
            ["reason"],
            registry=r,
        )
        self.deferrals = Counter(
            "notifyq_job_deferrals",
            "Send jobs handed back to arq to run later (pacing, send_at, backoff, an unanswered create, outages)",
            ["job"],
            registry=r,
        )
        self.redis_lost = Counter(
            "notifyq_worker_redis_lost", "Times a lane lost Redis and waited to poll again", ["lane"], registry=r
        )
        self.twilio_latency = Histogram(
            "notifyq_twilio_request_seconds",
            "Create request latency, every request, by result",
            ["result"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
            registry=r,
        )
        # children bound once: a send is counted without a label lookup
        self._sends = {result: self.sends.labels(result=result) for result in SEND_RESULTS}
        self._latency = {result: self.twilio_latency.labels(result=result) for result in SEND_RESULTS}

    def request(self, result: str, seconds: float | None) -> None:
        """One create request and what came back (``seconds`` None: it never reached Twilio)."""
        self._sends[result].inc()
        if seconds is not None:
            self._latency[result].observe(seconds)

    def error(self, code: str, action: Action | str) -> None:
        """A failed create, by its code label (``error_code_label``) and what the worker did."""
        self.send_errors.labels(code=code, action=str(action)).inc()


API_METRICS = web.AppKey("notifyq_api_metrics", ApiMetrics)


def exposition(registry: CollectorRegistry) -> web.Response:
    """The text format Prometheus scrapes."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, health: Callable[[], Awaitable[bool]]
) -> web.AppRunner:
    """A small server with /metrics and /healthz for a process that has no HTTP API of its own (the worker).

    ``/healthz`` answers 200 while ``health()`` holds, 503 otherwise.
    """

    async def metrics(_request: web.Request) -> web.StreamResponse:
        return exposition(registry)

    async def healthz(_request: web.Request) -> web.StreamResponse:
        ok = await health()
        return web.json_response({"status": "ok" if ok else "degraded"}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
