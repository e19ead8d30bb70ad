"""The ops page's JSON routes in the OpenAPI document: ``GET /ops/data`` and ``GET /ops/deliveries``.

Both take an operator's bearer token or the session cookie the sign-in form sets (``OPS_SESSION``).
The page itself, its panel, its forms and its files are for a browser, not a client: they are listed
in ``api/operations.py``'s ``UNDOCUMENTED`` with the reason.
"""

from __future__ import annotations

from typing import Final

from notifyq.api.ops import BEFORE_PATTERN, ERROR_CODE_PATTERN, MAX_PAGE, PAGE_SIZE, REFRESH_S
from notifyq.api.ops_data import FAILURE_WINDOW_S, PROGRESS_PARTS, SERIES_STEP_S, SERIES_WINDOW_S
from notifyq.api.spec import (
    BEARER,
    ID_PATTERN,
    MISSING_SCOPE,
    OPS_SESSION,
    RATE_LIMITED,
    STORE_UNAVAILABLE,
    Operation,
    Schema,
    json_response,
    problem_response,
    ref,
)

OPS: Final = "Operations"
_ID: Final[Schema] = {"type": "string", "pattern": ID_PATTERN}
_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
_EPOCH: Final[Schema] = {"type": "number", "description": "Seconds since the Unix epoch."}
_CODE: Final[Schema] = {"type": ["integer", "null"], "description": "A Twilio error code; null: none."}
_HTML: Final[Schema] = {"type": "string"}
_NO_STORE: Final[Schema] = {"Cache-Control": {"schema": {"type": "string"}, "example": "no-store"}}

