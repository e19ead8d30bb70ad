"""Bearer-token auth for producers and operators. Twilio's callbacks are guarded by signatures instead."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from notifyq.api.problems import problem

OPERATOR_PREFIX = "/v1/accounts"


def bearer_guard(
    tokens: list[str], *, protected_prefix: str = "/v1/", unless_prefix: str | None = None
) -> Callable[[web.Request], web.Response | None]:
    """A check for ``Authorization: Bearer <token>`` on the paths under ``protected_prefix`` (constant-time compare).

    It returns the 401 response for a request it refuses, None for one that may go on; paths under
    ``unless_prefix`` are another guard's.
    """
    encoded = [t.encode() for t in tokens]

    def guard(request: web.Request) -> web.Response | None:
        path = request.path
        if not path.startswith(protected_prefix) or (unless_prefix is not None and path.startswith(unless_prefix)):
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        ok = False
        if scheme.lower() == "bearer" and given:
            for token in encoded:
                ok |= hmac.compare_digest(token, given.encode())
        if ok:
            return None
        resp = problem(401, "Unauthorized", "a valid bearer token is required")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="notifyq"'
        return resp

    return guard


def api_guard(producer_tokens: list[str], operator_tokens: list[str]) -> Callable[[web.Request], web.Response | None]:
    """Producers' tokens on ``/v1/``, operators' alone on ``/v1/accounts`` (the registry holds secrets)."""
    producers = bearer_guard(producer_tokens, unless_prefix=OPERATOR_PREFIX)
    operators = bearer_guard(operator_tokens, protected_prefix=OPERATOR_PREFIX)

    def guard(request: web.Request) -> web.Response | None:
        return producers(request) or operators(request)

    return guard
