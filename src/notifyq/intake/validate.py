"""A batch request (the ``POST /v1/batches`` body): parse it, validate all of it, or refuse all of it.

The request, as JSON::

    {
      "channel": "sms" | "mms" | "call",                  // required
      "account": "main",                                  // optional: a configured Twilio account name
      "from": "+15005550006" | "MyBrand" | "12345",       // E.164 number, alphanumeric sender ID, or short code
      "messaging_service_sid": "MG…",                     // messages: instead of, or as well as, "from"
      "body": "Hi {name}, your code is {code}",           // sms: required; mms: optional; calls: not allowed
      "media_url": ["https://…"],                         // mms only, and required there: 1 to 10 URLs
      "url": "https://…" | "twiml": "<Response>…" | "application_sid": "AP…",   // calls: exactly one
      "status_callback_event": ["initiated", "ringing", "answered", "completed"],  // calls only
      "machine_detection": "Enable" | "DetectMessageEnd",  // calls only
      "timeout": 60,                                      // calls only: ring time, 1..600 s
      "recipients": ["+14155550101", {"to": "+44 7911 123456", "vars": {"name": "Ann", "code": "123"}}],
      "idempotency_key": "…",                             // optional, 1..200 characters
      "priority": "bulk" | "urgent",                      // default "bulk"
      "send_at": "2026-11-22T10:00:00Z",                  // optional, ISO 8601 with a timezone
      "validity_s": 3600,                                 // optional, 1..36000
      "metadata": {"campaign": "nov"}                     // optional JSON object, at most 4 KiB, echoed back
    }

Rules (each broken one is reported with where and why; the batch is accepted whole or refused whole):

- Unknown top-level fields are refused; ``null`` counts as absent.
- Numbers are E.164: a leading ``+`` and the country code. Spaces, dashes, dots and parentheses are
  tolerated (``+44 (0)20 7946 0018`` becomes ``+442079460018``); the number must be valid by
  libphonenumber's metadata. Twilio's test numbers ``+15005550000``..``+15005550009`` are always accepted.
- A recipient is a number string or ``{"to": number, "vars": {name: string or integer}}`` (at most 50
  variables, each at most 1,600 characters, an integer's digits included). A number given twice is
  sent once: later copies are dropped and counted in ``duplicates_dropped``. At least one recipient,
  at most ``max_recipients``.
- ``from``: an E.164 number; a short code of 5-6 digits (messages only); or an alphanumeric sender ID
  of at most 11 characters from A-Z, a-z, 0-9 and space with at least one letter (SMS only: not MMS,
  not calls). Messages need ``from`` or ``messaging_service_sid`` (``MG`` + 32 hex); calls need an E.164
  ``from``.
- ``body`` is a template (see :mod:`notifyq.template`); every recipient must supply every variable it
  uses, and the rendered text must be 1 to 1,600 characters for each recipient, not all whitespace.
- Media URLs and call ``url`` are absolute http(s) URLs of at most 4,096 characters; ``twiml`` at most
  4,000 characters; ``application_sid`` is ``AP`` + 32 hex.
- Every string (field, variable name or value, metadata key or value) must be text that can be sent:
  no lone surrogate (JSON can write one, ``"\ud800"``, but it has no UTF-8 form) and no C0 control
  character other than tab, line feed, form feed and carriage return. A body that is (or renders to)
  only whitespace is refused, as Twilio refuses it. ``metadata`` is nested at most 32 levels deep.
- ``send_at`` may be at most a minute in the past and at most 366 days ahead. A delivery not accepted
  by Twilio by ``(send_at or received time) + validity_s`` expires.

At most 100 recipient problems are listed, then one problem saying how many more there were.

Speed: 100,000 distinct recipients validate in 0.3-0.7 s on one core (``phonenumbers.parse`` alone
would take 3.7 s). A regular expression checks the E.164 shape, then libphonenumber's own per-country
patterns are applied directly, compiled once per country code and length into one regex; the result
equals ``phonenumbers.is_valid_number`` (the tests compare them). ``phonenumbers.parse`` runs only for
numbers that fail that path, and only while their reasons are still being listed.
"""

from __future__ import annotations

import functools
import json
import json.scanner
import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, ValidationResult

from notifyq.errors import Problem, ValidationFailed
from notifyq.segments import segment_count
from notifyq.statuses import Channel
from notifyq.template import Template

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

MAX_BODY_CHARS: Final = 1600
MAX_MEDIA: Final = 10
MAX_TWIML_CHARS: Final = 4000
MAX_URL_CHARS: Final = 4096
MAX_VALIDITY_S: Final = 36000  # Twilio's ValidityPeriod maximum, and its default
MAX_TIMEOUT_S: Final = 600
MAX_IDEMPOTENCY_KEY: Final = 200
MAX_METADATA_BYTES: Final = 4096
MAX_METADATA_DEPTH: Final = 32
MAX_VARS: Final = 50
MAX_RECIPIENT_PROBLEMS: Final = 100
SEND_AT_GRACE: Final = timedelta(minutes=1)
SEND_AT_HORIZON: Final = timedelta(days=366)
CALL_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION: Final = ("Enable", "DetectMessageEnd")

FIELDS: Final = frozenset({
    "channel", "account", "from", "messaging_service_sid", "body", "media_url", "url", "twiml",
    "application_sid", "status_callback_event", "machine_detection", "timeout", "recipients",
    "idempotency_key", "priority", "send_at", "validity_s", "metadata",
})  # fmt: skip
CALL_ONLY: Final = ("url", "twiml", "application_sid", "status_callback_event", "machine_detection", "timeout")
_MG_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
_AP_SID: Final = re.compile(r"AP[0-9a-fA-F]{32}")
_SHORT_CODE: Final = re.compile(r"[0-9]{5,6}")
_ALPHA_ID: Final = re.compile(r"[A-Za-z0-9 ]{1,11}")
_LETTER: Final = re.compile(r"[A-Za-z]")
_ACCOUNT_NAME_MAX: Final = 64
_GOOD_NAMES_KEPT: Final = 1000  # bounded: a request may use a million different names
# an integer variable with more bits than this has more than MAX_BODY_CHARS digits (log2(10) < 4)
_VAR_INT_BITS: Final = 4 * MAX_BODY_CHARS
_E = TypeVar("_E", bound=StrEnum)


