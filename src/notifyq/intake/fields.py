"""The fields of a batch request other than ``recipients``: each read, checked and turned into its value.

:class:`FieldReader` reads one request's fields one at a time, in the order their problems are listed;
each reader records its own problem and returns None (or an empty value) for a value it cannot use.
The channel rules (which fields each channel needs, allows and refuses) and the sender rules are here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

from notifyq.errors import Problem, ValidationFailed
from notifyq.intake.phones import to_e164
from notifyq.intake.problems import Problems, shown, shown_name
from notifyq.intake.request import (
    AP_SID_PATTERN,
    CALL_EVENTS,
    CALL_ONLY,
    FIELDS,
    MACHINE_DETECTION,
    MAX_ACCOUNT_NAME,
    MAX_ALPHA_ID,
    MAX_BODY_CHARS,
    MAX_BODY_SOURCE_CHARS,
    MAX_IDEMPOTENCY_KEY,
    MAX_MEDIA,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SEND_AT_CHARS,
    MAX_SENDER_CHARS,
    MAX_SID_CHARS,
    MAX_TIMEOUT_S,
    MAX_TWIML_CHARS,
    MAX_URL_CHARS,
    MAX_VALIDITY_S,
    MG_SID_PATTERN,
    SEND_AT_GRACE,
    SEND_AT_HORIZON,
    SHORT_CODE_PATTERN,
    Priority,
)
from notifyq.intake.text import json_problem, text_problem, url_problem
from notifyq.statuses import Channel
from notifyq.template import Template

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

_MG_SID: Final = re.compile(MG_SID_PATTERN)
_AP_SID: Final = re.compile(AP_SID_PATTERN)
_SHORT_CODE: Final = re.compile(SHORT_CODE_PATTERN)
_ALPHA_ID: Final = re.compile(rf"[A-Za-z0-9 ]{{1,{MAX_ALPHA_ID}}}")
_LETTER: Final = re.compile(r"[A-Za-z]")
_E = TypeVar("_E", bound=StrEnum)


class FieldReader:
    """The fields of one request, read one at a time; their problems go to ``problems``."""

    def __init__(self, payload: Mapping[str, Any], problems: Problems, now: datetime) -> None:
        self.payload = payload
        self.problems = problems
        self.now = now  # when the request arrived: send_at is checked against it

    # -- typed readers; each records its own problem and returns None when the value is unusable

    def _text(self, name: str, max_len: int) -> str | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems.add(name, "must be a string")
        elif not value:
            self.problems.add(name, "must not be empty")
        elif len(value) > max_len:
            self.problems.add(name, f"is {len(value)} characters; at most {max_len}")
        elif reason := text_problem(value):
            self.problems.add(name, reason)
        else:
            return value
        return None

    def _pattern(self, name: str, regex: re.Pattern[str], shape: str) -> str | None:
        value = self._text(name, MAX_SID_CHARS)
        if value is not None and not regex.fullmatch(value):
            self.problems.add(name, f"must be {shape}")
            return None
        return value

    def _choice(self, name: str, enum: type[_E]) -> _E | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if isinstance(value, str) and value in enum._value2member_map_:
            return enum(value)
        self.problems.add(name, "must be one of " + ", ".join(repr(m.value) for m in enum))
        return None

    def _integer(self, name: str, low: int, high: int) -> int | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(name, "must be an integer")
        elif not low <= value <= high:
            self.problems.add(name, f"must be from {low} to {high}")
        else:
            return value
        return None

    def _forbid(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            if self.payload.get(name) is not None:
                self.problems.add(name, why)

    # -- the fields

    def unknown(self) -> None:
        """A problem for each member that is not a field of the request."""
        self.problems.extend(
            Problem(shown_name(k), f"unknown field {shown(k)}") for k in self.payload if k not in FIELDS
        )

    def channel(self) -> Channel | None:
        """The channel: required, one of sms, mms and call."""
        if self.payload.get("channel") is None:
            self.problems.add("channel", "is required: 'sms', 'mms' or 'call'")
            return None
        return self._choice("channel", Channel)

    def account(self, accounts: Collection[str] | None) -> str | None:
        """The Twilio account by name; one of ``accounts`` when they are given."""
        name = self._text("account", MAX_ACCOUNT_NAME)
        if name is not None and accounts is not None and name not in accounts:
            self.problems.add("account", f"no Twilio account named {name!r} is configured")
            return None
        return name

    def sender(self) -> tuple[str | None, str]:
        """``(from, kind)``: the sender and whether it is ``e164``, ``short_code`` or ``alphanumeric``."""
        raw = self._text("from", MAX_SENDER_CHARS)
        if raw is None:
            return None, ""
        sender, kind = _classify_sender(raw)
        if sender is None:
            self.problems.add("from", kind)
            return None, ""
        return sender, kind

    def messaging_service_sid(self) -> str | None:
        """The messaging service: ``MG`` and 32 hex digits."""
        return self._pattern("messaging_service_sid", _MG_SID, "MG followed by 32 hex digits")

    def channel_rules(self, channel: Channel | None, sender: str | None, kind: str) -> None:
        """What the channel needs and refuses: its sender, and the fields of the other channels."""
        if channel is None:
            return
        sender_given = self.payload.get("from") is not None
        if channel is Channel.CALL:
            if not sender_given:
                self.problems.add("from", "calls need from: an E.164 number (a Twilio number or a verified caller ID)")
            elif sender is not None and kind != "e164":
                self.problems.add(
                    "from", "calls need from as an E.164 number, not a short code or alphanumeric sender ID"
                )
            self._forbid(("messaging_service_sid", "body", "media_url", "smart_encoded"), "is for messages, not calls")
            return
        self._forbid(CALL_ONLY, "is for calls, not messages")
        if not sender_given and self.payload.get("messaging_service_sid") is None:
            self.problems.add("from", "messages need from, messaging_service_sid, or both")
        if channel is Channel.MMS and kind == "alphanumeric":
            self.problems.add("from", "an alphanumeric sender ID cannot send MMS")

    def body(self, channel: Channel | None) -> Template | None:
        """The body as a template, for messages; at most MAX_BODY_CHARS before its variables are filled."""
        source = self._text("body", MAX_BODY_SOURCE_CHARS)
        if channel is Channel.SMS and self.payload.get("body") is None:
            self.problems.add("body", "sms needs a body")
        if source is None or channel is Channel.CALL:
            return None
        if source.isspace():
            self.problems.add("body", "is only whitespace")
            return None
        try:
            template = Template.compile(source)
        except ValidationFailed as e:
            self.problems.extend(e.problems)
            return None
        if template.fixed_length > MAX_BODY_CHARS:
            self.problems.add(
                "body", f"is {template.fixed_length} characters before variables; at most {MAX_BODY_CHARS}"
            )
            return None
        return template

    def smart_encoded(self) -> bool | None:
        """Twilio's SmartEncoded as asked: true, false, or None when absent."""
        value = self.payload.get("smart_encoded")
        if value is None or isinstance(value, bool):
            return value
        self.problems.add("smart_encoded", "must be true or false")
        return None

    def media(self, channel: Channel | None) -> tuple[str, ...]:
        """The media URLs: MMS needs 1 to MAX_MEDIA of them; SMS and calls take none."""
        value = self.payload.get("media_url")
        if value is None:
            if channel is Channel.MMS:
                self.problems.add("media_url", "mms needs at least one media_url (use channel sms for text only)")
            return ()
        if channel is Channel.SMS:
            self.problems.add("media_url", "media needs channel mms")
            return ()
        if not isinstance(value, list) or not value:
            self.problems.add("media_url", "must be a non-empty list of URLs")
            return ()
        if len(value) > MAX_MEDIA:
            self.problems.add("media_url", f"has {len(value)} URLs; at most {MAX_MEDIA}")
            return ()
        for i, url in enumerate(value):
            reason = url_problem(url)
            if reason:
                self.problems.add(f"media_url[{i}]", reason)
        return tuple(value)

    def call(self, channel: Channel | None) -> dict[str, Any]:
        """The call fields: exactly one of url, twiml and application_sid, and the call options."""
        if channel is not Channel.CALL:
            return {}
        given = [name for name in ("url", "twiml", "application_sid") if self.payload.get(name) is not None]
        if not given:
            self.problems.add("url", "calls need one of url, twiml or application_sid")
        elif len(given) > 1:
            self.problems.add(
                given[1], f"calls take exactly one of url, twiml, application_sid; got {', '.join(given)}"
            )
        url = self._text("url", MAX_URL_CHARS)
        reason = url_problem(url) if url is not None else ""
        if reason:
            self.problems.add("url", reason)
        return {
            "url": url,
            "twiml": self._text("twiml", MAX_TWIML_CHARS),
            "application_sid": self._pattern("application_sid", _AP_SID, "AP followed by 32 hex digits"),
            "status_callback_events": self.call_events(),
            "machine_detection": self.machine_detection(),
            "timeout": self._integer("timeout", 1, MAX_TIMEOUT_S),
        }

    def call_events(self) -> tuple[str, ...]:
        """The call progress events asked for, each once, in the order given."""
        value = self.payload.get("status_callback_event")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.add("status_callback_event", "must be a list")
            return ()
        bad = [e for e in value if e not in CALL_EVENTS]
        if bad:
            self.problems.add(
                "status_callback_event", f"unknown event(s) {shown(bad)}; expected some of {', '.join(CALL_EVENTS)}"
            )
        return tuple(dict.fromkeys(e for e in value if e in CALL_EVENTS))

    def machine_detection(self) -> str | None:
        """Answering machine detection: Enable or DetectMessageEnd."""
        value = self.payload.get("machine_detection")
        if value is None or value in MACHINE_DETECTION:
            return value
        self.problems.add("machine_detection", "must be 'Enable' or 'DetectMessageEnd'")
        return None

    def idempotency_key(self) -> str | None:
        """The idempotency key: 1 to MAX_IDEMPOTENCY_KEY characters."""
        return self._text("idempotency_key", MAX_IDEMPOTENCY_KEY)

    def priority(self) -> Priority:
        """The lane: bulk unless urgent is asked for."""
        return self._choice("priority", Priority) or Priority.BULK

    def validity_s(self, default: int) -> int:
        """Seconds a delivery may wait to be sent, 1 to MAX_VALIDITY_S; ``default`` when absent."""
        return self._integer("validity_s", 1, MAX_VALIDITY_S) or default

    def send_at(self) -> datetime | None:
        """When to send (UTC): from a minute ago to SEND_AT_HORIZON ahead, with a timezone."""
        raw = self._text("send_at", MAX_SEND_AT_CHARS)
        if raw is None:
            return None
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            self.problems.add("send_at", "must be an ISO 8601 date and time, e.g. 2026-11-22T10:00:00Z")
            return None
        if when.tzinfo is None:
            self.problems.add("send_at", "needs a timezone, e.g. Z or +01:00")
        elif when < self.now - SEND_AT_GRACE:
            self.problems.add("send_at", "is in the past")
        elif when > self.now + SEND_AT_HORIZON:
            self.problems.add("send_at", f"is more than {SEND_AT_HORIZON.days} days ahead")
        else:
            return when.astimezone(UTC)
        return None

    def metadata(self) -> dict[str, Any] | None:
        """The metadata: a JSON object of sendable text, at most MAX_METADATA_DEPTH deep and MAX_METADATA_BYTES long."""
        value = self.payload.get("metadata")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.add("metadata", "must be a JSON object")
            return None
        if reason := json_problem(value, MAX_METADATA_DEPTH):
            self.problems.add("metadata", reason)
            return None
        try:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError):  # an integer longer than Python writes
            self.problems.add("metadata", "must be plain JSON")
            return None
        if size > MAX_METADATA_BYTES:
            self.problems.add("metadata", f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
            return None
        return value


def _classify_sender(raw: str) -> tuple[str | None, str]:
    """``(sender, kind)`` with kind ``e164``, ``short_code`` or ``alphanumeric``; or ``(None, reason)``."""
    if raw.startswith("+"):
        number, reason = to_e164(raw)
        return (number, "e164") if number is not None else (None, reason)
    if raw.isascii() and raw.isdigit():
        if _SHORT_CODE.fullmatch(raw):
            return raw, "short_code"
        return None, "a numeric sender is a short code of 5-6 digits, or an E.164 number starting with +"
    reason = _alphanumeric_problem(raw)
    return (None, reason) if reason else (raw, "alphanumeric")


def _alphanumeric_problem(raw: str) -> str:
    if len(raw) > MAX_ALPHA_ID:
        return f"an alphanumeric sender ID has at most {MAX_ALPHA_ID} characters"
    if not _ALPHA_ID.fullmatch(raw):
        return "an alphanumeric sender ID may contain only A-Z, a-z, 0-9 and spaces"
    if not _LETTER.search(raw):
        return "an alphanumeric sender ID needs at least one letter"
    if raw != raw.strip():
        return "an alphanumeric sender ID must not start or end with a space"
    return ""
