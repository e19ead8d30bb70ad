"""Every route the API serves, as the OpenAPI document describes it: one :class:`Operation` each.

A new route gets its entry in :data:`OPERATIONS` (or, for a route that is no API, a line in
:data:`UNDOCUMENTED`); ``tests/api/test_openapi.py`` fails for a route of the app found in neither.
The limits and choices come from the handlers' own constants, so the document follows them.
"""

from __future__ import annotations

from typing import Final

from notifyq.api.account_spec import account_operations, connect_operations
from notifyq.api.batches import DEFAULT_PAGE, DELIVERY_STATUSES, KEY_HEADER, MAX_PAGE
from notifyq.api.callbacks import SIGNATURE_HEADER
from notifyq.api.examples import ACCEPTED_EXAMPLE, BATCH_EXAMPLES, STATUS_EXAMPLE
from notifyq.api.ops_spec import OPS, ops_operations
from notifyq.api.preview_spec import DRY_RUN_PARAMETER, PREVIEW_EXAMPLE
from notifyq.api.problems import PROBLEM_JSON
from notifyq.api.replay_spec import (
    CONFIRMATION_EXAMPLE,
    DRY_RUN_EXAMPLE,
    RACE_EXAMPLE,
    RECORD_EXAMPLE,
    REQUEST_EXAMPLES,
    STARTED_EXAMPLE,
)
from notifyq.api.spec import (
    EXAMPLE_ID,
    ID_PATTERN,
    NOT_FOUND,
    STORE_UNAVAILABLE,
    SUBMIT_FORBIDDEN,
    TWILIO_SIGNATURE,
    Operation,
    Schema,
    json_response,
    path_id,
    problem_response,
    ref,
)
from notifyq.api.spec import (
    v1_operation as _v1,
)
from notifyq.intake.request import MAX_IDEMPOTENCY_KEY

TWILIO: Final = "Twilio callbacks"


_BAD_QUERY: Final = problem_response(
    400, "A query parameter no delivery could match.", "Bad query parameter",
    f"limit must be a whole number from 1 to {MAX_PAGE}",
)  # fmt: skip
_INVALID: Final = problem_response(
    422, "The batch breaks a rule; nothing is stored. Every problem is listed.", "Invalid batch",
    "1 problem(s); the batch was not accepted", "ValidationProblem",
    errors=[{"field": "recipients[0]", "reason": "'+1415' is too short", "index": 0}], errors_total=1,
)  # fmt: skip
_TOO_LARGE: Final = problem_response(
    413,
    "The body is over the configured limit.",
    "Request Entity Too Large",
    "Maximum request body size 1048576 exceeded, actual body size 1048577",
)
_UNSUPPORTED: Final = problem_response(
    415, "Not JSON, or JSON in a charset other than UTF-8.", "Unsupported media type",
    "send the batch as application/json",
)  # fmt: skip
_MALFORMED: Final = problem_response(
    400, "The body is not UTF-8 JSON, or not a JSON object.", "Malformed JSON",
    "Expecting value: line 1 column 1 (char 0)",
)  # fmt: skip
_FORBIDDEN: Final = problem_response(
    403, "Not signed by the Auth Token of the account it names; nothing is changed.", "Forbidden",
    f"missing or invalid {SIGNATURE_HEADER}",
)  # fmt: skip
_CALLBACK_TOO_LARGE: Final = problem_response(
    413, "Over api.callback_max_body_bytes, or too many fields.", "Request Entity Too Large",
    "the body is larger than 65536 bytes",
)  # fmt: skip
_BAD_FORM: Final = problem_response(400, "Not a readable form.", "Bad form", "unknown charset 'x-nothing'")
_TWILIO_FORM: Final[Schema] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["AccountSid"],
                "additionalProperties": {"type": "string"},
                "properties": {"AccountSid": {"type": "string", "description": "Names the signing account."}},
            }
        }
    },
}
_TEXT: Final[Schema] = {"type": "string"}
_LOCATION: Final[Schema] = {
    "Location": {"required": True, "schema": {"type": "string"}, "example": f"/v1/replays/{EXAMPLE_ID}"}
}
_METRICS: Final = {
    "description": "Prometheus text exposition.",
    "content": {"text/plain": {"schema": _TEXT}},
}


def _callback(kind: str, operation_id: str) -> Operation:
    return Operation(
        method="POST",
        path=f"/twilio/{kind}-status/{{delivery_id}}",
        operation_id=operation_id,
        summary=f"A {kind} status callback from Twilio",
        description="Called by Twilio, not by producers: the StatusCallback URL of each send. Made durable "
        "before it is answered; a signed callback whose values are invalid is still answered 200 and kept "
        "with the reason.",
        tag=TWILIO,
        security=TWILIO_SIGNATURE,
        parameters=(path_id("delivery_id", "delivery", "Anything else, signed, is answered 400."),),
        request_body=_TWILIO_FORM,
        responses={
            200: {"description": "Kept."},
            400: problem_response(
                400, "Not a callback for a notifyq delivery.", "Bad callback", "not a status callback"
            ),
            403: _FORBIDDEN,
            413: _CALLBACK_TOO_LARGE,
            503: problem_response(503, "Neither the buffer nor the store is available.", "Unavailable", "try again"),
        },
    )


def _application_callback(kind: str, operation_id: str) -> Operation:
    sid = "CallSid" if kind == "call" else "MessageSid (or SmsSid)"
    return Operation(
        method="POST",
        path=f"/twilio/{kind}-status",
        operation_id=operation_id,
        summary=f"A {kind} status callback from Twilio, to the TwiML Application's URL",
        description=f"Called by Twilio, not by producers: the StatusCallback of the TwiML Application "
        f"`notifyq twilio provision` makes (a call made with an ApplicationSid reports there, whatever its own "
        f"StatusCallback). The delivery is the one the form's {sid} names; a SID no delivery holds is answered "
        "200 and logged, and the reconciler brings that delivery's status in.",
        tag=TWILIO,
        security=TWILIO_SIGNATURE,
        request_body=_TWILIO_FORM,
        responses={
            200: {"description": "Kept, or a SID no delivery of ours holds."},
            400: problem_response(
                400, f"Signed, but no valid {sid}; or not a readable form.", "Bad callback",
                "not a status callback for a message or call",
            ),
            403: _FORBIDDEN,
            413: _CALLBACK_TOO_LARGE,
            503: problem_response(
                503, "The store (to find the delivery), or both the buffer and the store, are unavailable.",
                "Unavailable", "the store is not available",
            ),
        },
    )  # fmt: skip


def _batch_operations() -> list[Operation]:
    batch_id = path_id("batch_id", "batch")
    return [
        _v1(
            "POST", "/v1/batches", "submitBatch", "Submit a batch",
            description="Validated whole and stored in one transaction, then queued; 202 with its id. A repeat "
            "of an idempotency key with the same request answers the first batch again (200). With dry_run=true "
            "the batch is checked the same way and answered 200 with its segments, encoding and price "
            "(BatchPreview); nothing is stored or sent.",
            parameters=(
                DRY_RUN_PARAMETER,
                {
                    "name": KEY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "The same as the body's idempotency_key; when both are sent they must agree.",
                    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
                },
            ),
            request_body={
                "required": True,
                "content": {"application/json": {"schema": ref("BatchRequest"), "examples": BATCH_EXAMPLES}},
            },
            responses={
                202: json_response("Accepted: stored and being queued.", ref("BatchAccepted"), ACCEPTED_EXAMPLE),
                200: {
                    "description": "The idempotency key's earlier batch; with dry_run=true, the preview.",
                    "content": {"application/json": {
                        "schema": {"oneOf": [ref("BatchAccepted"), ref("BatchPreview")]},
                        "examples": {
                            "repeat": {"summary": "The earlier batch", "value": ACCEPTED_EXAMPLE | {"created": False}},
                            "dry_run": {"summary": "A preview (dry_run=true)", "value": PREVIEW_EXAMPLE},
                        },
                    }},
                },
                400: _MALFORMED,
                409: problem_response(409, "The idempotency key was used for another request.",
                                      "Idempotency key reused", "the key was used for a different request",
                                      "IdempotencyProblem", batch_id=EXAMPLE_ID),
                413: _TOO_LARGE,
                403: SUBMIT_FORBIDDEN,
                415: _UNSUPPORTED,
                422: _INVALID,
            },
        ),
        _v1(
            "GET", "/v1/batches/{batch_id}", "getBatch", "A batch's counts by status and error code",
            parameters=(batch_id,),
            responses={200: json_response("The batch.", ref("BatchStatus"), STATUS_EXAMPLE), 404: NOT_FOUND},
        ),
        _v1(
            "GET", "/v1/batches/{batch_id}/deliveries", "listDeliveries", "A page of a batch's deliveries",
            parameters=(
                batch_id,
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": sorted(DELIVERY_STATUSES)}},
                {"name": "after", "in": "query", "description": "The previous page's next.",
                 "schema": {"type": "string", "pattern": ID_PATTERN}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}},
            ),
            responses={
                200: json_response("The page.", ref("DeliveryPage"), {"items": [], "next": None}),
                400: _BAD_QUERY,
                404: NOT_FOUND,
            },
        ),
        _v1(
            "POST", "/v1/batches/{batch_id}/cancel", "cancelBatch", "Cancel what is not sent yet",
            parameters=(batch_id,),
            responses={
                200: json_response("How many deliveries became canceled.", ref("Canceled"),
                                   {"id": EXAMPLE_ID, "canceled": 2}),
                404: NOT_FOUND,
            },
        ),
        _v1(
            "GET", "/v1/deliveries/{delivery_id}", "getDelivery", "A delivery and its history",
            parameters=(path_id("delivery_id", "delivery"),),
            responses={200: json_response("The delivery.", ref("Delivery")), 404: NOT_FOUND},
        ),
    ]  # fmt: skip


def _replay_operations() -> list[Operation]:
    conflict = {
        "description": "Over replay.confirm_above recipients without confirm (ConfirmationProblem); or another "
        "replay took some of the same deliveries meanwhile (the batches stored before stay: a dry run shows "
        "what is left).",
        "content": {
            PROBLEM_JSON: {
                "schema": {"anyOf": [ref("ConfirmationProblem"), ref("Problem")]},
                "examples": {
                    "confirmation": {"value": CONFIRMATION_EXAMPLE},
                    "race": {"value": RACE_EXAMPLE},
                },
            }
        },
    }
    return [
        _v1(
            "POST", "/v1/replays", "replay", "Send failed deliveries again, across batches, as new batches",
            description="The final deliveries the filter matches, less those the safety defaults skip (each "
            "counted by reason), go again as one new batch per original batch, with its request. Each original "
            "delivery is replayed once (again: once more). A dry run stores and sends nothing (200); a replay "
            "is recorded, its id in Location (202).",
            request_body={
                "required": False,
                "content": {"application/json": {"schema": ref("ReplayRequest"), "examples": REQUEST_EXAMPLES}},
            },
            responses={
                200: json_response("A dry run: what would go.", ref("ReplayAnswer"), DRY_RUN_EXAMPLE),
                202: json_response("Recorded; its batches are stored and being queued.", ref("ReplayAnswer"),
                                   STARTED_EXAMPLE, headers=_LOCATION),
                400: _MALFORMED,
                404: problem_response(404, "A batch id in batch_ids that is no id.", "Not found",
                                      "batch nothing not found"),
                409: conflict,
                413: _TOO_LARGE,
                415: _UNSUPPORTED,
                422: problem_response(
                    422, "A field of the wrong kind or value, or a status a replay never sends; every problem "
                    "listed.", "Invalid batch", "1 problem(s); the batch was not accepted", "ValidationProblem",
                    errors=[{"field": "statuses", "reason": "'delivered' reached its recipient: a replay never "
                             "sends it again"}], errors_total=1,
                ),
            },
        ),
        _v1(
            "GET", "/v1/replays/{replay_id}", "getReplay", "A replay's record",
            description="Who ran it, when, the filter, what it matched, skipped and created.",
            parameters=(path_id("replay_id", "replay"),),
            responses={
                200: json_response("The record.", ref("ReplayRecord"), RECORD_EXAMPLE),
                404: problem_response(404, "No such replay.", "Not found", f"replay {EXAMPLE_ID} not found"),
            },
        ),
    ]  # fmt: skip