class Priority(StrEnum):
    """Which lane a batch's deliveries wait in."""

    BULK = "bulk"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One accepted recipient: a normalised E.164 number, its template variables, its request position.

    ``vars`` is the request's own dict when every value was already a string (it is not copied).
    ``segments`` is what the rendered body costs (1 for calls and bodies without text), counted once,
    during validation, so that nothing renders the body again before it is sent.
    """

    to: str
    vars: dict[str, str] | None
    index: int
    segments: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSpec:
    """A validated batch: everything needed to create its deliveries and their Twilio requests."""

    channel: Channel
    account: str | None = None
    sender: str | None = None
    messaging_service_sid: str | None = None
    body_template: str | None = None
    media_urls: tuple[str, ...] = ()
    url: str | None = None
    twiml: str | None = None
    application_sid: str | None = None
    status_callback_events: tuple[str, ...] = ()
    machine_detection: str | None = None
    timeout: int | None = None
    recipients: list[Recipient] = field(default_factory=list)
    idempotency_key: str | None = None
    priority: Priority = Priority.BULK
    send_at: datetime | None = None
    validity_s: int = MAX_VALIDITY_S
    metadata: dict[str, Any] | None = None
    duplicates_dropped: int = 0
    _template: Template | None = field(init=False, repr=False, compare=False)
    _head: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _tail: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        template = None if self.body_template is None else Template.compile(self.body_template)
        object.__setattr__(self, "_template", template)
        # the form items every recipient shares, built once per batch rather than once per send
        head: list[tuple[str, str]] = []
        tail: list[tuple[str, str]] = []
        if self.sender is not None:
            head.append(("From", self.sender))
        if self.channel.is_message:
            if self.messaging_service_sid is not None:
                head.append(("MessagingServiceSid", self.messaging_service_sid))
            tail.extend(("MediaUrl", u) for u in self.media_urls)
            if self.validity_s < MAX_VALIDITY_S:
                tail.append(("ValidityPeriod", str(self.validity_s)))
        else:
            for name, value in (("Url", self.url), ("Twiml", self.twiml), ("ApplicationSid", self.application_sid)):
                if value is not None:
                    head.append((name, value))
            tail.extend(("StatusCallbackEvent", e) for e in self.status_callback_events)
            if self.machine_detection is not None:
                tail.append(("MachineDetection", self.machine_detection))
            if self.timeout is not None:
                tail.append(("Timeout", str(self.timeout)))
        object.__setattr__(self, "_head", tuple(head))
        object.__setattr__(self, "_tail", tuple(tail))

    def render_body(self, variables: Mapping[str, str] | None) -> str:
        """The message text for one recipient's variables ("" when the batch has no body)."""
        return "" if self._template is None else self._template.render(variables)

    def twilio_params(self, recipient: Recipient) -> list[tuple[str, str]]:
        """Form items for Messages.json or Calls.json for ``recipient``; the worker adds StatusCallback."""
        params = [("To", recipient.to), *self._head]
        if self._template is not None:
            params.append(("Body", self._template.render(recipient.vars)))
        params.extend(self._tail)
        return params

    def shared_params(self) -> list[tuple[str, str]]:
        """The form items every recipient's request has (``twilio_params`` without To and Body)."""
        return [*self._head, *self._tail]

    def deadline(self, received_at: datetime) -> datetime:
        """When an unsent delivery expires: ``(send_at or received_at) + validity_s``."""
        return (self.send_at or received_at) + timedelta(seconds=self.validity_s)


def parse_batch(
    payload: Mapping[str, Any],
    *,
    default_validity_s: int = MAX_VALIDITY_S,
    max_recipients: int = 1_000_000,
    accounts: Collection[str] | None = None,
    now: datetime | None = None,
) -> BatchSpec:
    """Validate a batch request; raise ValidationFailed listing every problem found.

    ``accounts``, when given, are the configured Twilio account names ``account`` must be one of.
    ``now`` (aware) is when the request arrived; it defaults to the current time.
    """
    intake = BatchIntake(
        payload, default_validity_s=default_validity_s, max_recipients=max_recipients, accounts=accounts, now=now
    )
    recipients = list(intake.recipients())
    intake.finish()
    if intake.spec is None:  # pragma: no cover - finish() raised
        raise AssertionError
    return replace(intake.spec, recipients=recipients, duplicates_dropped=intake.duplicates_dropped)


