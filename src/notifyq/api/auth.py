"""Who makes each request (its principal), and whether it may: scope, token state, rate limit.

Twilio's callbacks are guarded by signatures instead; everything under ``/v1`` and ``/ops`` goes
through ``Guard``. A bearer token is one of the environment's plain tokens (every scope, no limits)
or a registry token ``nq_<id>_<secret>`` (``notifyq.tokens``); the ops pages also take their session
cookie. The principal is left on the request under ``PRINCIPAL`` (a typed ``web.RequestKey`` named
"principal"): ``request[PRINCIPAL].name``, or ``principal_of(request)``, says who made it.

=========================================== =====================================================
no token, an unknown or a revoked one       401 (a browser asking for an ops page: the sign-in form)
a route the scope table does not name       403
a token without the route's scope           403 naming the scope
past the token's rate                       429 with Retry-After (whole seconds, rounded up)
=========================================== =====================================================
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Final
from urllib.parse import urlencode

from aiohttp import web
from redis.exceptions import RedisError

from notifyq.api.limits import TokenLimiter
from notifyq.api.ops_session import COOKIE, OperatorAuth
from notifyq.api.problems import problem
from notifyq.api.scopes import PUBLIC, Need, needed, protected
from notifyq.store import Store
from notifyq.tokens import ENV_PRINCIPAL, OPERATOR_PRINCIPAL, Principal, Scope, parse, secret_matches

PRINCIPAL: Final = web.RequestKey("principal", Principal)


class Resolver:
    """A request's principal, from its bearer token or (on the ops pages) its session cookie."""

    def __init__(
        self,
        env_tokens: list[str],
        store: Callable[[], Store],
        sessions: OperatorAuth,
        operator_tokens: list[str] | None = None,
    ) -> None:
        self._env = [t.encode() for t in env_tokens if t]
        self._operators = [t.encode() for t in operator_tokens or [] if t]
        self._store = store
        self.sessions = sessions

    async def bearer(self, given: str) -> Principal | None:
        """The principal a token's text stands for, or None (unknown, wrong secret, revoked)."""
        raw = given.encode()
        env = operator = False
        for token in self._env:  # every one compared, each in constant time
            env |= hmac.compare_digest(token, raw)
        for token in self._operators:
            operator |= hmac.compare_digest(token, raw)
        if env:
            return ENV_PRINCIPAL
        if operator:
            return OPERATOR_PRINCIPAL
        parsed = parse(given)
        if parsed is None:
            return None
        return await self.by_id(*parsed)

    async def by_id(self, token_id: str, secret: str | None = None) -> Principal | None:
        """The principal of a token id that is still valid (a signed session names one; ``secret`` is checked)."""
        if token_id == ENV_PRINCIPAL.id:
            return ENV_PRINCIPAL if self._env and secret is None else None
        if token_id == OPERATOR_PRINCIPAL.id:
            return OPERATOR_PRINCIPAL if self._operators and secret is None else None
        found = await self._store().token_with_hash(token_id)
        if found is None:
            return None
        row, stored = found
        if secret is not None and not secret_matches(secret, stored):
            return None
        return None if row.revoked_at is not None else row.principal()

    async def of_request(self, request: web.Request, *, cookie: bool) -> Principal | None:
        """The request's principal: its bearer token, else (``cookie``) its ops session."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return await self.bearer(given)
        value = request.cookies.get(COOKIE) if cookie else None
        who = self.sessions.session(value) if value else None
        return await self.by_id(who) if who else None


def _under_ops(path: str) -> bool:
    return path == "/ops" or path.startswith("/ops/")


def unauthorized(request: web.Request) -> web.StreamResponse:
    """401; a browser asking for an ops page is sent to the sign-in form instead."""
    if _under_ops(request.path) and request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPSeeOther("/ops/signin?" + urlencode({"next": request.path_qs}))
    resp = problem(401, "Unauthorized", "a valid bearer token is required")
    resp.headers["WWW-Authenticate"] = 'Bearer realm="notifyq"'
    return resp


class Guard:
    """Lets a request through (its principal set) or answers it with the refusal."""

    def __init__(self, resolver: Resolver, limiter: Callable[[], TokenLimiter]) -> None:
        self.resolver = resolver
        self._limiter = limiter

    async def __call__(self, request: web.Request) -> web.StreamResponse | None:
        """None for a request that may go on; the refusal otherwise."""
        path = request.path
        if not protected(path):
            return None
        resource = request.match_info.route.resource
        need = needed(request.method, resource.canonical if resource is not None else path)
        if need == PUBLIC:
            return None
        principal = await self.resolver.of_request(request, cookie=_under_ops(path))
        if principal is None:
            return unauthorized(request)
        if request.match_info.http_exception is not None:  # no such route (404) or method (405): say so
            return None
        refusal = _scope_refusal(need, principal) or await self._rate_refusal(principal)
        if refusal is None:
            request[PRINCIPAL] = principal
        return refusal

    async def _rate_refusal(self, principal: Principal) -> web.Response | None:
        try:
            wait_s = await self._limiter().wait_s(principal)
        except RedisError:
            resp = problem(503, "Service unavailable", "the rate limiter (Redis) is unavailable; try again")
            resp.headers["Retry-After"] = "1"
            return resp
        if wait_s is None:
            return None
        resp = problem(429, "Too many requests", f"this token's rate limit is passed; try again in {wait_s} s")
        resp.headers["Retry-After"] = str(wait_s)
        return resp


def _scope_refusal(need: Need, principal: Principal) -> web.Response | None:
    if not isinstance(need, Scope):
        return problem(403, "Forbidden", "no scope is declared for this route")
    if need not in principal.scopes:
        return problem(403, "Forbidden", f"this token does not have the {need} scope", scope=str(need))
    return None


def principal_of(request: web.Request) -> Principal | None:
    """The principal ``Guard`` found for this request (None on routes it does not guard)."""
    return request.get(PRINCIPAL)
