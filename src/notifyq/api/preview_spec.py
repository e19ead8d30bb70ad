"""The OpenAPI parts of a preview (``POST /v1/batches?dry_run=true``): its query parameter, schema and example."""

from __future__ import annotations

from typing import Any, Final

from notifyq.api.spec import Schema
from notifyq.preview import SHOWN

_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
_MONEY: Final[Schema] = {"type": ["string", "null"], "pattern": r"^[0-9]+(\.[0-9]+)?$"}
_ENCODING: Final[Schema] = {"enum": ["GSM-7", "UCS-2", None]}
_SEGMENTS: Final[Schema] = {"type": ["integer", "null"], "minimum": 1, "description": "Null for calls."}

DRY_RUN_PARAMETER: Final[Schema] = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "description": "true: answer 200 with the batch's segments, encoding and price (BatchPreview), checked as a "
    "submit is (the same 4xx); nothing is stored, queued or sent, and no quota is taken.",
    "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
}


def preview_schemas() -> dict[str, Schema]:
    """``BatchPreview``: what ``notifyq.preview.preview_batch`` answers, with the account it would send from."""
    recipient = {
        "type": "object",
        "required": ["index", "to", "country", "segments", "encoding", "price"],
        "properties": {
            "index": {"type": "integer", "minimum": 0, "description": "Its place in the request's recipients."},
            "to": {"type": "string", "description": "The number in E.164."},
            "country": {"type": "string", "description": "ISO 3166 code by libphonenumber; ZZ for none."},
            "segments": _SEGMENTS,
            "encoding": _ENCODING,
            "price": _MONEY | {"description": "Null when its country has no price (nor a default one)."},
        },
    }
    country = {
        "type": "object",
        "required": ["recipients", "segments", "price"],
        "properties": {"recipients": _COUNT, "segments": {"type": ["integer", "null"]}, "price": _MONEY},
    }
    return {
        "BatchPreview": {
            "type": "object",
            "required": [
                "dry_run",
                "account",
                "channel",
                "smart_encoded",
                "total",
                "duplicates_dropped",
                "segments",
                "encodings",
                "price",
                "currency",
                "unpriced",
                "by_country",
                "recipients",
                "recipients_not_shown",
            ],
            "description": "What the batch would send and cost. SMS is priced per segment, MMS per message, calls "
            "per call, from the settings' pricing tables by the recipient's country.",
            "properties": {
                "dry_run": {"const": True},
                "account": {"type": "string", "description": "The account it would send from."},
                "channel": {"type": "string", "enum": ["sms", "mms", "call"]},
                "smart_encoded": {"type": "boolean", "description": "Segments are counted on the smart-encoded body."},
                "total": _COUNT,
                "duplicates_dropped": _COUNT,
                "segments": {"type": ["integer", "null"], "minimum": 0, "description": "In all; null for calls."},
                "encodings": {
                    "type": "object",
                    "additionalProperties": _COUNT,
                    "description": "Recipients by the encoding of their body (GSM-7, UCS-2).",
                },
                "price": _MONEY | {"description": "The sum over the recipients that have a price."},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "unpriced": {**_COUNT, "description": "Recipients in countries without a price."},
                "by_country": {"type": "object", "additionalProperties": country},
                "recipients": {"type": "array", "maxItems": SHOWN, "items": recipient},
                "recipients_not_shown": {**_COUNT, "description": f"Recipients past the first {SHOWN}."},
            },
        }
    }


PREVIEW_EXAMPLE: Final[dict[str, Any]] = {
    "dry_run": True,
    "account": "main",
    "channel": "sms",
    "smart_encoded": True,
    "total": 2,
    "duplicates_dropped": 0,
    "segments": 2,
    "encodings": {"GSM-7": 1, "UCS-2": 1},
    "price": "0.0607",
    "currency": "USD",
    "unpriced": 0,
    "by_country": {
        "GB": {"recipients": 1, "segments": 1, "price": "0.0524"},
        "US": {"recipients": 1, "segments": 1, "price": "0.0083"},
    },
    "recipients": [
        {"index": 0, "to": "+14155550101", "country": "US", "segments": 1, "encoding": "GSM-7", "price": "0.0083"},
        {"index": 1, "to": "+447400123456", "country": "GB", "segments": 1, "encoding": "UCS-2", "price": "0.0524"},
    ],
    "recipients_not_shown": 0,
}
