"""Bearer-token auth for producers. Twilio's callbacks are guarded by signatures instead."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from notifyq.api.problems import problem


def bearer_guard(tokens: list[str], *, protected_prefix: str = "/v1/") -> Callable[[web.Request], web.Response | None]:
    """A check for ``Authorization: Bearer <token>`` on the producer API (constant-time compare).

    It returns the 401 response for a request it refuses, None for one that may go on.
    """
    encoded = [t.encode() for t in tokens]

    def guard(request: web.Request) -> web.Response | None:
        if not request.path.startswith(protected_prefix):
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
