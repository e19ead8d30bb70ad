"""What Twilio says may put in the store: each value checked against Twilio's shapes, each bounded.

A valid signature says who sent a request, and an answer from api.twilio.com whom it came from, not
that its values fit the store. The columns have sizes and integer ranges (an error code of 20 digits,
a SID of 40 characters or a NUL character is refused by one database or the other), and a stored form
of megabytes is read again with every look at the delivery's history. So the receiver (a signed
callback's form: ``status_report``) and the reconciler (a fetched record's JSON: ``fetched_report``)
keep what is valid and bound what they keep:

* a SID that is not two letters and 32 hex digits, or a status that is not a status name, makes the
  report one to keep (as an event, with the reason) but not to apply;
* an error code or sequence number that is not a number in Twilio's range is taken as absent; its
  text stays, bounded, in the stored form;
* every name and value of the stored form is bounded, and so is the whole form.

Pure functions, tested exhaustively; the callers decide what to answer and what to count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from notifyq.store import StatusReport

SID: Final = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# Twilio's status names: lower case, words joined by "-" or "_"; at most the store's 24 characters
STATUS: Final = re.compile(r"[a-z][a-z_-]{0,23}")
ERROR_CODES: Final = range(1, 1_000_000)  # Twilio's codes have five digits; none has more than six
SEQUENCES: Final = range(2**31)  # the store keeps a call's sequence number as a 32-bit integer
MAX_DIGITS: Final = 10

MAX_NAME_CHARS: Final = 64
MAX_VALUE_CHARS: Final = 1024
MAX_FORM_CHARS: Final = 16 * 1024  # names and values together; Twilio's forms are well under 2,000
DROPPED: Final = "_notifyq_dropped_fields"  # how many fields past MAX_FORM_CHARS were left out
SID_CHARS: Final = 34
STATUS_CHARS: Final = 24
# what a fetched record's report keeps of it, as it came
FETCHED_FIELDS: Final = ("sid", "status", "error_code", "error_message", "date_updated")
_JSON_SAFE_INTEGERS: Final = range(-(2**53) + 1, 2**53)


def bounded(text: str, limit: int) -> str:
    """``text`` with NUL made U+FFFD (PostgreSQL's text cannot hold it), cut to at most ``limit`` characters.

    A cut text ends with a note of how many characters were cut.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    note = f"...[{len(text) - limit} more]"
    if limit <= len(note):
        return text[:limit]
    return text[: limit - len(note)] + note


def bounded_form(form: Mapping[str, str]) -> dict[str, str]:
    """The form as it may be stored: each name and value bounded, and the whole too."""
    names, values = "".join(form), "".join(form.values())
    if (  # the usual form, checked in a few passes in C: a copy of it is the answer
        len(names) + len(values) <= MAX_FORM_CHARS
        and max(map(len, form.values()), default=0) <= MAX_VALUE_CHARS
        and max(map(len, form), default=0) <= MAX_NAME_CHARS
        and "\x00" not in values
        and "\x00" not in names
    ):
        return dict(form)
    out: dict[str, str] = {}
    total = 0
    for i, (name, value) in enumerate(form.items()):
        key, text = bounded(name, MAX_NAME_CHARS), bounded(value, MAX_VALUE_CHARS)
        total += len(key) + len(text)
        if total > MAX_FORM_CHARS:
            out[DROPPED] = str(len(form) - i)
            break
        out[key] = text
    return out


def whole_number(value: str | None, valid: range) -> tuple[int | None, bool]:
    """``value`` as a number in ``valid``, and whether it was present but not one (then the number is None).

    Only ASCII digits count: ``int()`` would also take signs, spaces, underscores and other scripts' digits.
    """
    if value is None or value == "":
        return None, False
    if len(value) > MAX_DIGITS or not (value.isascii() and value.isdigit()):
        return None, True
    number = int(value)
    return (number, False) if number in valid else (None, True)


@dataclass(frozen=True, slots=True)
class ReadReport:
    """A status report read from a callback form, and the names of the fields whose values were not valid."""

    report: StatusReport
    invalid_fields: list[str] = field(default_factory=list)


def status_report(delivery_id: str, form: Mapping[str, str], *, kind: str, at: float) -> ReadReport | None:
    """The status report in a message or call callback; None when the form carries no status or no SID."""
    if kind == "call":
        status_name, sid_name = "CallStatus", "CallSid"
        status, sid = form.get(status_name), form.get(sid_name)
    else:
        status_name = "MessageStatus" if form.get("MessageStatus") else "SmsStatus"
        sid_name = "MessageSid" if form.get("MessageSid") else "SmsSid"
        status, sid = form.get(status_name), form.get(sid_name)
    if not status or not sid:
        return None
    checked = ((sid_name, sid, SID), (status_name, status, STATUS))
    unusable = [name for name, value, shape in checked if not shape.fullmatch(value)]
    error_code, bad_code = whole_number(form.get("ErrorCode"), ERROR_CODES)
    sequence, bad_sequence = whole_number(form.get("SequenceNumber"), SEQUENCES) if kind == "call" else (None, False)
    message = form.get("ErrorMessage")
    report = StatusReport(
        delivery_id=delivery_id,
        sid=bounded(sid, SID_CHARS),
        status=bounded(status, STATUS_CHARS),
        source="callback",
        at=at,
        sequence=sequence,
        error_code=error_code,
        error_message=None if message is None else bounded(message, MAX_VALUE_CHARS),
        raw=bounded_form(form),
        invalid=f"not a valid {' or '.join(unusable)}" if unusable else None,
    )
    if bad_code:
        unusable.append("ErrorCode")
    if bad_sequence:
        unusable.append("SequenceNumber")
    return ReadReport(report, unusable)


def json_whole_number(value: object, valid: range) -> tuple[int | None, bool]:
    """``whole_number`` for a JSON value: an integer in ``valid``, or a text of one (a bool is not a number)."""
    if value is None or value == "":
        return None, False
    if isinstance(value, bool):
        return None, True
    if isinstance(value, int):
        return (value, False) if value in valid else (None, True)
    if isinstance(value, str):
        return whole_number(value, valid)
    return None, True


def bounded_json(value: object) -> object:
    """A JSON value as it may be stored: null, a boolean or a safe integer as it is; anything else as bounded text.

    A float may be NaN (PostgreSQL's json refuses it), an integer may have thousands of digits, a list or
    an object may nest: they are kept as their JSON text, bounded.
    """
    if value is None or isinstance(value, bool) or (isinstance(value, int) and value in _JSON_SAFE_INTEGERS):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return bounded(text, MAX_VALUE_CHARS)


def fetched_report(delivery_id: str, sid: str, found: Mapping[str, Any], *, at: float) -> ReadReport:
    """The status report in a record fetched from Twilio by its SID (the reconciler's ``GET .../{sid}.json``).

    Checked as a callback's form is: a record for another SID than ``sid``, or a status that is not a
    status name, makes the report one to keep (as an event) but not to apply; an error code that is not
    a whole number in Twilio's range is taken as absent, and an error message that is not text too;
    what is kept of the record (``FETCHED_FIELDS``) is bounded.
    """
    status, answered = found.get("status"), found.get("sid")
    unusable = []
    if not (isinstance(answered, str) and answered == sid and SID.fullmatch(sid)):
        unusable.append("sid")
    if not (isinstance(status, str) and STATUS.fullmatch(status)):
        unusable.append("status")
    error_code, bad_code = json_whole_number(found.get("error_code"), ERROR_CODES)
    message = found.get("error_message")
    report = StatusReport(
        delivery_id=delivery_id,
        sid=bounded(sid, SID_CHARS),
        status=bounded(status if isinstance(status, str) else json.dumps(status, default=str), STATUS_CHARS),
        source="reconcile",
        at=at,
        error_code=error_code,
        error_message=bounded(message, MAX_VALUE_CHARS) if isinstance(message, str) else None,
        raw={name: bounded_json(found.get(name)) for name in FETCHED_FIELDS if name in found},
        invalid=f"not a valid {' or '.join(unusable)}" if unusable else None,
    )
    if bad_code:
        unusable.append("error_code")
    if message is not None and not isinstance(message, str):
        unusable.append("error_message")
    return ReadReport(report, unusable)
