r"""A batch request (the ``POST /v1/batches`` body): its members, their limits, and the validated value.

The request, as JSON::

    {
      "channel": "sms" | "mms" | "call",                  // required
      "account": "main",                                  // optional: a configured Twilio account name
      "from": "+15005550006" | "MyBrand" | "12345",       // E.164 number, alphanumeric sender ID, or short code
      "messaging_service_sid": "MG…",                     // messages: instead of, or as well as, "from"
      "body": "Hi {name}, your code is {code}",           // sms: required; mms: optional; calls: not allowed
      "smart_encoded": true | false,                      // messages: Twilio's SmartEncoded (default below)
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
- ``smart_encoded`` (messages only) asks Twilio to replace look-alike characters (curly quotes, long
  dashes, ...) with GSM-7 ones (``SmartEncoded`` on the create). Absent, it is on for a batch with a
  ``messaging_service_sid`` (a Messaging Service's Smart Encoding setting is on unless turned off) and
  off otherwise. Segments are counted on the body Twilio will send.
- Media URLs and call ``url`` are absolute http(s) URLs of at most 4,096 characters; ``twiml`` at most
  4,000 characters; ``application_sid`` is ``AP`` + 32 hex.
- Every string (field, variable name or value, metadata key or value) must be text that can be sent:
  no lone surrogate (JSON can write one, ``"\ud800"``, but it has no UTF-8 form) and no C0 control
  character other than tab, line feed, form feed and carriage return. A body that is (or renders to)
  only whitespace is refused, as Twilio refuses it. ``metadata`` is nested at most 32 levels deep.
- ``send_at`` may be at most a minute in the past and at most 366 days ahead. A delivery not accepted
  by Twilio by ``(send_at or received time) + validity_s`` expires.

Every problem is reported with where and why (:mod:`notifyq.intake.problems`); the batch is accepted whole
or refused whole (:mod:`notifyq.intake.validate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from notifyq.statuses import Channel
from notifyq.template import Template

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
SEND_AT_GRACE: Final = timedelta(minutes=1)
SEND_AT_HORIZON: Final = timedelta(days=366)
CALL_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION: Final = ("Enable", "DetectMessageEnd")
MAX_ACCOUNT_NAME: Final = 64
MAX_SENDER_CHARS: Final = 64
MAX_SID_CHARS: Final = 100  # what a SID field is read up to before its pattern is checked
MAX_SEND_AT_CHARS: Final = 64
MAX_BODY_SOURCE_CHARS: Final = 10 * MAX_BODY_CHARS  # placeholders may render shorter than they are
# the shapes of the fields checked by a regular expression; the OpenAPI schema anchors the same ones
MG_SID_PATTERN: Final = r"MG[0-9a-fA-F]{32}"
AP_SID_PATTERN: Final = r"AP[0-9a-fA-F]{32}"
SHORT_CODE_PATTERN: Final = r"[0-9]{5,6}"
MAX_ALPHA_ID: Final = 11

FIELDS: Final = frozenset({
    "channel", "account", "from", "messaging_service_sid", "body", "media_url", "url", "twiml",
    "application_sid", "status_callback_event", "machine_detection", "timeout", "recipients",
    "idempotency_key", "priority", "send_at", "validity_s", "metadata", "smart_encoded",
})  # fmt: skip
CALL_ONLY: Final = ("url", "twiml", "application_sid", "status_callback_event", "machine_detection", "timeout")

AcceptedRecipient = tuple[str, dict[str, str] | None, int, int]
"""One accepted recipient as intake hands it on: ``(to, vars, index, segments)``.

``to`` is the E.164 number; ``vars`` its template variables (the request's own dict when every value
is already a string); ``index`` its position in the request; ``segments`` what its rendered body costs
(1 for calls and bodies without text), counted once, here, so that nothing renders it again before it
is sent. A plain tuple: a million of them pass through intake.
"""


def smart_encoding_applies(asked: bool | None, messaging_service_sid: str | None) -> bool:
    """Whether Twilio smart-encodes a message: ``SmartEncoded`` when given, else when a Messaging Service sends it.

    A Messaging Service's Smart Encoding setting is on unless its owner turns it off; a create without a
    service and without ``SmartEncoded`` is sent as written.
    """
    return asked if asked is not None else messaging_service_sid is not None


class Priority(StrEnum):
    """Which lane a batch's deliveries wait in."""

    BULK = "bulk"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSpec:
    """A validated batch without its recipients: what its deliveries and their Twilio requests share.

    ``body_template`` is checked again here, so that a spec never holds a body that cannot be rendered.
    """

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
    idempotency_key: str | None = None
    priority: Priority = Priority.BULK
    send_at: datetime | None = None
    validity_s: int = MAX_VALIDITY_S
    metadata: dict[str, Any] | None = None
    smart_encoded: bool | None = None  # as the request gave it; ``smart`` is what applies

    def __post_init__(self) -> None:
        if self.body_template is not None:
            Template.compile(self.body_template)

    @property
    def smart(self) -> bool:
        """Whether Twilio smart-encodes the body: as asked, else on for a Messaging Service (its default)."""
        return smart_encoding_applies(self.smart_encoded, self.messaging_service_sid)

    def shared_params(self) -> list[tuple[str, str]]:
        """The form items every recipient's Messages.json or Calls.json request has (all but To and Body).

        The worker adds To, Body (rendered for the recipient) and StatusCallback.
        """
        params: list[tuple[str, str]] = []
        if self.sender is not None:
            params.append(("From", self.sender))
        if self.channel.is_message:
            if self.messaging_service_sid is not None:
                params.append(("MessagingServiceSid", self.messaging_service_sid))
            params.extend(("MediaUrl", u) for u in self.media_urls)
            if self.smart_encoded is not None:  # absent, the service's own setting (or Twilio's off) applies
                params.append(("SmartEncoded", "true" if self.smart_encoded else "false"))
            if self.validity_s < MAX_VALIDITY_S:
                params.append(("ValidityPeriod", str(self.validity_s)))
            return params
        for name, value in (("Url", self.url), ("Twiml", self.twiml), ("ApplicationSid", self.application_sid)):
            if value is not None:
                params.append((name, value))
        params.extend(("StatusCallbackEvent", e) for e in self.status_callback_events)
        if self.machine_detection is not None:
            params.append(("MachineDetection", self.machine_detection))
        if self.timeout is not None:
            params.append(("Timeout", str(self.timeout)))
        return params

    def deadline(self, received_at: datetime) -> datetime:
        """When an unsent delivery expires: ``(send_at or received_at) + validity_s``."""
        return (self.send_at or received_at) + timedelta(seconds=self.validity_s)
