"""The API process's composition root: ``create_app(settings)``.

One aiohttp application serves the producer API (``/v1``), Twilio's callbacks (``/twilio``),
``/healthz`` and ``/metrics``. Each resource is opened and closed by its own ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from notifyq.api import batches, callbacks, inbound
from notifyq.api.auth import bearer_guard
from notifyq.api.problems import PROBLEM_ERRORS, problem_from
from notifyq.ops.metrics import API_METRICS, ApiMetrics, exposition, refresh_queue_gauges, refresh_reconcile_gauges
from notifyq.producer import Producer
from notifyq.queue.connect import redis_from_url
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.settings import Settings
from notifyq.store.repo import Store


@dataclass
class ApiState:
    """What the handlers share; filled in by the cleanup contexts."""

    settings: Settings
    redis_url: str
    store: Store | None = None
    redis: Redis | None = None
    producer: Producer | None = None
    inbox: CallbackInbox | None = None
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def require_producer(self) -> Producer:
        """The producer, once the app has started."""
        if self.producer is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.producer

    def require_store(self) -> Store:
        """The store, once the app has started."""
        if self.store is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.store

    def require_inbox(self) -> CallbackInbox:
        """The callback inbox, once the app has started."""
        if self.inbox is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.inbox


STATE = web.AppKey("notifyq_state", ApiState)


def api_middleware(tokens: list[str]) -> Any:
    """Bearer auth on the producer API and problem+json for every error, in one middleware.

    One layer, not one each: every layer costs every request, Twilio's callbacks included, a wrapper
    call and a coroutine.
    """
    guard = bearer_guard(tokens)

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            denied = guard(request)
            if denied is not None:
                return denied
            response: web.StreamResponse = await handler(request)
        except PROBLEM_ERRORS as exc:
            resp = problem_from(exc)
            if resp is None:
                raise
            return resp
        return response

    return middleware


def create_app(
    settings: Settings, *, redis_url: str, apply_callbacks: bool = True, store: Store | None = None
) -> web.Application:
    """Build the API application; ``redis_url`` is resolved by the caller (embedded or configured).

    ``store`` lets a process that also runs a worker share one store (on SQLite, one writer lock).
    """
    tokens = [t.get_secret_value() for t in settings.api.tokens]
    app = web.Application(
        middlewares=[api_middleware(tokens)],
        client_max_size=settings.api.max_body_bytes,
    )
    state = ApiState(settings, redis_url)
    app[STATE] = state
    app[API_METRICS] = state.metrics

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        own_store = store is None
        state.store = store or await Store.open(settings.sqlalchemy_url(), wait=True)
        state.redis = redis_from_url(redis_url)
        state.producer = Producer(settings, state.store, JobQueue(state.redis))
        state.inbox = CallbackInbox(state.redis, state.store)
        yield
        await state.producer.drain()
        await state.redis.aclose()
        if own_store:
            await state.store.close()

    async def applier(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(state.require_inbox().run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(resources)
    if apply_callbacks:
        app.cleanup_ctx.append(applier)
    batches.add_routes(app, state.require_producer)
    callbacks.add_routes(app, settings, state.require_inbox)
    app.router.add_post("/twilio/inbound", inbound.handler(settings, state.require_store))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _healthz(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    checks: dict[str, str] = {}
    try:
        if state.redis is not None:
            await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure, it never raises
        checks["redis"] = f"down: {exc}"
    status = 200 if all(v == "ok" for v in checks.values()) else 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "checks": checks}, status=status)


async def _metrics(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if state.redis is not None and state.inbox is not None:
        await refresh_queue_gauges(state.metrics, JobQueue(state.redis), state.inbox)
    if state.store is not None:
        await refresh_reconcile_gauges(state.metrics, state.store, state.settings.reconcile)
    return exposition(state.metrics.registry)
