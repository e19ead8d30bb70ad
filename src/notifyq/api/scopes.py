"""Which scope each API route needs, in one table.

A route is found by its pattern (``/v1/replays/{replay_id}``) and method; the longest prefix
in the table wins, a method of its own before ``*``. A route under ``/v1`` or ``/ops`` that the table
does not name is refused to every token (``UNLISTED``): a new route is one line here.
"""

from __future__ import annotations

from typing import Final, Literal

from notifyq.tokens import Scope

PUBLIC: Final = "public"  # no token: the sign-in form and what it loads
UNLISTED: Final = "unlisted"
Need = Scope | Literal["public", "unlisted"]

# (method or "*", prefix of the route's pattern, what it needs)
ROUTE_SCOPES: Final[tuple[tuple[str, str, Scope | Literal["public"]], ...]] = (
    ("POST", "/v1/batches", Scope.SUBMIT),
    ("POST", "/v1/batches/{batch_id}/cancel", Scope.SUBMIT),
    ("GET", "/v1/batches", Scope.READ),
    ("GET", "/v1/deliveries", Scope.READ),
    ("*", "/v1/replays", Scope.REPLAY),
    ("*", "/v1/accounts", Scope.ACCOUNTS),
    ("*", "/ops", Scope.OPS),
    ("GET", "/ops/signin", PUBLIC),
    ("POST", "/ops/signin", PUBLIC),
    ("POST", "/ops/signout", PUBLIC),
    ("GET", "/ops/static", PUBLIC),
)
PROTECTED: Final = ("/v1", "/ops")


def protected(path: str) -> bool:
    """Whether a path is one of the areas the table guards."""
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def needed(method: str, pattern: str) -> Need:
    """What a request for this route pattern (or plain path) and method needs."""
    method = "GET" if method == "HEAD" else method
    best: tuple[int, int] = (-1, -1)
    need: Need = UNLISTED
    for m, prefix, scope in ROUTE_SCOPES:
        if m not in {method, "*"} or not _under(pattern, prefix):
            continue
        rank = (len(prefix), int(m == method))
        if rank > best:
            best, need = rank, scope
    return need
