"""The JSON Schema of a batch request, built from the limits and shapes intake itself checks.

Every bound here is a constant that :mod:`notifyq.intake.fields`, :mod:`notifyq.intake.text`,
:mod:`notifyq.intake.phones` or :mod:`notifyq.intake.validate` reads, so the published schema and the
validator cannot disagree on them; ``tests/api/test_openapi_intake.py`` sends a value just inside and
just outside each constraint to intake. Intake's hot path does not use this schema: it stays
hand-written.

What a schema cannot say (whether a number is valid by libphonenumber's metadata, whether every
recipient supplies the body's variables, the rendered body's length, ``send_at``'s window, the size of
``metadata`` in bytes, lone surrogates) is in the descriptions, and intake answers 422 for it.
``null`` counts as absent for every optional field, so each accepts ``null``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from notifyq.intake.phones import MAX_E164_DIGITS, MAX_NUMBER_CHARS, SEPARATOR_CHARS
from notifyq.intake.request import (
    AP_SID_PATTERN,
    CALL_EVENTS,
    CALL_ONLY,
    MACHINE_DETECTION,
    MAX_ACCOUNT_NAME,
    MAX_ALPHA_ID,
    MAX_BODY_CHARS,
    MAX_BODY_SOURCE_CHARS,
    MAX_IDEMPOTENCY_KEY,
    MAX_MEDIA,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SENDER_CHARS,
    MAX_TIMEOUT_S,
    MAX_TWIML_CHARS,
    MAX_URL_CHARS,
    MAX_VALIDITY_S,
    MAX_VARS,
    MG_SID_PATTERN,
    SEND_AT_HORIZON,
    SHORT_CODE_PATTERN,
    Priority,
)
from notifyq.intake.text import CONTROL_CHARS
from notifyq.statuses import Channel

if TYPE_CHECKING:
    from collections.abc import Collection

Schema = dict[str, Any]

_SEP: Final = "[" + SEPARATOR_CHARS.replace("\t", r"\t").replace("-", "") + "-]"
_DIGITS: Final = f"(?:[0-9]{_SEP}*){{1,{MAX_E164_DIGITS}}}"
TEXT_PATTERN: Final = "^[^" + CONTROL_CHARS[1:-1] + "]*$"
NUMBER_PATTERN: Final = rf"^{_SEP}*\+{_SEP}*{_DIGITS}$"
E164_FROM_PATTERN: Final = rf"^\+{_SEP}*{_DIGITS}$"
ALPHA_ID_PATTERN: Final = rf"^(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9 ]{{0,{MAX_ALPHA_ID - 2}}}[A-Za-z0-9])?$"
URL_PATTERN: Final = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+(?:[/?#]\S*)?$"
BODY_PATTERN: Final = r"^(?=[\s\S]*\S)" + TEXT_PATTERN[1:]  # not only whitespace
_NULL: Final[Schema] = {"type": "null"}
_TEXT_NOTE: Final = " Text throughout: no C0 control character but tab, LF, FF and CR, and no lone surrogate."


def _text(max_len: int, description: str, **extra: Any) -> Schema:
    return (
        {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": TEXT_PATTERN}
        | extra
        | {"description": description}
    )


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null: intake reads a ``null`` member as an absent one."""
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def _string(pattern: str, description: str, max_len: int | None = None) -> Schema:
    """A string of a pattern; ``max_len`` where the pattern alone does not bound its length."""
    out: Schema = {"type": "string", "pattern": pattern, "description": description}
    if max_len is not None:
        out["maxLength"] = max_len
    return out


def _url(description: str) -> Schema:
    return _string(URL_PATTERN, description + " An absolute http(s) URL with a host.", MAX_URL_CHARS)


NUMBER: Final[Schema] = {
    "type": "string",
    "maxLength": MAX_NUMBER_CHARS,
    "pattern": NUMBER_PATTERN,
    "description": "An E.164 number: + and the country code. Spaces, tabs, dashes, dots and parentheses are "
    "tolerated and removed; the number must be valid by libphonenumber's metadata (Twilio's test numbers "
    "+15005550000 to +15005550009 always are).",
    "examples": ["+14155550100", "+44 7911 123456"],
}
_E164_FROM: Final[Schema] = _string(E164_FROM_PATTERN, "An E.164 number.", MAX_SENDER_CHARS)
_SHORT_CODE: Final[Schema] = _string(f"^{SHORT_CODE_PATTERN}$", "A short code (messages only).")
_ALPHA_ID: Final[Schema] = _string(
    ALPHA_ID_PATTERN, "An alphanumeric sender ID: A-Z, a-z, 0-9 and spaces, with a letter (SMS only)."
)


def _vars() -> Schema:
    value = {
        "anyOf": [
            {"type": "string", "maxLength": MAX_BODY_CHARS, "pattern": TEXT_PATTERN},
            {"type": "integer", "description": f"At most {MAX_BODY_CHARS} characters as written."},
        ]
    }
    return {
        "type": ["object", "null"],
        "maxProperties": MAX_VARS,
        "propertyNames": {"pattern": TEXT_PATTERN},
        "additionalProperties": value,
        "description": "The template's variables for this recipient: each name the body uses, a string or an "
        "integer (send decimals as strings to keep their format).",
    }


def recipient_schema() -> Schema:
    """One recipient: a number, or ``{"to": number, "vars": {...}}``."""
    return {
        "anyOf": [
            NUMBER,
            {
                "type": "object",
                "required": ["to"],
                "additionalProperties": False,
                "properties": {"to": NUMBER, "vars": _vars()},
            },
        ]
    }


