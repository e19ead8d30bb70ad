"""The words the OpenAPI document is written in: an operation, its responses, and the shared schemas.

An :class:`Operation` describes one route; ``api/operations.py`` lists them all and ``api/openapi.py``
builds the document from that list. The schemas here are those of what the handlers answer: the
problem bodies of ``api/problems.py`` and the JSON bodies of ``api/batches.py`` and ``api/app.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from notifyq import ids
from notifyq.api.limits import QUOTAS
from notifyq.api.problems import MAX_LISTED, PROBLEM_JSON
from notifyq.tokens import Scope

Schema = dict[str, Any]

BEARER: Final = "bearer"
TWILIO_SIGNATURE: Final = "twilioSignature"
OPS_SESSION: Final = "opsSession"
ID_PATTERN: Final = f"^{ids.ID_PATTERN}$"
EXAMPLE_ID: Final = "0ln3v6m2k6s9cdq4rkq1oc2b"
V1: Final = "Producer API"


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One route as the document describes it: ``responses`` maps each status it answers to a Response Object."""

    method: str
    path: str  # as aiohttp writes it: /v1/batches/{batch_id}
    operation_id: str
    summary: str
    tag: str
    responses: dict[int, Schema]
    description: str = ""
    parameters: tuple[Schema, ...] = ()
    request_body: Schema | None = None
    # BEARER, TWILIO_SIGNATURE, OPS_SESSION, several that each suffice, or None for a public route
    security: str | tuple[str, ...] | None = None

    @property
    def schemes(self) -> tuple[str, ...]:
        """The security schemes of which any one lets a request in (none: a public route)."""
        if self.security is None:
            return ()
        return (self.security,) if isinstance(self.security, str) else self.security

    def as_openapi(self) -> Schema:
        """The Operation Object."""
        out: Schema = {
            "operationId": self.operation_id,
            "summary": self.summary,
            "tags": [self.tag],
            "responses": {str(status): response for status, response in sorted(self.responses.items())},
        }
        if self.description:
            out["description"] = self.description
        if self.parameters:
            out["parameters"] = list(self.parameters)
        if self.request_body is not None:
            out["requestBody"] = self.request_body
        out["security"] = [{scheme: []} for scheme in self.schemes]
        return out


def ref(name: str) -> Schema:
    """A reference to a schema among the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: Schema, example: Any = None, headers: Schema | None = None) -> Schema:
    """A Response Object with a JSON body."""
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    out: Schema = {"description": description, "content": {"application/json": media}}
    if headers:
        out["headers"] = headers
    return out


def problem_response(
    status: int, description: str, title: str, detail: str, schema: str = "Problem", **extra: Any
) -> Schema:
    """A Response Object with an RFC 9457 problem body, and an example as ``api/problems.py`` writes it."""
    example = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": ref(schema), "example": example}},
    }


def path_id(name: str, what: str, otherwise: str = "Anything else is answered 404.") -> Schema:
    """A path parameter holding one of our ids; ``otherwise`` says what any other value gets."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id. {otherwise}",
        "schema": {"type": "string"},
        "example": EXAMPLE_ID,
    }


RETRY_AFTER: Final[Schema] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}

