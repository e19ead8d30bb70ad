"""Check requests against the spec: form parameters, list filters, and what Twilio says only in prose.

Names, types, patterns, enums and ranges come from ``spec``. What the spec keeps only in prose
(Body <= 1600 characters, ten media, Twiml <= 4000, ValidityPeriod 1..36000, FriendlyName <= 64)
and which Twilio error code answers which mistake are tables here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from notifyq.simulator.replies import TwilioReply, bad_request
from notifyq.simulator.spec import Form, Operation, Param

_E164 = r"\+[1-9]\d{1,14}"
_FORMATS: Final[dict[str, re.Pattern[str]]] = {
    # E.164, a channel address (whatsapp:+1555...), or a short code
    "phone-number": re.compile(rf"^(?:{_E164}|[a-z]+:\S+|\d{{3,8}})$"),
    "endpoint": re.compile(rf"^(?:{_E164}|(?:client|sip|sim):\S+)$"),
}
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_BOOLEANS = frozenset({"true", "false"})


# Twilio's codes for a missing parameter or a missing one-of group, by operation
_REQUIRED_CODES: Final[dict[str, dict[str, tuple[int, str]]]] = {
    "CreateMessage": {
        "To": (21604, "A 'To' phone number is required."),
        "From": (21603, "A 'From' phone number is required."),
        "Body": (21602, "Message body is required."),
    },
    "CreateCall": {
        "To": (21201, "No 'To' number is specified"),
        "From": (21213, "No 'From' number is specified"),
        "Url": (21205, "Url parameter is required. Provide one of Url, Twiml or ApplicationSid."),
    },
}
# Twilio's codes for a malformed value; anything not listed answers 20001
_INVALID_CODES: Final[dict[str, dict[str, int]]] = {
    "CreateMessage": {"To": 21211, "From": 21212, "StatusCallback": 21609, "MediaUrl": 21620, "ApplicationSid": 21218},
    "CreateCall": {"To": 21217, "From": 21212, "Url": 21205, "StatusCallback": 21609, "ApplicationSid": 21218},
}
CALL_EVENTS: Final = frozenset({"initiated", "ringing", "answered", "completed"})


def _split_ok(value: str) -> bool:
    parts = urlsplit(value)
    host = parts.hostname or ""
    return parts.scheme in {"http", "https"} and bool(host) and "_" not in host


# a URL's scheme and authority, when the rest (a path, query or fragment) is printable ASCII without
# spaces: nothing urlsplit strips or removes, so its scheme and host are the head's own
_URI_HEAD: Final = re.compile(r"(https?://[^/?#\\\s]*)[/?#][!-~]*\Z")


@lru_cache(maxsize=256)
def _valid_head(head: str) -> bool:
    return _split_ok(head)


def _valid_uri(value: str) -> bool:
    """An http(s) URL with a host, and no underscore in the host (Twilio refuses one)."""
    # a sender's callback URLs share their head: it is checked once, not split again for every request
    head = _URI_HEAD.match(value)
    return _valid_head(head.group(1)) if head else _split_ok(value)


def _valid_date_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _type_ok(kind: str, value: str) -> bool:
    if kind == "integer":
        return bool(_INTEGER.match(value))
    if kind == "boolean":
        return value.lower() in _BOOLEANS
    if kind == "number":
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return True


def _constraint_problem(param: Param, kind: str, value: str) -> str | None:
    """Why ``value`` breaks the type, enum, length or pattern of ``param``, or None.

    The reason is worded only for a value that breaks one: every parameter of every request comes here.
    """
    if not _type_ok(kind, value):
        return f"must be {'an' if kind == 'integer' else 'a'} {kind}"
    if param.enum is not None and value not in param.enum:
        return f"must be one of {', '.join(sorted(param.enum))}"
    if param.min_length is not None and len(value) < param.min_length:
        return f"needs {param.min_length} characters"
    if param.max_length is not None and len(value) > param.max_length:
        return f"allows {param.max_length} characters"
    if param.pattern is not None and not param.pattern.search(value):
        return f"must match {param.pattern.pattern}"
    return None


def _format_problem(param: Param, value: str) -> str | None:
    """Why ``value`` is not in the ``format`` of ``param``, or None."""
    fmt = param.fmt
    if fmt == "uri":
        return None if _valid_uri(value) else "is not a valid URL"
    if fmt == "date-time":
        return None if _valid_date_time(value) else "is not an ISO 8601 date-time"
    if fmt not in _FORMATS or _FORMATS[fmt].match(value):
        return None
    if param.name == "From" and fmt == "phone-number" and _ALPHANUMERIC_SENDER.match(value):
        return None
    return "is not a valid phone number" if fmt == "phone-number" else "is not a valid endpoint"


def query_problem(param: Param, value: str) -> str | None:
    """Why a list filter's ``value`` breaks the type, enum, pattern or range of ``param``, or None."""
    why = _constraint_problem(param, param.type, value)
    if why is not None or param.type != "integer":
        return why
    try:
        number = int(value)
    except ValueError:  # more digits than int() reads
        return "is out of range"
    if param.minimum is not None and number < param.minimum:
        return f"must be at least {param.minimum}"
    if param.maximum is not None and number > param.maximum:
        return f"must be at most {param.maximum}"
    return None