class BatchIntake:
    """A batch validated as it is read: every field but ``recipients`` at once, the recipients one by one.

    ``spec`` is the batch without its recipients (None when those fields have problems). ``recipients()``
    yields each accepted recipient, with its segment count, for as long as no problem has been found;
    after the first problem it goes on reading only to list the rest. ``finish()`` raises
    ValidationFailed with every problem, in the order ``parse_batch`` has always listed them. So a
    million recipients can be validated and written in chunks, and still be refused whole: write them
    in a transaction and call ``finish()`` before committing it.

    ``recipients`` may be a list or any iterable without a length (e.g. :class:`RecipientArray`, read
    from the request text one element at a time); then the limit is checked while reading.
    """

    def __init__(
        self,
        payload: Mapping[str, Any],
        *,
        default_validity_s: int = MAX_VALIDITY_S,
        max_recipients: int = 1_000_000,
        accounts: Collection[str] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.total = 0
        self.duplicates_dropped = 0
        self.spec: BatchSpec | None = None
        self._max = max_recipients
        self._items: Iterable[Any] = []
        self._template: Template | None = None
        self._segments: int | None = None
        self._parser: _Parser
        self._at: int
        if not isinstance(payload, Mapping):
            self._parser = _Parser({}, now or datetime.now(UTC))
            self._parser.add("", "the request body must be a JSON object")
            self._at = 1
            return
        parser = self._parser = _Parser(payload, now or datetime.now(UTC))
        p = payload
        parser.problems.extend(Problem(_shown_name(k), f"unknown field {shown(k)}") for k in p if k not in FIELDS)
        channel = parser.channel()
        account = parser.account(accounts)
        sender, sender_kind = parser.sender()
        mg_sid = parser.pattern("messaging_service_sid", _MG_SID, "MG followed by 32 hex digits")
        parser.channel_rules(channel, sender, sender_kind)
        template = parser.body(channel)
        media = parser.media(channel)
        call = parser.call(channel)
        self._items = parser.recipient_items(max_recipients)
        self._at = len(parser.problems)  # where problems with the list as a whole are listed
        spec_args: dict[str, Any] = {
            "account": account,
            "sender": sender,
            "messaging_service_sid": mg_sid,
            "body_template": None if template is None else template.source,
            "media_urls": media,
            **call,
            "idempotency_key": parser.text("idempotency_key", MAX_IDEMPOTENCY_KEY),
            "priority": parser.choice("priority", Priority) or Priority.BULK,
            "send_at": parser.send_at(),
            "validity_s": parser.integer("validity_s", 1, MAX_VALIDITY_S) or default_validity_s,
            "metadata": parser.metadata(),
        }
        if channel is not None and channel.is_message and template is not None:
            self._template = template
            if not template.has_placeholders:
                self._segments = segment_count(template.render(None))
        if not parser.problems and channel is not None:
            self.spec = BatchSpec(channel=channel, **spec_args)

    @property
    def failed(self) -> bool:
        """Whether a problem has been found so far."""
        p = self._parser
        return bool(p.problems or p.recipient_problem_count)

    def recipients(self) -> Iterator[Recipient]:
        """The accepted recipients, in order, until a problem is found; read only once."""
        for to, variables, index, segments in self.accepted():
            yield Recipient(to, variables, index, segments)

    def accepted(self) -> Iterator[tuple[str, dict[str, str] | None, int, int]]:
        """``recipients()`` as plain ``(to, vars, index, segments)`` tuples: what intake streams to the store."""
        parser = self._parser
        template = self._template
        check = template if template is not None and template.has_placeholders else None
        fixed = self._segments or 1
        seen: set[str] = set()
        shape, valid = _E164_SHAPE.fullmatch, _is_valid_e164
        count = 0
        listed = isinstance(self._items, list)
        items = iter(self._items)
        for index, item in enumerate(items):
            count += 1
            if count > self._max and not listed:
                self._too_many(items, count)
                return
            if isinstance(item, str):
                raw, variables = item, None
            else:
                entry = parser.entry(item, index)
                if entry is None:
                    continue
                raw, variables = entry
            to = raw
            if not (shape(raw) and valid(raw)):
                # past the listing cap only the count matters, so skip working out why
                explain = len(parser.recipient_problems) < MAX_RECIPIENT_PROBLEMS
                number, reason = _to_e164_slow(raw, explain)
                if number is None:
                    parser.recipient_problem(f"recipients[{index}]", reason, index)
                    continue
                to = number
            if to in seen:
                self.duplicates_dropped += 1
                continue
            seen.add(to)
            segments = fixed if check is None else parser.segments(check, variables, index)
            if segments and not (parser.problems or parser.recipient_problem_count):
                self.total += 1
                yield to, variables, index, segments
        if count == 0 and not listed:
            parser.problems.insert(self._at, Problem("recipients", "needs at least one recipient"))

    def _too_many(self, rest: Iterator[Any], count: int) -> None:
        """Read the rest of a list that is over the limit only to count it, and refuse it for that alone."""
        parser = self._parser
        for _ in rest:
            count += 1
        parser.recipient_problems.clear()
        parser.recipient_problem_count = 0
        parser.problems.insert(
            self._at, Problem("recipients", f"has {count} recipients; at most {self._max} per batch")
        )

    def finish(self) -> None:
        """Raise ValidationFailed listing every problem found; call it once ``recipients()`` is exhausted."""
        parser = self._parser
        problems = parser.problems + parser.recipient_problems
        if parser.recipient_problem_count > len(parser.recipient_problems):
            more = parser.recipient_problem_count - len(parser.recipient_problems)
            problems.append(Problem("recipients", f"{more} more recipient problem(s) not listed"))
        if problems or self.spec is None:
            raise ValidationFailed(problems)

    def reject(self) -> NoReturn:
        """Read every recipient to list their problems too, then raise (for a batch whose fields are wrong)."""
        for _ in self.accepted():
            pass
        self.finish()
        raise AssertionError  # pragma: no cover - finish() raises when spec is None


class _Parser:
    """One pass over one request, collecting problems instead of stopping at the first."""

    def __init__(self, payload: Mapping[str, Any], now: datetime) -> None:
        self.payload = payload
        self.now = now
        self.problems: list[Problem] = []
        self.recipient_problems: list[Problem] = []
        self.recipient_problem_count = 0
        # variable names found good: the fast path checks a recipient's names by looking them up here
        self.good_names: set[str] = set()

    # -- small typed readers; each records its own problem and returns None when the value is unusable

    def add(self, name: str, reason: str) -> None:
        self.problems.append(Problem(name, reason))

    def text(self, name: str, max_len: int) -> str | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(name, "must be a string")
        elif not value:
            self.add(name, "must not be empty")
        elif len(value) > max_len:
            self.add(name, f"is {len(value)} characters; at most {max_len}")
        elif reason := text_problem(value):
            self.add(name, reason)
        else:
            return value
        return None

    def pattern(self, name: str, regex: re.Pattern[str], shape: str) -> str | None:
        value = self.text(name, 100)
        if value is not None and not regex.fullmatch(value):
            self.add(name, f"must be {shape}")
            return None
        return value

    def choice(self, name: str, enum: type[_E]) -> _E | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if isinstance(value, str) and value in enum._value2member_map_:
            return enum(value)
        self.add(name, "must be one of " + ", ".join(repr(m.value) for m in enum))
        return None

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(name, "must be an integer")
        elif not low <= value <= high:
            self.add(name, f"must be from {low} to {high}")
        else:
            return value
        return None

    def forbid(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            if self.payload.get(name) is not None:
                self.add(name, why)

    # -- the fields

    def channel(self) -> Channel | None:
        if self.payload.get("channel") is None:
            self.add("channel", "is required: 'sms', 'mms' or 'call'")
            return None
        return self.choice("channel", Channel)

    def account(self, accounts: Collection[str] | None) -> str | None:
        name = self.text("account", _ACCOUNT_NAME_MAX)
        if name is not None and accounts is not None and name not in accounts:
            self.add("account", f"no Twilio account named {name!r} is configured")
            return None
        return name

    def sender(self) -> tuple[str | None, str]:
        raw = self.text("from", 64)
        if raw is None:
            return None, ""
        sender, kind = _classify_sender(raw)
        if sender is None:
            self.add("from", kind)
            return None, ""
        return sender, kind

    def channel_rules(self, channel: Channel | None, sender: str | None, kind: str) -> None:
        if channel is None:
            return
        sender_given = self.payload.get("from") is not None
        if channel is Channel.CALL:
            if not sender_given:
                self.add("from", "calls need from: an E.164 number (a Twilio number or a verified caller ID)")
            elif sender is not None and kind != "e164":
                self.add("from", "calls need from as an E.164 number, not a short code or alphanumeric sender ID")
            self.forbid(("messaging_service_sid", "body", "media_url"), "is for messages, not calls")
            return
        self.forbid(CALL_ONLY, "is for calls, not messages")
        if not sender_given and self.payload.get("messaging_service_sid") is None:
            self.add("from", "messages need from, messaging_service_sid, or both")
        if channel is Channel.MMS and kind == "alphanumeric":
            self.add("from", "an alphanumeric sender ID cannot send MMS")

    def body(self, channel: Channel | None) -> Template | None:
        source = self.text("body", 10 * MAX_BODY_CHARS)  # placeholders may render shorter than they are
        if channel is Channel.SMS and self.payload.get("body") is None:
            self.add("body", "sms needs a body")
        if source is None or channel is Channel.CALL:
            return None
        if source.isspace():
            self.add("body", "is only whitespace")
            return None
        try:
            template = Template.compile(source)
        except ValidationFailed as e:
            self.problems.extend(e.problems)
            return None
        if template.fixed_length > MAX_BODY_CHARS:
            self.add("body", f"is {template.fixed_length} characters before variables; at most {MAX_BODY_CHARS}")
            return None
        return template

    def media(self, channel: Channel | None) -> tuple[str, ...]:
        value = self.payload.get("media_url")
        if value is None:
            if channel is Channel.MMS:
                self.add("media_url", "mms needs at least one media_url (use channel sms for text only)")
            return ()
        if channel is Channel.SMS:
            self.add("media_url", "media needs channel mms")
            return ()
        if not isinstance(value, list) or not value:
            self.add("media_url", "must be a non-empty list of URLs")
            return ()
        if len(value) > MAX_MEDIA:
            self.add("media_url", f"has {len(value)} URLs; at most {MAX_MEDIA}")
            return ()
        for i, url in enumerate(value):
            reason = _url_problem(url)
            if reason:
                self.add(f"media_url[{i}]", reason)
        return tuple(value)

    def call(self, channel: Channel | None) -> dict[str, Any]:
        if channel is not Channel.CALL:
            return {}
        given = [name for name in ("url", "twiml", "application_sid") if self.payload.get(name) is not None]
        if not given:
            self.add("url", "calls need one of url, twiml or application_sid")
        elif len(given) > 1:
            self.add(given[1], f"calls take exactly one of url, twiml, application_sid; got {', '.join(given)}")
        url = self.text("url", 4096)
        reason = _url_problem(url) if url is not None else ""
        if reason:
            self.add("url", reason)
        return {
            "url": url,
            "twiml": self.text("twiml", MAX_TWIML_CHARS),
            "application_sid": self.pattern("application_sid", _AP_SID, "AP followed by 32 hex digits"),
            "status_callback_events": self.call_events(),
            "machine_detection": self.machine_detection(),
            "timeout": self.integer("timeout", 1, MAX_TIMEOUT_S),
        }

    def call_events(self) -> tuple[str, ...]:
        value = self.payload.get("status_callback_event")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add("status_callback_event", "must be a list")
            return ()
        bad = [e for e in value if e not in CALL_EVENTS]
        if bad:
            self.add(
                "status_callback_event", f"unknown event(s) {shown(bad)}; expected some of {', '.join(CALL_EVENTS)}"
            )
        return tuple(dict.fromkeys(e for e in value if e in CALL_EVENTS))

    def machine_detection(self) -> str | None:
        value = self.payload.get("machine_detection")
        if value is None or value in MACHINE_DETECTION:
            return value
        self.add("machine_detection", "must be 'Enable' or 'DetectMessageEnd'")
        return None

    def send_at(self) -> datetime | None:
        raw = self.text("send_at", 64)
        if raw is None:
            return None
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            self.add("send_at", "must be an ISO 8601 date and time, e.g. 2026-11-22T10:00:00Z")
            return None
        if when.tzinfo is None:
            self.add("send_at", "needs a timezone, e.g. Z or +01:00")
        elif when < self.now - SEND_AT_GRACE:
            self.add("send_at", "is in the past")
        elif when > self.now + SEND_AT_HORIZON:
            self.add("send_at", f"is more than {SEND_AT_HORIZON.days} days ahead")
        else:
            return when.astimezone(UTC)
        return None

    def metadata(self) -> dict[str, Any] | None:
        value = self.payload.get("metadata")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add("metadata", "must be a JSON object")
            return None
        if reason := _json_problem(value, MAX_METADATA_DEPTH):
            self.add("metadata", reason)
            return None
        try:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError):  # an integer longer than Python writes
            self.add("metadata", "must be plain JSON")
            return None
        if size > MAX_METADATA_BYTES:
            self.add("metadata", f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
            return None
        return value

    # -- recipients: the hot loop

    def recipient_problem(self, name: str, reason: str, index: int) -> None:
        self.recipient_problem_count += 1
        if len(self.recipient_problems) < MAX_RECIPIENT_PROBLEMS:
            self.recipient_problems.append(Problem(name, reason, index))

    def recipient_items(self, max_recipients: int) -> Iterable[Any]:
        items = self.payload.get("recipients")
        if isinstance(items, RecipientArray):
            return items  # read lazily: emptiness and the limit are checked while reading
        if not isinstance(items, list):
            self.add("recipients", "is required: a list of numbers or {to, vars} objects")
            return []
        if not items:
            self.add("recipients", "needs at least one recipient")
        elif len(items) > max_recipients:
            # refuse before looking at each one: a huge batch is cheap to turn away
            self.add("recipients", f"has {len(items)} recipients; at most {max_recipients} per batch")
            return []
        return items

    def segments(self, template: Template, variables: dict[str, str] | None, index: int) -> int:
        """Segments of the body rendered for this recipient; 0 (and a problem) when it does not fit."""
        if variables is not None:
            try:
                body = template.render(variables)  # once: its length and its segments
            except KeyError:
                pass
            else:
                if 0 < len(body) <= MAX_BODY_CHARS and not body.isspace():
                    return segment_count(body)
                if body.isspace():
                    self.recipient_problem("body", "renders to only whitespace for this recipient", index)
                    return 0
        length = template.rendered_length(variables)
        if length is None:
            names = ", ".join(template.missing(variables))
            self.recipient_problem(f"recipients[{index}].vars", f"missing variable(s) used by body: {names}", index)
        elif length == 0:
            self.recipient_problem("body", "renders to an empty body for this recipient", index)
        else:
            self.recipient_problem(
                "body", f"renders to {length} characters for this recipient; at most {MAX_BODY_CHARS}", index
            )
        return 0

    def entry(self, item: object, index: int) -> tuple[str, dict[str, str] | None] | None:
        # the common shape, checked with as little work as possible: {"to": str, "vars": {str: str}}
        if isinstance(item, dict) and isinstance(raw := item.get("to"), str):
            variables = item.get("vars")
            if len(item) == 1 or (len(item) == 2 and "vars" in item):
                if variables is None:
                    return raw, None
                if type(variables) is dict and len(variables) <= MAX_VARS:
                    names = self.good_names
                    for name, value in variables.items():
                        # a printable value holds no text the slow path would refuse (isprintable is one C pass)
                        if (
                            type(value) is not str
                            or len(value) > MAX_BODY_CHARS
                            or not value.isprintable()
                            or name not in names
                        ):
                            break
                    else:
                        return raw, variables
        return self.entry_slow(item, index)

    def entry_slow(self, item: object, index: int) -> tuple[str, dict[str, str] | None] | None:
        where = f"recipients[{index}]"
        if not isinstance(item, dict):
            self.recipient_problem(where, "must be a phone number string or an object with to and vars", index)
            return None
        raw = item.get("to")
        variables = item.get("vars")
        extra = [k for k in item if k not in {"to", "vars"}]
        if extra:
            self.recipient_problem(where, f"unknown field(s) {shown(extra)}; a recipient has to and vars", index)
        elif not isinstance(raw, str):
            self.recipient_problem(where + ".to", "is required: a phone number string", index)
        elif variables is None:
            return raw, None
        elif reason := _vars_problem(variables):
            self.recipient_problem(where + ".vars", reason, index)
        else:
            if len(self.good_names) < _GOOD_NAMES_KEPT:
                self.good_names.update(variables)
            return raw, {k: str(v) for k, v in variables.items()}
        return None


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
    if len(raw) > 11:
        return "an alphanumeric sender ID has at most 11 characters"
    if not _ALPHA_ID.fullmatch(raw):
        return "an alphanumeric sender ID may contain only A-Z, a-z, 0-9 and spaces"
    if not _LETTER.search(raw):
        return "an alphanumeric sender ID needs at least one letter"
    if raw != raw.strip():
        return "an alphanumeric sender ID must not start or end with a space"
    return ""


def _url_problem(url: object) -> str:
    if not isinstance(url, str):
        return "must be a URL string"
    if len(url) > MAX_URL_CHARS:
        return f"is {len(url)} characters; at most {MAX_URL_CHARS}"
    return text_problem(url) or _url_shape_problem(url)


def _url_shape_problem(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an absolute http or https URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain spaces or control characters"
    return ""


def _vars_problem(variables: object) -> str:
    if not isinstance(variables, dict):
        return "must be an object of name: value"
    if len(variables) > MAX_VARS:
        return f"has {len(variables)} variables; at most {MAX_VARS}"
    for name, value in variables.items():
        if not isinstance(name, str):
            return "variable names must be strings"
        if reason := text_problem(name):
            return f"the variable name {shown(name)} {reason}"
        if reason := _var_value_problem(value):
            return f"{shown(name)} {reason}"
    return ""


def _var_value_problem(value: object) -> str:
    """Why a variable's value cannot go into a body, worded to follow the variable's name ("" if it can)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "must be a string or an integer (send decimals as strings to keep their format)"
    if isinstance(value, int) and value.bit_length() > _VAR_INT_BITS:
        return f"has more than {MAX_BODY_CHARS} digits"  # and str() may refuse it: Python's digit limit
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_BODY_CHARS:
        return f"is {len(text)} characters; at most {MAX_BODY_CHARS}"
    return text_problem(text)


# -- text: what can be encoded, stored and sent

# a lone surrogate: JSON can write one ("\ud800"), but it has no UTF-8 form, so no form, row or log line
# holding it can be encoded
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
# C0 control characters but tab, line feed, form feed and carriage return (GSM-7 has LF, CR and, escaped,
# FF): the rest have no place in a message or a TwiML document, and PostgreSQL's text cannot hold NUL
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")
_SHOWN: Final = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 40
_SHOWN.maxlevel = 2
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 4
_NAME_SHOWN: Final = 64


def text_problem(text: str) -> str:
    """Why ``text`` cannot be sent or stored as it is, or "" when it can."""
    if text.isprintable():  # one C pass, and true for almost every value
        return ""
    if (m := _SURROGATE.search(text)) is not None:
        at = f"(U+{ord(m.group()):04X}) at character {m.start()}"
        return f"holds a lone surrogate {at}: text needs whole characters to be sent as UTF-8"
    if (m := _CONTROL.search(text)) is not None:
        return f"holds the control character U+{ord(m.group()):04X} at character {m.start()}"
    return ""


def shown(value: object) -> str:
    """``repr(value)`` shortened, for quoting what a client sent in a problem (any size, any depth)."""
    return _SHOWN.repr(value)


def _shown_name(name: object) -> str:
    """A field name as a problem's ``field``: the name itself unless it is too long to repeat."""
    text = str(name)
    return text if len(text) <= _NAME_SHOWN else text[: _NAME_SHOWN - 3] + "..."


def _json_problem(value: object, max_depth: int) -> str:
    """Why ``value`` is not plain JSON of text that can be stored, nested at most ``max_depth`` deep ("" if it is).

    Walked with a list, not recursion: a client can nest deeper than Python's recursion limit.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            reason = _json_scalar_problem(item)
        elif depth > max_depth:
            reason = f"is nested more than {max_depth} levels deep"
        elif isinstance(item, list):
            stack.extend((member, depth + 1) for member in item)
            continue
        else:
            reason = next(filter(None, map(_json_key_problem, item)), "")
            stack.extend((member, depth + 1) for member in item.values())
        if reason:
            return reason
    return ""


def _json_key_problem(key: object) -> str:
    if not isinstance(key, str):
        return "must be plain JSON: object keys are strings"
    reason = text_problem(key)
    return f"key {shown(key)} {reason}" if reason else ""


def _json_scalar_problem(item: object) -> str:
    if isinstance(item, str):
        reason = text_problem(item)
        return f"value {shown(item)} {reason}" if reason else ""
    if isinstance(item, float) and not math.isfinite(item):
        return "must be plain JSON"
    if item is None or isinstance(item, int | float):  # bool is an int
        return ""
    return "must be plain JSON"


# -- phone numbers: a fast path equal to phonenumbers.is_valid_number for E.164 strings, and a slow path
# (phonenumbers.parse) for everything else, which also explains what is wrong

_E164_SHAPE: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_TWILIO_TEST_NUMBER: Final = re.compile(r"\+1500555000[0-9]")  # valid in Twilio's test mode, whatever the metadata
_SEPARATORS: Final = str.maketrans("", "", " \t-().")
_COUNTRY_CODES: Final = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
_NUMBER_TYPES: Final = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
    "fixed_line", "mobile",
)  # fmt: skip
_PARSE_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}
_LENGTH_REASONS: Final = {
    ValidationResult.TOO_SHORT: "is too short for {}",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is too short for {}: a local number without its area code?",
    ValidationResult.TOO_LONG: "is too long for {}",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits for {}",
}
# (None, (valid,)) for a region without leading digits; (leading, valids) for a run of regions with them,
# their leading-digit patterns joined into one regex whose group "r<i>" names the region that matched
_Rule = tuple[re.Pattern[str] | None, tuple[re.Pattern[str] | None, ...]]


def to_e164(raw: str, *, explain: bool = True) -> tuple[str | None, str]:
    """``(number, "")`` with ``raw`` in E.164 form, or ``(None, reason)`` when it is not a valid number.

    With ``explain=False`` the reason is left empty, which saves a slow parse for most invalid numbers.
    """
    if _E164_SHAPE.fullmatch(raw) and _is_valid_e164(raw):
        return raw, ""
    return _to_e164_slow(raw, explain)


def _split(number: str) -> tuple[int, str] | None:
    """The country calling code and national number of ``+digits``; None for an unknown code."""
    for end in (2, 3, 4):  # country calling codes are 1-3 digits and none is a prefix of another
        cc = _COUNTRY_CODES.get(number[1:end])
        if cc is not None:
            return cc, number[end:]
    return None


def _is_valid_e164(number: str) -> bool:
    """``phonenumbers.is_valid_number`` for a string of shape ``+[1-9][0-9]{1,14}``, without parsing it."""
    split = _split(number)
    if split is None:
        return False
    cc, nsn = split
    for leading, valids in _rules(cc, len(nsn)):
        # the region choice of phonenumbers.region_code_for_number: the first region whose leading
        # digits match decides; a region without leading digits is chosen when the number is valid there
        if leading is None:
            if valids[0] is not None and valids[0].fullmatch(nsn):
                return True
        elif (m := leading.match(nsn)) is not None:
            valid = valids[int((m.lastgroup or "r0")[1:])]
            return valid is not None and valid.fullmatch(nsn) is not None
    return False


@functools.cache  # bounded: about 250 country codes times 15 lengths
def _rules(cc: int, length: int) -> tuple[_Rule, ...]:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    per_region: list[tuple[str | None, re.Pattern[str] | None]] = []
    for region in regions:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            meta = PhoneMetadata.metadata_for_nongeo_region(cc)
        else:
            meta = PhoneMetadata.metadata_for_region(region)
        if meta is None:
            continue
        leading = meta.leading_digits if len(regions) > 1 and meta.leading_digits else None
        valid = _valid_pattern(meta, length)
        if leading is not None or valid is not None:  # a region with neither never decides anything
            per_region.append((leading, valid))
    if all(valid is None for _, valid in per_region):
        return ()  # no region has a valid number of this length
    rules: list[_Rule] = []
    run: list[tuple[str, re.Pattern[str] | None]] = []
    for leading, valid in [*per_region, (None, None)]:
        if leading is not None:
            run.append((leading, valid))
            continue
        if run:
            joined = "|".join(f"(?P<r{i}>{pattern})" for i, (pattern, _) in enumerate(run))
            rules.append((re.compile(joined), tuple(v for _, v in run)))
            run = []
        if valid is not None:
            rules.append((None, (valid,)))
    return tuple(rules)


def _valid_pattern(meta: PhoneMetadata, length: int) -> re.Pattern[str] | None:
    """One regex for "matches the general pattern and the pattern of some number type" at this length."""

    def usable(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and length not in desc.possible_length:
            return None
        return desc.national_number_pattern

    general = usable(meta.general_desc)
    types = [p for p in (usable(getattr(meta, t)) for t in _NUMBER_TYPES) if p is not None]
    if general is None or not types:
        return None
    return re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(f'(?:{p})' for p in types)})")


def _to_e164_slow(raw: str, explain: bool) -> tuple[str | None, str]:
    """``to_e164`` for a ``raw`` that failed the fast path as it stands."""
    cleaned, reason = _clean(raw)
    if cleaned:
        number = _without_parse(cleaned, raw)
        if number:
            return number, ""
        if explain or number is None:
            number, reason = _parse(cleaned)
            if number is not None:
                return number, ""
    if not explain:
        return None, ""
    shown = raw if len(raw) <= 32 else raw[:29] + "..."
    return None, f"{shown!r} {reason}"


def _without_parse(cleaned: str, raw: str) -> str | None:
    """What phonenumbers.parse would make of ``cleaned`` where that can be told cheaply.

    The valid E.164 number; "" for a number parse would also find invalid; None when only parse can tell.
    With a leading +, parse reads the digits literally except that it may drop a national prefix
    (``+44 (0)20 ...``), so a literal reading and a reading without the prefix are all there is.
    """
    if _TWILIO_TEST_NUMBER.fullmatch(cleaned):
        return cleaned
    if not _E164_SHAPE.fullmatch(cleaned):
        return None
    split = _split(cleaned)
    if split is None:
        return ""  # an unknown country code
    if cleaned != raw and _is_valid_e164(cleaned):
        return cleaned
    return _without_national_prefix(cleaned, *split)


def _without_national_prefix(cleaned: str, cc: int, nsn: str) -> str | None:
    """``_without_parse`` for a number invalid as written: the number parse makes by dropping a national prefix."""
    rule = _national_prefix(cc)
    match = None if rule is None else rule.pattern.match(nsn)
    if rule is None or match is None:
        return ""
    rest = nsn[match.end() :]
    groups = match.groups()
    if rule.transform and groups and groups[-1] is not None:
        return None  # parse would rewrite the prefix rather than drop it: leave this one to parse
    if len(rest) not in rule.lengths:
        return ""  # parse keeps the prefix (or drops it from a number too long): invalid either way
    stripped = cleaned[: len(cleaned) - len(nsn)] + rest
    return stripped if _E164_SHAPE.fullmatch(stripped) and _is_valid_e164(stripped) else ""


def _parse(cleaned: str) -> tuple[str | None, str]:
    try:
        # parse also drops a national prefix written after the country code: +44 (0)20 ... -> +4420...
        parsed = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException as e:
        return None, _PARSE_REASONS.get(e.error_type, "is not a phone number")
    number = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    if _E164_SHAPE.fullmatch(number) and _is_valid_e164(number):  # is_valid_number(parsed), only faster
        return number, ""
    cc = parsed.country_code
    region = phonenumbers.region_code_for_country_code(cc or 0)
    where = f"+{cc}" if region in {"ZZ", phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY} else f"+{cc} ({region})"
    length_reason = _LENGTH_REASONS.get(phonenumbers.is_possible_number_with_reason(parsed))
    if length_reason is not None:
        return None, length_reason.format(where)
    return None, f"is not a valid number for {where}: no number range there matches it"


@dataclass(frozen=True, slots=True)
class _PrefixRule:
    pattern: re.Pattern[str]
    transform: bool  # a transform rule rewrites the prefix instead of dropping it
    lengths: frozenset[int]  # national numbers of these lengths are kept once the prefix is dropped


@functools.cache
def _national_prefix(cc: int) -> _PrefixRule | None:
    """How phonenumbers.parse drops a national prefix after ``+cc``: by the main region's rule."""
    region = phonenumbers.region_code_for_country_code(cc)
    meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    if meta is None or not meta.national_prefix_for_parsing:
        return None
    general = meta.general_desc
    lengths = frozenset(general.possible_length) - frozenset(general.possible_length_local_only) if general else None
    return _PrefixRule(
        re.compile(meta.national_prefix_for_parsing), bool(meta.national_prefix_transform_rule), lengths or frozenset()
    )


def _clean(raw: str) -> tuple[str, str]:
    """``raw`` without separators, or ``("", reason)`` when it cannot be an E.164 number."""
    if len(raw) > 64:
        return "", "is too long to be a phone number"
    cleaned = raw.translate(_SEPARATORS)
    digits = cleaned[1:]
    if not cleaned:
        reason = "is empty"
    elif not cleaned.startswith("+"):
        reason = "must be in E.164 form: + and the country code, e.g. +14155550100"
    elif not (digits.isascii() and digits.isdigit()):
        reason = "is not a phone number: only digits, spaces, dashes, dots and parentheses may follow the +"
    elif len(digits) > 15:
        reason = "is too long: E.164 numbers have at most 15 digits"
    else:
        return cleaned, ""
    return "", reason


# -- reading the request: the recipients array one element at a time

_WS: Final = re.compile(r"[ \t\n\r]+")
_WS_CHARS: Final = frozenset(" \t\n\r")
# the C scanner behind json.loads: (text, index) -> (value, end); StopIteration where no value starts
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _ws(text: str, pos: int) -> int:
    """``pos`` moved past JSON whitespace."""
    m = _WS.match(text, pos)
    return pos if m is None else m.end()


class RecipientsNotLast(Exception):
    """The request has members after its ``recipients`` array: read it with :func:`decode_json` instead."""


class UnreadableJson(ValueError):
    """Well-formed JSON that Python will not read: a number too long for ``int``, or nesting too deep."""


MALFORMED_JSON: Final = (json.JSONDecodeError, UnreadableJson)
"""What reading a request's text raises for text that is not JSON notifyq can read: a 400, never a 500."""


def _unreadable(exc: ValueError | RecursionError, text: str, pos: int | None) -> UnreadableJson:
    if isinstance(exc, RecursionError):
        what = "arrays or objects are nested too deeply"
    else:  # the only ValueError the scanner raises that is not a JSONDecodeError: int()'s digit limit
        what = f"a number has more than {sys.get_int_max_str_digits()} digits"
    # JSONDecodeError's own wording of where: "...: line 1 column 5 (char 4)"
    return UnreadableJson(what if pos is None else str(json.JSONDecodeError(what, text, pos)))


def decode_json(text: str) -> Any:
    """``json.loads(text)``, raising only what :data:`MALFORMED_JSON` names for text it cannot read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _unreadable(exc, text, None) from None


class RecipientArray:
    """The ``recipients`` array of a request's text, parsed one element at a time as it is iterated.

    Made by :func:`load_request` only when the array is the request's last member (checked when the
    iteration reaches its end: :class:`RecipientsNotLast` otherwise). A malformed element raises
    ``json.JSONDecodeError`` where it is met, an unreadable one (a number too long, nesting too deep)
    :class:`UnreadableJson`.
    """

    __slots__ = ("_start", "_text")

    def __init__(self, text: str, start: int) -> None:
        self._text = text
        self._start = start  # the "["

    def __iter__(self) -> Iterator[Any]:
        text, ws, scan = self._text, _ws, _SCAN
        pos = ws(text, self._start + 1)
        if text.startswith("]", pos):
            pos += 1
        else:
            while True:
                try:
                    item, pos = scan(text, pos)
                except StopIteration as e:
                    raise json.JSONDecodeError("Expecting value", text, e.value) from None
                except json.JSONDecodeError:
                    raise
                except (ValueError, RecursionError) as e:
                    raise _unreadable(e, text, pos) from None
                yield item
                if text.startswith(",", pos):  # as json.dumps writes it: ", " or "," right after the element
                    pos += 2 if text.startswith(" ", pos + 1) else 1
                    if text[pos : pos + 1] in _WS_CHARS:
                        pos = ws(text, pos)
                    continue
                pos = ws(text, pos)
                if text.startswith(",", pos):
                    pos = ws(text, pos + 1)
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        _expect_end(text, pos)


def _expect_end(text: str, pos: int) -> None:
    """Raise RecipientsNotLast unless only the object's ``}`` follows ``pos``."""
    pos = _ws(text, pos)
    if not (text.startswith("}", pos) and _ws(text, pos + 1) == len(text)):
        raise RecipientsNotLast


def load_request(text: str) -> Any:
    """``json.loads(text)``, except that a ``recipients`` array that ends the object is left unparsed.

    It becomes a :class:`RecipientArray`, so the batch is validated (and stored) as it is read and the
    whole list of recipients never exists as Python objects. The members before it are parsed as usual.
    Anything unusual in those members is left to :func:`decode_json`, which raises what
    :data:`MALFORMED_JSON` names.
    """
    ws = _ws
    pos = ws(text, 0)
    if not text.startswith("{", pos):
        return decode_json(text)
    out: dict[str, Any] = {}
    pos = ws(text, pos + 1)
    while text.startswith('"', pos):
        key, pos = _SCAN(text, pos)
        pos = ws(text, pos)
        if not text.startswith(":", pos):
            break
        pos = ws(text, pos + 1)
        if key == "recipients" and text.startswith("[", pos):
            out[key] = RecipientArray(text, pos)
            return out
        try:
            out[key], pos = _SCAN(text, pos)
        except (StopIteration, ValueError, RecursionError):
            break
        pos = ws(text, pos)
        if not text.startswith(",", pos):
            break
        pos = ws(text, pos + 1)
    return decode_json(text)  # no recipients array last (or malformed): the ordinary way, with its errors
