"""Bearer-token auth for producers. Twilio's callbacks are guarded by signatures instead."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from notifyq.api.problems import problem


def bearer_middleware(tokens: list[str], *, protected_prefix: str = "/v1/") -> Any:
    """Require ``Authorization: Bearer <token>`` on the producer API (constant-time compare)."""
    encoded = [t.encode() for t in tokens]

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(protected_prefix):
            return await handler(request)  # type: ignore[no-any-return]
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        ok = False
        if scheme.lower() == "bearer" and given:
            for token in encoded:
                ok |= hmac.compare_digest(token, given.encode())
        if not ok:
            resp = problem(401, "Unauthorized", "a valid bearer token is required")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="notifyq"'
            return resp
        return await handler(request)  # type: ignore[no-any-return]

    return middleware
