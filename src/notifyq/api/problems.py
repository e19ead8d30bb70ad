"""RFC 9457 problem details (``application/problem+json``) for every error the API returns."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from notifyq.errors import (
    ConfirmationRequired,
    Conflict,
    Forbidden,
    IdempotencyConflict,
    NotFound,
    QuotaExceeded,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
MAX_LISTED = 100
# an aiohttp error's headers a problem answer keeps: a 405's methods, a 401's scheme, when to try again
CARRIED_HEADERS: Final = ("Allow", "WWW-Authenticate", "Retry-After")


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    """A problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON)


def _ours(exc: Exception) -> web.Response | None:  # noqa: PLR0911 - one answer per kind of error
    """The problem+json response for one of notifyq's errors (None for anything else)."""
    if isinstance(exc, ValidationFailed):
        listed = [p.as_dict() for p in exc.problems[:MAX_LISTED]]
        return problem(
            422,
            "Invalid batch",
            f"{len(exc.problems)} problem(s); the batch was not accepted",
            errors=listed,
            errors_total=len(exc.problems),
        )
    if isinstance(exc, NotFound):
        return problem(404, "Not found", str(exc))
    if isinstance(exc, IdempotencyConflict):
        return problem(409, "Idempotency key reused", str(exc), batch_id=exc.batch_id)
    if isinstance(exc, ConfirmationRequired):
        return problem(409, "Confirmation required", str(exc), recipients=exc.recipients, confirm_above=exc.threshold)
    if isinstance(exc, Conflict):
        return problem(409, "Conflict", str(exc))
    if isinstance(exc, QuotaExceeded):
        return problem(403, "Quota exceeded", str(exc), quota=exc.quota, limit=exc.limit, left=exc.left)
    if isinstance(exc, Forbidden):
        return problem(403, "Forbidden", str(exc))
    return None


def problem_from(exc: Exception) -> web.Response | None:
    """The problem+json response for one of our errors or an aiohttp HTTP error (None for anything else)."""
    ours = _ours(exc)
    if ours is not None:
        return ours
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        response = problem(exc.status, exc.reason, exc.text or "")
        for name in CARRIED_HEADERS:  # what the status means to a client, beside the body
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    return None


def store_unavailable() -> web.Response:
    """The answer while the database is unavailable (unreachable, locked, read-only): try again.

    A batch submitted again with the same ``Idempotency-Key`` is stored once, whether or not the
    first request's transaction committed before the database went.
    """
    response = problem(503, "Service unavailable", "the database is unavailable; try again")
    response.headers["Retry-After"] = "1"
    return response


def internal_error() -> web.Response:
    """The answer to an error nobody expected: a 500 that says nothing of the code (the log has the rest)."""
    return problem(500, "Internal server error", "the error is logged on the server")


PROBLEM_ERRORS: Final = (ValidationFailed, NotFound, Conflict, Forbidden, web.HTTPException)
