"""A worker's Prometheus metrics: what this process did, served on ``NOTIFYQ_WORKER__METRICS_PORT``.

Create requests by what came back, failed creates by code and action, latency, job deferrals, Redis
outages. Each process has its own registry, so ``sum`` over any number of workers is true.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from notifyq.classify import CODE_RANGES, CODES, Action
from notifyq.queue.throughput import ThroughputRecorder

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
class WorkerMetrics:
    """What one worker process did, counted where it happens (each create request, each deferral)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # the cluster-wide series behind the ops page's chart (queue/throughput.py); None: not recorded
    throughput: ThroughputRecorder | None = None

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
        self.retries = Counter(
            "notifyq_retries",
            "Deliveries given another try after a retryable error, by error code (or kind of failure)",
            ["code"],
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
        if self.throughput is not None:
            self.throughput.record(accepted=result == ACCEPTED, seconds=seconds)

    def error(self, code: str, action: Action | str) -> None:
        """A failed create, by its code label (``error_code_label``) and what the worker did."""
        self.send_errors.labels(code=code, action=str(action)).inc()


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, health: Callable[[], Awaitable[bool]]
) -> web.AppRunner:
    """A small server with /metrics and /healthz, for the worker (it has no HTTP API of its own).

    ``/healthz`` answers 200 while ``health()`` holds, 503 otherwise.
    """

    async def metrics(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

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