UNAUTHORIZED: Final = problem_response(
    401, "No valid bearer token.", "Unauthorized", "a valid bearer token is required"
)
UNAUTHORIZED["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="notifyq"'}}
NOT_FOUND: Final = problem_response(404, "No such batch or delivery.", "Not found", f"batch {EXAMPLE_ID} not found")
STORE_UNAVAILABLE: Final = problem_response(
    503, "The database is unavailable; the same request may be sent again.", "Service unavailable",
    "the database is unavailable; try again",
)  # fmt: skip
STORE_UNAVAILABLE["headers"] = RETRY_AFTER

_SCOPE_EXAMPLE: Final = {
    "type": "about:blank", "title": "Forbidden", "status": 403,
    "detail": "this token does not have the read scope", "scope": "read",
}  # fmt: skip
MISSING_SCOPE: Final = problem_response(
    403, "The token does not have the scope this route needs (named in scope).", "Forbidden",
    "this token does not have the read scope", "ScopeProblem", scope="read",
)  # fmt: skip
SUBMIT_FORBIDDEN: Final[Schema] = {
    "description": "The token does not have the submit scope; or the batch would pass one of its recipient "
    "quotas (nothing is stored or counted); or it may not send from the account the batch names (or the "
    "default one).",
    "content": {
        PROBLEM_JSON: {
            "schema": {"anyOf": [ref("ScopeProblem"), ref("QuotaProblem"), ref("Problem")]},
            "examples": {
                "scope": {"value": _SCOPE_EXAMPLE | {"detail": "this token does not have the submit scope",
                                                     "scope": "submit"}},
                "quota": {"value": {
                    "type": "about:blank", "title": "Quota exceeded", "status": 403,
                    "detail": "this token's daily quota is 5 recipients and 2 are left; this batch has 3",
                    "quota": "daily", "limit": 5, "left": 2,
                }},
                "account": {"value": {"type": "about:blank", "title": "Forbidden", "status": 403,
                                      "detail": "this token may not send from the account 'main'"}},
            },
        }
    },
}  # fmt: skip
RATE_LIMITED: Final = problem_response(
    429, "Past the token's rate limit; nothing is done. Retry-After says when to send it again.",
    "Too many requests", "this token's rate limit is passed; try again in 4 s",
)  # fmt: skip
RATE_LIMITED["headers"] = {"Retry-After": RETRY_AFTER["Retry-After"] | {"required": True}}


def v1_operation(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    responses: dict[int, Schema],
    description: str = "",
    parameters: tuple[Schema, ...] = (),
    request_body: Schema | None = None,
    tag: str = V1,
) -> Operation:
    """A ``/v1`` operation: bearer auth, and what every one of them may answer.

    That is 401; 403 for a token without the route's scope (a route's own 403 describes more); 429 past the
    token's rate; 503 for the database.
    """
    return Operation(
        method=method,
        path=path,
        operation_id=operation_id,
        summary=summary,
        tag=tag,
        security=BEARER,
        responses={403: MISSING_SCOPE, 429: RATE_LIMITED} | responses | {401: UNAUTHORIZED, 503: STORE_UNAVAILABLE},
        description=description,
        parameters=parameters,
        request_body=request_body,
    )


def _problem_schema() -> Schema:
    return {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": "about:blank: the status and title say what went wrong."},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
        },
        "description": "RFC 9457 problem details.",
    }


def _validation_problem_schema() -> Schema:
    listed = {
        "type": "object",
        "required": ["field", "reason"],
        "additionalProperties": False,
        "properties": {
            "field": {"type": "string", "description": "Where: a field, recipients[i], recipients[i].vars..."},
            "reason": {"type": "string"},
            "index": {"type": "integer", "minimum": 0, "description": "The recipient's position, for its problems."},
        },
    }
    return {
        "allOf": [ref("Problem")],
        "type": "object",
        "required": ["errors", "errors_total"],
        "properties": {
            "errors": {"type": "array", "items": listed, "maxItems": MAX_LISTED},
            "errors_total": {"type": "integer", "minimum": 1},
        },
        "description": "Every problem found, in order; past the listing cap the rest are counted.",
    }


_EPOCH: Final[Schema] = {"type": "number", "description": "Seconds since the Unix epoch."}
_EPOCH_OR_NULL: Final[Schema] = {"type": ["number", "null"], "description": "Seconds since the Unix epoch."}
_ID: Final[Schema] = {"type": "string", "pattern": ID_PATTERN}
_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}


def _batch_accepted() -> Schema:
    return {
        "type": "object",
        "required": ["id", "created", "channel", "total", "duplicates_dropped", "priority", "valid_until"],
        "properties": {
            "id": _ID,
            "created": {
                "type": "boolean",
                "description": "false: the idempotency key's earlier batch, answered again.",
            },
            "channel": {"type": "string", "enum": ["sms", "mms", "call"]},
            "total": _COUNT,
            "duplicates_dropped": _COUNT,
            "priority": {"type": "string", "enum": ["bulk", "urgent"]},
            "send_at": _EPOCH_OR_NULL,
            "valid_until": _EPOCH,
            "idempotency_key": {"type": ["string", "null"]},
            "links": {"type": "object", "properties": {"self": {"type": "string"}}},
        },
    }