_SIGN_IN: Final[Schema] = {
    "description": "A browser (Accept: text/html) without a session is sent to the sign-in form.",
    "headers": {
        "Location": {
            "required": True,
            "schema": {"type": "string"},
            "example": "/ops/signin?next=/ops/data",
        }
    },
    "content": {"text/plain": {"schema": {"type": "string"}, "example": "303: See Other"}},
}
_UNAUTHORIZED: Final = problem_response(
    401, "No operator bearer token or session.", "Unauthorized",
    "an operator's bearer token or session is required",
)  # fmt: skip
_UNAUTHORIZED["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="notifyq"'}}
_UNAVAILABLE: Final = problem_response(
    503, "Redis or the database is unavailable.", "Service Unavailable", "Redis unavailable: Connection refused"
)


def _batch() -> Schema:
    return {
        "type": "object",
        "required": ["id", "created_at", "channel", "total", "by_status", "progress", "final", "done"],
        "properties": {
            "id": _ID,
            "created_at": _EPOCH,
            "channel": {"type": "string"},
            "account": {"type": ["string", "null"]},
            "sender": {"type": ["string", "null"]},
            "priority": {"type": "string"},
            "total": _COUNT,
            "canceled": {"type": "boolean"},
            "by_status": {"type": "object", "additionalProperties": _COUNT},
            "progress": {
                "type": "object",
                "required": list(PROGRESS_PARTS),
                "properties": dict.fromkeys(PROGRESS_PARTS, _COUNT),
                "description": "Its deliveries in the parts of its progress bar.",
            },
            "final": _COUNT,
            "done": {"type": "boolean"},
        },
    }


def _ops_data() -> Schema:
    point = {
        "type": "object",
        "required": ["start", "sends_per_s", "requests", "accepted"],
        "properties": {
            "start": _EPOCH,
            "sends_per_s": {"type": "number"},
            "latency_ms": {"type": ["number", "null"]},
            "requests": _COUNT,
            "accepted": _COUNT,
        },
    }
    group = {
        "type": "object",
        "required": ["error_code", "meaning", "action", "count", "batch_count", "deliveries_url"],
        "properties": {
            "error_code": _CODE,
            "meaning": {"type": "string"},
            "action": {"type": "string", "description": "What notifyq does on it; - for none."},
            "count": _COUNT,
            "batch_count": _COUNT,
            "deliveries_url": {"type": "string", "description": "Its deliveries: GET /ops/deliveries."},
        },
    }
    by_name = {"type": "object", "additionalProperties": {"type": "object"}}
    required = ["at", "lanes", "throughput", "accounts", "senders", "paused", "batches", "failures", "callbacks"]
    return {
        "type": "object",
        "required": [*required, "reconcile_backlog"],
        "description": f"What the ops page shows, read at one moment (one reading serves every viewer of a "
        f"replica; the page reads it every {REFRESH_S:g} s). lanes, accounts, senders and reconcile_backlog "
        "are as `notifyq status --json` prints them.",
        "properties": {
            "at": _EPOCH,
            "lanes": by_name | {"description": "By lane: depth, due, scheduled, oldest_age_s, in_flight, retrying."},
            "throughput": {
                "type": "object",
                "required": ["window_s", "step_s", "points"],
                "properties": {
                    "window_s": {"const": SERIES_WINDOW_S},
                    "step_s": {"const": SERIES_STEP_S},
                    "points": {"type": "array", "items": point},
                },
            },
            "accounts": by_name,
            "senders": by_name,
            "paused": {"type": "array", "items": {"type": "string"}, "description": "Paused accounts' SIDs."},
            "batches": {"type": "array", "items": _batch(), "description": "The latest batches."},
            "failures": {
                "type": "object",
                "required": ["since", "window_s", "groups"],
                "properties": {
                    "since": _EPOCH,
                    "window_s": {"const": FAILURE_WINDOW_S},
                    "groups": {"type": "array", "items": group, "description": "Failed deliveries by code."},
                },
            },
            "callbacks": {
                "type": "object",
                "required": ["backlog", "dead_letters", "dead_letter_entries"],
                "properties": {
                    "backlog": _COUNT,
                    "dead_letters": _COUNT,
                    "dead_letter_entries": {"type": "array", "items": {"type": "object"}},
                },
            },
            "reconcile_backlog": {"type": "object"},
        },
    }


def _failed_deliveries() -> Schema:
    delivery = {
        "type": "object",
        "required": ["id", "batch_id", "to", "status", "error_code", "attempts", "updated_at"],
        "properties": {
            "id": _ID,
            "batch_id": _ID,
            "to": {"type": "string", "description": "Masked: the country code and the last 4 digits."},
            "status": {"type": "string"},
            "error_code": _CODE,
            "error_message": {"type": ["string", "null"], "description": "Numbers in it masked."},
            "attempts": _COUNT,
            "twilio_sid": {"type": ["string", "null"]},
            "updated_at": _EPOCH,
        },
    }
    return {
        "type": "object",
        "required": ["error_code", "deliveries", "next"],
        "properties": {
            "error_code": _CODE,
            "deliveries": {"type": "array", "items": delivery, "description": "Latest first."},
            "next": {"type": ["string", "null"], "description": "The next page's URL; null at the end."},
        },
    }


def ops_schemas() -> dict[str, Schema]:
    """The ops routes' schemas, by name."""
    return {"OpsData": _ops_data(), "FailedDeliveries": _failed_deliveries()}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def ops_operations() -> list[Operation]:
    """The ops page's JSON routes."""
    data = Operation(
        method="GET", path="/ops/data", operation_id="opsData", tag=OPS, security=(OPS_SESSION, BEARER),
        summary="Every figure the ops page shows, as JSON",
        responses={
            200: json_response("The figures.", ref("OpsData"), headers=_NO_STORE),
            303: _SIGN_IN, 401: _UNAUTHORIZED, 403: MISSING_SCOPE, 429: RATE_LIMITED, 503: _UNAVAILABLE,
        },
    )  # fmt: skip
    deliveries = Operation(
        method="GET", path="/ops/deliveries", operation_id="opsFailedDeliveries", tag=OPS,
        security=(OPS_SESSION, BEARER), summary="Failed deliveries with one error code, a page at a time",
        description="JSON unless the client accepts text/html (a browser gets the page); format=json asks for "
        "JSON either way. Recipients and the numbers in error messages are masked.",
        parameters=(
            _query("error_code", {"type": "string", "pattern": ERROR_CODE_PATTERN},
                   "A Twilio error code, or none for failures without one.")
            | {"required": True},
            _query("since", {"type": "number"}, "Only failures at or after this Unix time."),
            _query("batch", _ID, "Only this batch's."),
            _query("limit", {"type": "integer", "minimum": 1, "default": PAGE_SIZE},
                   f"At most this many; more than {MAX_PAGE} is {MAX_PAGE}."),
            _query("before", {"type": "string", "pattern": BEFORE_PATTERN},
                   "The previous page's next carries it (at:id)."),
            _query("format", {"type": "string", "enum": ["json"]}, "JSON even for a browser."),
        ),
        responses={
            200: {
                "description": "A page: JSON, or the page for a browser.",
                "headers": _NO_STORE,
                "content": {"application/json": {"schema": ref("FailedDeliveries")}, "text/html": {"schema": _HTML}},
            },
            303: _SIGN_IN, 401: _UNAUTHORIZED, 403: MISSING_SCOPE, 429: RATE_LIMITED,
            400: problem_response(400, "A query parameter that is not one.", "Bad query",
                                  "limit must be at least 1"),
            503: STORE_UNAVAILABLE,
        },
    )  # fmt: skip
    return [data, deliveries]
