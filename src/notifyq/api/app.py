"""The API process's composition root: ``create_app(settings)``.

One aiohttp application serves the producer API (``/v1``), Twilio's callbacks (``/twilio``),
``/healthz``, ``/metrics`` (this process), ``/metrics/cluster`` (what Redis holds), and the OpenAPI
document at ``/openapi.json`` with its page at ``/docs``.
Each resource is opened and closed by its own ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifyq.accounts import AccountDirectory
from notifyq.api import accounts, batches, callbacks, connect, docs_page, inbound, openapi, ops, replays
from notifyq.api.auth import Guard, Resolver
from notifyq.api.limits import TokenLimiter
from notifyq.api.metrics import API_METRICS, ApiMetrics, ClusterMetrics, exposition
from notifyq.api.ops_session import OperatorAuth, session_key
from notifyq.api.problems import PROBLEM_ERRORS, internal_error, problem_from, store_unavailable
from notifyq.api.scopes import protected
from notifyq.producer import Producer
from notifyq.queue.connect import redis_from_url
from notifyq.queue.inbox import CallbackInbox, applier_health
from notifyq.queue.jobs import JobQueue
from notifyq.settings import Settings
from notifyq.store import PoolSize, Store, describe, unavailable


@dataclass
class ApiState:
    """What the handlers share; filled in by the cleanup contexts."""

    settings: Settings
    redis_url: str
    resolver: Resolver
    store: Store | None = None
    redis: Redis | None = None
    producer: Producer | None = None
    accounts: AccountDirectory | None = None
    inbox: CallbackInbox | None = None
    limiter: TokenLimiter | None = None
    applier: asyncio.Task[None] | None = None  # the callback applier, when this process runs one
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    cluster: ClusterMetrics = field(default_factory=ClusterMetrics)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def require_producer(self) -> Producer:
        """The producer, once the app has started."""
        if self.producer is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.producer

    def require_accounts(self) -> AccountDirectory:
        """The account resolver, once the app has started."""
        if self.accounts is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.accounts

    def require_redis(self) -> Redis:
        """The app's Redis, once the app has started."""
        if self.redis is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.redis

    def require_store(self) -> Store:
        """The store, once the app has started."""
        if self.store is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.store

    def require_limiter(self) -> TokenLimiter:
        """The tokens' rate limits and quotas, once the app has started."""
        if self.limiter is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.limiter

    def require_inbox(self) -> CallbackInbox:
        """The callback inbox, once the app has started."""
        if self.inbox is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self.inbox


STATE = web.AppKey("notifyq_state", ApiState)
log = structlog.get_logger("notifyq.api")


def api_middleware(guard: Guard) -> Any:
    """Auth on the producer API and the ops pages, and problem+json for every error, in one middleware.

    An error nobody expected is logged with its traceback and answered 500 problem+json without it:
    a client learns nothing of the code. The database being unavailable is no bug: a 503 says to try
    again. Bad input never gets here; each handler refuses it with a 4xx.

    One layer, not one each: every layer costs every request, Twilio's callbacks included, a wrapper
    call and a coroutine.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if protected(request.path):
                denied = await guard(request)
                if denied is not None:
                    return denied
            response: web.StreamResponse = await handler(request)
        except PROBLEM_ERRORS as exc:
            resp = problem_from(exc)
            if resp is None:
                raise
            return resp
        except Exception as exc:  # the outermost layer: logged with its traceback, answered without it
            if unavailable(exc):  # an outage, not a bug: the client may try the same request again
                log.warning("store unavailable", method=request.method, path=request.path, error=describe(exc))
                return store_unavailable()
            log.exception("unhandled error", method=request.method, path=request.path)
            return internal_error()
        return response

    return middleware


def create_app(
    settings: Settings, *, redis_url: str, apply_callbacks: bool = True, store: Store | None = None
) -> web.Application:
    """Build the API application; ``redis_url`` is resolved by the caller (embedded or configured).

    ``store`` lets a process that also runs a worker share one store (on SQLite, one writer lock).
    """
    tokens = [t.get_secret_value() for t in settings.api.tokens]
    configured_key = settings.api.session_key.get_secret_value() if settings.api.session_key else None
    sessions = OperatorAuth(session_key(configured_key, tokens), secure=settings.public_base_url.startswith("https://"))

    def store_now() -> Store:
        return state.require_store()

    operators = [t.get_secret_value() for t in settings.api.operator_tokens]
    state = ApiState(settings, redis_url, Resolver(tokens, store_now, sessions, operators))
    app = web.Application(
        middlewares=[api_middleware(Guard(state.resolver, state.require_limiter))],
        client_max_size=settings.api.max_body_bytes,
    )
    app[STATE] = state
    app[API_METRICS] = state.metrics

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        own_store = store is None
        state.store = store or await Store.open(
            settings.sqlalchemy_url(), wait=True, pool=PoolSize(**settings.database.model_dump())
        )
        state.redis = redis_from_url(redis_url)
        state.accounts = AccountDirectory(settings, state.store)
        state.limiter = TokenLimiter(state.redis)
        state.producer = Producer(settings, state.store, JobQueue(state.redis), state.accounts)
        state.inbox = CallbackInbox(
            state.redis,
            state.store,
            on_dead_letter=state.metrics.callbacks_dead_lettered.inc,
            on_applied=state.metrics.callback_lag.observe,
        )
        yield
        await state.producer.drain()
        await state.redis.aclose()
        if own_store:
            await state.store.close()

    async def applier(_app: web.Application) -> AsyncIterator[None]:
        task = state.applier = asyncio.create_task(state.require_inbox().run())
        task.add_done_callback(_applier_stopped)
        yield
        task.cancel()
        await asyncio.wait({task})  # its own error, if it died of one, is logged already

    app.cleanup_ctx.append(resources)
    if apply_callbacks:
        app.cleanup_ctx.append(applier)
    batches.add_routes(app, state.require_producer, state.require_limiter)
    replays.add_routes(app, state.require_producer)
    accounts.add_routes(app, accounts.AccountsApi(settings, state.require_accounts, state.require_redis))
    connect.add_routes(app)
    callbacks.add_routes(app, settings, state.require_inbox, state.require_store, state.require_accounts)
    app.router.add_post("/twilio/inbound", inbound.handler(settings, state.require_store, state.require_accounts))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/metrics/cluster", _cluster_metrics)
    ops.add_routes(app, state)
    docs_page.add_routes(app, openapi.add_routes(app, settings))
    return app


def _applier_stopped(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the callback applier stopped", error=describe(exc), exc_info=exc)


async def _healthz(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    checks: dict[str, str] = {}
    try:
        if state.redis is not None:
            await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure, it never raises
        checks["redis"] = f"down: {exc}"
    if state.applier is not None and state.inbox is not None:
        checks["applier"] = applier_health(state.applier, state.inbox, state.settings.api.applier_stuck_s)
    status = 200 if all(v == "ok" for v in checks.values()) else 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "checks": checks}, status=status)


async def _metrics(request: web.Request) -> web.StreamResponse:
    return exposition(request.app[STATE].metrics.registry)


async def _cluster_metrics(request: web.Request) -> web.StreamResponse:
    """The deployment's gauges, read from Redis now: the same from every replica, so scraped through one target."""
    state = request.app[STATE]
    try:
        await state.cluster.refresh(
            state.require_producer().jobs, state.require_inbox(), state.require_store(), state.settings
        )
    except (RedisError, OSError) as exc:
        raise web.HTTPServiceUnavailable(reason=f"Redis unavailable: {exc}") from exc
    return exposition(state.cluster.registry)