def _batch_status() -> Schema:
    counts = {"type": "object", "additionalProperties": _COUNT}
    return {
        "type": "object",
        "required": ["id", "channel", "total", "final", "done", "by_status", "by_error_code", "created_at"],
        "properties": {
            "id": _ID,
            "channel": {"type": "string", "enum": ["sms", "mms", "call"]},
            "total": _COUNT,
            "final": _COUNT,
            "done": {"type": "boolean"},
            "by_status": counts | {"description": "Deliveries by status."},
            "by_error_code": counts | {"description": "Deliveries by Twilio error code."},
            "duplicates_dropped": _COUNT,
            "created_at": _EPOCH,
            "enqueued_at": _EPOCH_OR_NULL,
            "canceled_at": _EPOCH_OR_NULL,
            "meta": {"type": ["object", "null"], "description": "The request's metadata."},
        },
    }


def _delivery_item() -> Schema:
    return {
        "type": "object",
        "required": ["id", "to", "status", "attempts", "updated_at"],
        "properties": {
            "id": _ID,
            "to": {"type": "string"},
            "status": {"type": "string"},
            "error_code": {"type": ["integer", "null"]},
            "error_message": {"type": ["string", "null"]},
            "twilio_sid": {"type": ["string", "null"]},
            "attempts": _COUNT,
            "updated_at": _EPOCH,
        },
    }


def _delivery() -> Schema:
    event = {
        "type": "object",
        "required": ["id", "delivery_id", "at", "kind"],
        "properties": {
            "id": {"type": "integer"},
            "delivery_id": _ID,
            "at": _EPOCH,
            "kind": {"type": "string", "description": "attempt, callback, reconcile, lookup or state."},
            "status": {"type": ["string", "null"]},
            "error_code": {"type": ["integer", "null"]},
            "http_status": {"type": ["integer", "null"]},
            "duration_ms": {"type": ["number", "null"]},
            "applied": {"type": ["boolean", "null"]},
            "reason": {"type": ["string", "null"]},
            "data": {"description": "What the event carried (JSON)."},
        },
    }
    return {
        "type": "object",
        "required": ["id", "batch_id", "channel", "to_number", "status", "attempts", "final", "events"],
        "properties": {
            "id": _ID,
            "batch_id": _ID,
            "seq": _COUNT,
            "channel": {"type": "string", "enum": ["sms", "mms", "call"]},
            "to_number": {"type": "string"},
            "variables": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            "status": {"type": "string"},
            "status_rank": {"type": "integer"},
            "call_seq": {"type": ["integer", "null"]},
            "twilio_sid": {"type": ["string", "null"]},
            "error_code": {"type": ["integer", "null"]},
            "error_message": {"type": ["string", "null"]},
            "attempts": _COUNT,
            "segments": {"type": ["integer", "null"]},
            "created_at": _EPOCH,
            "updated_at": _EPOCH,
            "dispatched_at": _EPOCH_OR_NULL,
            "final_at": _EPOCH_OR_NULL,
            "valid_until": _EPOCH,
            "final": {"type": "boolean"},
            "events": {"type": "array", "items": event, "description": "The delivery's history, oldest first."},
        },
    }


def components() -> dict[str, Schema]:
    """The schemas of every body the handlers answer, by name."""
    return {
        "Problem": _problem_schema(),
        "ValidationProblem": _validation_problem_schema(),
        "IdempotencyProblem": {
            "allOf": [ref("Problem")],
            "type": "object",
            "required": ["batch_id"],
            "properties": {"batch_id": _ID},
        },
        "ScopeProblem": {
            "allOf": [ref("Problem")],
            "type": "object",
            "required": ["scope"],
            "properties": {"scope": {"type": "string", "enum": sorted(Scope), "description": "The one it needs."}},
        },
        "QuotaProblem": {
            "allOf": [ref("Problem")],
            "type": "object",
            "required": ["quota", "limit", "left"],
            "properties": {
                "quota": {"type": "string", "enum": sorted(QUOTAS.values())},
                "limit": {"type": "integer", "minimum": 0, "description": "Recipients in the period (UTC)."},
                "left": {"type": "integer", "minimum": 0, "description": "Recipients the period has left."},
            },
        },
        "BatchAccepted": _batch_accepted(),
        "BatchStatus": _batch_status(),
        "DeliveryPage": {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": _delivery_item()},
                "next": {"type": ["string", "null"], "description": "The after= of the next page; null at the end."},
            },
        },
        "Delivery": _delivery(),
        "Canceled": {
            "type": "object",
            "required": ["id", "canceled"],
            "properties": {"id": {"type": "string"}, "canceled": _COUNT},
        },
        "Health": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }
