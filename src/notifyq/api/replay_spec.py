"""The replay API's schemas and examples in the OpenAPI document (``POST /v1/replays``, ``GET /v1/replays/{id}``).

The request's schema is built from the constants ``api/replays.py`` reads the body with and the rules
``notifyq.replay`` holds a filter to, so the document follows them; ``tests/api/test_openapi_edges.py`` sends a
body just inside and just outside each constraint to both.
"""

from __future__ import annotations

from typing import Final

from notifyq import statuses as st
from notifyq.api.replays import FLAGS, LISTS, MAX_TEXT, TEXTS
from notifyq.api.spec import EXAMPLE_ID, ID_PATTERN, Schema, ref
from notifyq.replay import MAX_ERROR_CODE
from notifyq.store import ReplayFilter

_ID: Final[Schema] = {"type": "string", "pattern": ID_PATTERN}
_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
_TEXT: Final[Schema] = {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_TEXT}
_COUNTS: Final[Schema] = {
    "type": "object",
    "additionalProperties": _COUNT,
    "description": "By reason: suppressed, reached, permanent_error, already_replayed, replay_in_flight, "
    'same_original, not_replayable (README, "Replaying what failed").',
}
_LIST_ITEMS: Final[dict[str, Schema]] = {
    "batch_ids": _ID | {"description": "A string that is no id is a 404; an id no batch has matches nothing."},
    "statuses": {"type": "string", "enum": list(st.REPLAYABLE)},
    "error_codes": {"type": "integer", "minimum": 1, "maximum": MAX_ERROR_CODE},
}
_LIST_NOTES: Final = {
    "batch_ids": "Only these batches (none: any).",
    "statuses": "Final statuses to send again (none: the default). A status that reached its recipient, or "
    "suppressed, is a 422.",
    "error_codes": "Only deliveries that ended with one of these Twilio codes; naming a permanent code replays it.",
}
_TEXT_NOTES: Final = {
    "account": "An account's name or SID.",
    "sender": "The From number, sender ID or Messaging Service SID.",
    "since": "ISO 8601 (UTC unless it says): the delivery became final at or after it.",
    "until": "ISO 8601 (UTC unless it says), later than since: the delivery became final before it.",
    "operator": "Who runs it, for the record (beside the bearer token's fingerprint, never the token).",
}
_FLAG_NOTES: Final = {
    "again": "Replay deliveries replayed before, once more.",
    "dry_run": "Count and show; store and send nothing (200).",
    "confirm": "Yes to a replay over replay.confirm_above recipients (else 409).",
}
_MOMENTS: Final = ("since", "until")


def replay_request_schema() -> Schema:
    """The body of ``POST /v1/replays`` (``api.replays._request``, then ``replay.filter_problems``)."""
    properties: Schema = {
        name: {"type": "array", "items": _LIST_ITEMS[name], "description": _LIST_NOTES[name]} for name in LISTS
    }
    properties["statuses"]["default"] = list(ReplayFilter().statuses)
    for name in TEXTS:
        # any form datetime.fromisoformat reads (2026-12-07 too), so no "format": a validator may assert it
        text = {"type": ["string", "null"]} if name in _MOMENTS else _TEXT
        properties[name] = text | {"description": _TEXT_NOTES[name]}
    for name in FLAGS:
        properties[name] = {"type": "boolean", "default": False, "description": _FLAG_NOTES[name]}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "description": "Every field given must match. Texts are at most "
        f"{MAX_TEXT} characters with no control character; a code written with a fraction (30003.0) is a 422.",
    }


def _filter() -> Schema:
    return {
        "type": "object",
        "required": ["statuses", "batch_ids", "error_codes", "account", "sender", "since", "until"],
        "properties": {
            "statuses": {"type": "array", "items": {"type": "string"}},
            "batch_ids": {"type": "array", "items": _ID},
            "error_codes": {"type": "array", "items": {"type": "integer"}},
            "account": {"type": ["string", "null"]},
            "sender": {"type": ["string", "null"]},
            "since": {"type": ["string", "null"], "format": "date-time"},
            "until": {"type": ["string", "null"], "format": "date-time"},
            "again": {"type": "boolean"},
        },
    }


def _replay_answer() -> Schema:
    code = {
        "type": "object",
        "required": ["error_code", "count", "meaning"],
        "properties": {"error_code": {"type": ["integer", "null"]}, "count": _COUNT, "meaning": {"type": "string"}},
    }
    sample = {
        "type": "object",
        "required": ["to", "delivery_id", "batch_id", "status"],
        "properties": {
            "to": {"type": "string", "description": "Masked: the country code and the last 4 digits."},
            "delivery_id": _ID,
            "batch_id": _ID,
            "status": {"type": "string"},
            "error_code": {"type": ["integer", "null"]},
        },
    }
    required = ["id", "dry_run", "ran_by", "filter", "matched", "skipped", "skipped_total", "replayable"]
    return {
        "type": "object",
        "required": [*required, "replayed", "needs_confirmation", "by_error_code", "sample", "batch_ids"],
        "properties": {
            "id": {"anyOf": [_ID, {"type": "null"}], "description": "The replay's record; null for a dry run."},
            "dry_run": {"type": "boolean"},
            "ran_by": {"type": "string"},
            "filter": ref("ReplayFilter"),
            "matched": _COUNT,
            "skipped": _COUNTS,
            "skipped_total": _COUNT,
            "replayable": _COUNT,
            "replayed": _COUNT,
            "needs_confirmation": {"type": "boolean"},
            "by_error_code": {"type": "array", "items": code, "description": "What would go, by code."},
            "sample": {"type": "array", "items": sample},
            "batch_ids": {"type": "array", "items": _ID, "description": "The new batches, one per original batch."},
        },
    }


def replay_schemas() -> dict[str, Schema]:
    """The replay API's schemas, by name."""
    return {
        "ReplayRequest": replay_request_schema(),
        "ReplayFilter": _filter(),
        "ReplayAnswer": _replay_answer(),
        "ReplayRecord": {
            "type": "object",
            "required": ["id", "created_at", "ran_by", "filter", "matched", "skipped", "replayed", "batch_ids"],
            "properties": {
                "id": _ID,
                "created_at": {"type": "number", "description": "Seconds since the Unix epoch."},
                "ran_by": {"type": "string"},
                "filter": ref("ReplayFilter"),
                "matched": _COUNT,
                "skipped": _COUNTS,
                "replayed": _COUNT,
                "batch_ids": {"type": "array", "items": _ID},
                "finished": {"type": "boolean", "description": "false: its batches are still being stored."},
            },
        },
        "ConfirmationProblem": {
            "allOf": [ref("Problem")],
            "type": "object",
            "required": ["recipients", "confirm_above"],
            "properties": {"recipients": _COUNT, "confirm_above": _COUNT},
        },
    }


FILTER_EXAMPLE: Final = {
    "statuses": ["failed", "undelivered"],
    "batch_ids": [EXAMPLE_ID],
    "error_codes": [],
    "account": None,
    "sender": None,
    "since": None,
    "until": None,
    "again": False,
}
DRY_RUN_EXAMPLE: Final = {
    "id": None,
    "dry_run": True,
    "ran_by": "api:alice (token sha256:3f1a9c0e52b7)",
    "filter": FILTER_EXAMPLE,
    "matched": 2,
    "skipped": {"permanent_error": 1},
    "skipped_total": 1,
    "replayable": 1,
    "replayed": 0,
    "needs_confirmation": False,
    "by_error_code": [{"error_code": 30003, "count": 1, "meaning": "Unreachable destination handset"}],
    "sample": [
        {
            "to": "+1•••3003",
            "delivery_id": "0ln3v6m2k6s9cdq4rkq1oc2c",
            "batch_id": EXAMPLE_ID,
            "status": "undelivered",
            "error_code": 30003,
        }
    ],
    "batch_ids": [],
}
REPLAY_ID: Final = "0ln3v7a0q1h2mdd5skq7ocfe"
NEW_BATCH_ID: Final = "0ln3v7a0q9c1rbbq2kq8ocff"
STARTED_EXAMPLE: Final = DRY_RUN_EXAMPLE | {
    "id": REPLAY_ID,
    "dry_run": False,
    "replayed": 1,
    "batch_ids": [NEW_BATCH_ID],
}
RECORD_EXAMPLE: Final = {
    "id": REPLAY_ID,
    "created_at": 1795341600.0,
    "ran_by": "api:alice (token sha256:3f1a9c0e52b7)",
    "filter": FILTER_EXAMPLE,
    "matched": 2,
    "skipped": {"permanent_error": 1},
    "replayed": 1,
    "batch_ids": [NEW_BATCH_ID],
    "finished": True,
}
REQUEST_EXAMPLES: Final = {
    "dry_run": {
        "summary": "What a replay of one batch would send",
        "value": {"batch_ids": [EXAMPLE_ID], "dry_run": True},
    },
    "confirmed": {
        "summary": "Undelivered with 30003 in the last day, confirmed",
        "value": {
            "statuses": ["undelivered"],
            "error_codes": [30003],
            "since": "2026-12-06T09:00:00Z",
            "operator": "alice",
            "confirm": True,
        },
    },
}
CONFIRMATION_EXAMPLE: Final = {
    "type": "about:blank",
    "title": "Confirmation required",
    "status": 409,
    "detail": "this replay sends to 250 recipients, more than the 100 that need no confirmation: check a dry "
    'run, then confirm (--yes; over HTTP, "confirm": true)',
    "recipients": 250,
    "confirm_above": 100,
}
RACE_EXAMPLE: Final = {
    "type": "about:blank",
    "title": "Conflict",
    "status": 409,
    "detail": f"another replay sent some of batch {EXAMPLE_ID}'s deliveries meanwhile; replay {REPLAY_ID} "
    "stopped there: a dry run shows what is left",
}