def _properties(max_recipients: int, accounts: Collection[str] | None) -> Schema:
    about = "A configured Twilio account by name; the default one when absent."
    account = _nullable(_text(MAX_ACCOUNT_NAME, about))
    if accounts is not None:  # the names bound it more closely than any length or pattern
        account = {"enum": [*sorted(accounts), None], "description": about}
    return {
        "channel": {"type": "string", "enum": [c.value for c in Channel], "description": "What to send."},
        "account": account,
        "from": {
            "anyOf": [_E164_FROM, _SHORT_CODE, _ALPHA_ID, _NULL],
            "description": "The sender. Messages need from, messaging_service_sid or both; calls an E.164 number.",
        },
        "messaging_service_sid": _nullable(_string(f"^{MG_SID_PATTERN}$", "A Messaging Service (messages only).")),
        "body": _nullable(
            _text(
                MAX_BODY_SOURCE_CHARS,
                "A template: {name} is the recipient's variable name, {{ and }} literal braces. Required for sms, "
                f"optional for mms. Rendered for each recipient it is 1 to {MAX_BODY_CHARS} characters, not only "
                "whitespace, and every variable it names is among the recipient's vars." + _TEXT_NOTE,
                pattern=BODY_PATTERN,
            )
        ),
        "smart_encoded": {
            "type": ["boolean", "null"],
            "description": "Twilio's SmartEncoded (messages only): look-alike characters such as curly quotes and "
            "long dashes are sent as their GSM-7 counterparts, and segments are counted on that body. When absent: "
            "on with a messaging_service_sid (a service's default), off otherwise.",
        },
        "media_url": {
            "type": ["array", "null"],
            "minItems": 1,
            "maxItems": MAX_MEDIA,
            "items": _url("A media file."),
            "description": "mms only, and required there.",
        },
        "url": _nullable(_url("The TwiML URL of a call.")),
        "twiml": _nullable(_text(MAX_TWIML_CHARS, "The TwiML of a call.")),
        "application_sid": _nullable(_string(f"^{AP_SID_PATTERN}$", "A TwiML App for a call.")),
        "status_callback_event": {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": list(CALL_EVENTS)},
            "description": "Call progress events to report (calls only); each kept once.",
        },
        "machine_detection": {"enum": [*MACHINE_DETECTION, None], "description": "Calls only."},
        "timeout": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_TIMEOUT_S,
            "description": "Seconds a call rings (calls only).",
        },
        "recipients": {
            "type": "array",
            "minItems": 1,
            "maxItems": max_recipients,
            "items": recipient_schema(),
            "description": "A number given twice is sent once: later copies are counted in duplicates_dropped.",
        },
        "idempotency_key": _nullable(
            _text(MAX_IDEMPOTENCY_KEY, "The same key with the same request answers the first batch; with another, 409.")
        ),
        "priority": {"enum": [*(p.value for p in Priority), None], "description": "The lane; bulk when absent."},
        "send_at": {
            "type": ["string", "null"],
            "description": "When to send: an ISO 8601 date and time with a timezone, as Python's "
            "datetime.fromisoformat reads it (RFC 3339 date-times are), from a minute ago to "
            f"{SEND_AT_HORIZON.days} days ahead.",
        },
        "validity_s": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_VALIDITY_S,
            "description": "Seconds a delivery may wait to be accepted by Twilio, from send_at or now.",
        },
        "metadata": {
            "type": ["object", "null"],
            "description": f"Echoed back: plain JSON of text, at most {MAX_METADATA_BYTES} bytes as compact "
            f"UTF-8 JSON and {MAX_METADATA_DEPTH} levels deep.",
        },
    }


def _given(name: str, json_type: str) -> Schema:
    """A request whose ``name`` is present and not null."""
    return {"required": [name], "properties": {name: {"type": json_type}}}


def _channel_is(*channels: Channel) -> Schema:
    return {"required": ["channel"], "properties": {"channel": {"enum": [c.value for c in channels]}}}


def _channel_rules() -> list[Schema]:
    """What each channel needs and refuses (``FieldReader.channel_rules``, ``body``, ``media``, ``call``)."""
    call = {
        "properties": {
            "from": _E164_FROM,
            **dict.fromkeys(("messaging_service_sid", "body", "media_url", "smart_encoded"), _NULL),
        },
        "required": ["from"],
        "oneOf": [_given(name, "string") for name in ("url", "twiml", "application_sid")],
    }
    message = {
        "properties": dict.fromkeys(CALL_ONLY, _NULL),
        "anyOf": [_given("from", "string"), _given("messaging_service_sid", "string")],
    }
    sms = {"properties": {"media_url": _NULL, "body": {"type": "string"}}, "required": ["body"]}
    mms = {
        "properties": {"from": {"anyOf": [_E164_FROM, _SHORT_CODE, _NULL]}, "media_url": {"type": "array"}},
        "required": ["media_url"],
    }
    return [
        {"if": _channel_is(Channel.CALL), "then": call},
        {"if": _channel_is(Channel.SMS, Channel.MMS), "then": message},
        {"if": _channel_is(Channel.SMS), "then": sms},
        {"if": _channel_is(Channel.MMS), "then": mms},
    ]


def batch_request_schema(*, max_recipients: int, accounts: Collection[str] | None = None) -> Schema:
    """The JSON Schema (2020-12) of a ``POST /v1/batches`` body, as ``BatchIntake`` checks it."""
    return {
        "type": "object",
        "required": ["channel", "recipients"],
        "additionalProperties": False,
        "properties": _properties(max_recipients, accounts),
        "allOf": _channel_rules(),
        "description": "A batch: one body and its recipients, accepted whole or refused whole (422, every "
        "problem listed)." + _TEXT_NOTE,
    }