def _other_operations() -> list[Operation]:
    return [
        _callback("message", "messageStatusCallback"),
        _callback("call", "callStatusCallback"),
        _application_callback("message", "applicationMessageStatusCallback"),
        _application_callback("call", "applicationCallStatusCallback"),
        Operation(
            method="POST", path="/twilio/inbound", operation_id="inboundMessage", tag=TWILIO,
            summary="An inbound message from Twilio: STOP, START and HELP keep the suppression list",
            description="Called by Twilio, not by producers: the number's messaging webhook.",
            security=TWILIO_SIGNATURE, request_body=_TWILIO_FORM,
            responses={
                200: {"description": "Empty TwiML.", "content": {"text/xml": {"schema": _TEXT}}},
                400: _BAD_FORM, 403: _FORBIDDEN, 413: _CALLBACK_TOO_LARGE, 503: STORE_UNAVAILABLE,
            },
        ),
        Operation(
            method="GET", path="/healthz", operation_id="health", tag=OPS, summary="Redis and the callback applier",
            responses={
                200: json_response("Healthy.", ref("Health"), {"status": "ok", "checks": {"redis": "ok"}}),
                503: json_response("Degraded.", ref("Health"),
                                   {"status": "degraded", "checks": {"redis": "down: Connection refused"}}),
            },
        ),
        Operation(method="GET", path="/metrics", operation_id="metrics", tag=OPS,
                  summary="This process's metrics", responses={200: _METRICS}),
        Operation(
            method="GET", path="/metrics/cluster", operation_id="clusterMetrics", tag=OPS,
            summary="The deployment's gauges, read from Redis: scrape through one target",
            responses={200: _METRICS, 503: problem_response(503, "Redis is unavailable.", "Service Unavailable",
                                                           "Redis unavailable")},
        ),
        Operation(
            method="GET", path="/openapi.json", operation_id="openapi", tag=OPS, summary="This document",
            responses={200: json_response("OpenAPI 3.1.", {"type": "object"})},
        ),
        Operation(
            method="GET", path="/docs", operation_id="docs", tag=OPS, summary="This document as a page",
            responses={200: {"description": "HTML.", "content": {"text/html": {"schema": _TEXT}}}},
        ),
    ]  # fmt: skip


OPERATIONS: Final[tuple[Operation, ...]] = (
    *_batch_operations(),
    *_replay_operations(),
    *account_operations(),
    *_other_operations(),
    *connect_operations(TWILIO),
    *ops_operations(),
)
"""Every documented route: the document lists them in this order."""

_BROWSER: Final = "the ops page, for a browser: its JSON is GET /ops/data"
UNDOCUMENTED: Final[dict[tuple[str, str], str]] = {
    ("GET", "/docs/{asset}"): "the docs page's stylesheet",
    ("GET", "/ops"): _BROWSER,
    ("GET", "/ops/panel"): "the ops page's live part, the HTML its script fetches: its JSON is GET /ops/data",
    ("GET", "/ops/signin"): "the sign-in form, HTML: a client sends its bearer token instead",
    ("POST", "/ops/signin"): "the sign-in form's post: a token in, the ops session cookie out",
    ("POST", "/ops/signout"): "the sign-out form's post: the ops session cookie cleared",
    ("GET", "/ops/static/{name}"): "the ops page's script, stylesheet and icon",
}
"""Routes that are no API, each with the reason: pages, forms and files for a browser."""