def _invalid(op: Operation, name: str, value: str, why: str) -> TwilioReply:
    code = _INVALID_CODES.get(op.operation_id, {}).get(name, 20001)
    return bad_request(code, f"Invalid '{name}' parameter {value!r}: {why}")


def _collect(op: Operation, items: list[tuple[str, str]]) -> Form:
    """Group the form items by name: arrays as lists; unknown or repeated names refused; empties dropped."""
    form: Form = {}
    for name, value in items:
        param = op.params.get(name)
        if param is None:
            raise bad_request(20001, f"Unknown parameter '{name}' for {op.operation_id}")
        if param.type == "array":
            values = form.setdefault(name, [])
            if isinstance(values, list) and value != "":
                values.append(value)
        elif name in form:
            raise bad_request(20001, f"Parameter '{name}' given more than once")
        elif value != "":
            form[name] = value
    return {k: v for k, v in form.items() if v}


def validate(op: Operation, items: list[tuple[str, str]]) -> Form:
    """Check a form against ``op``; the parsed form, or raise a Twilio-shaped 400.

    Array parameters are repeated keys and come back as lists. Empty values count as absent,
    as Twilio treats them in a create (an update reads them from the items: there they clear).
    """
    form = _collect(op, items)
    for name in op.required:
        if name not in form:
            raise _required(op, name)
    for group in op.conditional:
        if not any(name in form for name in group):
            raise _required(op, group[0], group)
    for name, given in form.items():
        param = op.params[name]
        kind = param.item_type if param.type == "array" else param.type
        for value in [given] if isinstance(given, str) else given:
            why = _constraint_problem(param, kind, value) or _format_problem(param, value)
            if why is not None:
                raise _invalid(op, name, value, why)
    limits = _LIMITS.get(op.operation_id, _check_name)
    limits(op, form)
    return form


def _required(op: Operation, name: str, group: tuple[str, ...] = ()) -> TwilioReply:
    codes = _REQUIRED_CODES.get(op.operation_id, {})
    code, message = codes.get(name, (20001, f"Missing required parameter {name}"))
    if group and name not in codes:
        message = f"One of {', '.join(group)} is required"
    return bad_request(code, message)


def _check_name(_op: Operation, form: Form) -> None:
    """FriendlyName: "It can be up to 64 characters long" (Applications, Connect Apps, Accounts)."""
    name = form.get("FriendlyName")
    if isinstance(name, str) and len(name) > 64:
        raise bad_request(20001, "Invalid 'FriendlyName' parameter: it can be up to 64 characters long")


def _check_send_limits(op: Operation, form: Form) -> None:
    """The limits of a message or call create that Twilio states only in its descriptions."""
    body = form.get("Body")
    if isinstance(body, str) and len(body) > 1600:
        raise bad_request(21617, "The concatenated message body exceeds the 1600 character limit.")
    media = form.get("MediaUrl", [])
    if len(media) > 10:
        raise bad_request(21623, "Number of media files exceeds allowed limit of 10.")
    if op.operation_id == "CreateMessage":
        for url in media:
            if not _valid_uri(url):
                raise bad_request(21620, f"Invalid media URL(s): {url!r}")
    validity = form.get("ValidityPeriod")
    if isinstance(validity, str) and not 1 <= int(validity) <= 36000:
        raise bad_request(21624, "Invalid validity period value: accepted values are 1 to 36000 seconds.")
    twiml = form.get("Twiml")
    if isinstance(twiml, str) and len(twiml) > 4000:
        raise bad_request(20001, "Twiml exceeds the 4000 character limit.")
    for event in form.get("StatusCallbackEvent", []):
        if event not in CALL_EVENTS:
            raise bad_request(20001, f"Invalid StatusCallbackEvent {event!r}: one of {', '.join(sorted(CALL_EVENTS))}")


_LIMITS: Final[dict[str, Callable[[Operation, Form], None]]] = {
    "CreateMessage": _check_send_limits,
    "CreateCall": _check_send_limits,
}
