"""Magic inputs: numbers that make the simulator refuse a create or end a send a given way.

Create-time refusals follow Twilio's test-credential numbers (docs/iam/test-credentials). Final
outcomes are chosen by the last four digits of ``To``, so a test or a demo can ask for a failure
deterministically; other recipients succeed unless ``outcome_rates`` draws a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from notifyq.simulator.replies import TwilioReply, bad_request

if TYPE_CHECKING:
    import random

    from notifyq.simulator.config import SimAccount

TEST_FROM_OK: Final = "+15005550006"

_MESSAGE_FROM: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number or alphanumeric sender ID."),
    "+15005550007": (21606, "The 'From' phone number is not a valid, message-capable Twilio phone number."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages."),
}
_MESSAGE_TO: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region of the 'To' number."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient."),
    "+15005550009": (21614, "'To' number is not a valid mobile number."),
}
_CALL_FROM: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21212, "The caller ID +15005550001 is not a valid phone number."),
}
_CALL_TO: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21217, "Phone number does not appear to be valid."),
    "+15005550002": (21214, "'To' phone number cannot be reached."),
    "+15005550003": (21215, "Geo permission configuration is not permitting call."),
    "+15005550004": (21216, "Call blocked by Twilio blocklist."),
}


def message_refusal(account: SimAccount, to: str, from_: str | None) -> TwilioReply | None:
    """The error a Messages create gets for these numbers, or None."""
    if from_ is not None:
        if from_ in _MESSAGE_FROM:
            return bad_request(*_MESSAGE_FROM[from_])
        if account.test_credentials and from_ != TEST_FROM_OK:
            return bad_request(21606, f"The 'From' phone number {from_} is not owned by this test account.")
    if to in _MESSAGE_TO:
        return bad_request(*_MESSAGE_TO[to])
    return None


def call_refusal(account: SimAccount, to: str, from_: str) -> TwilioReply | None:
    """The error a Calls create gets for these numbers, or None."""
    if from_ in _CALL_FROM:
        return bad_request(*_CALL_FROM[from_])
    if account.test_credentials and from_ != TEST_FROM_OK:
        return bad_request(21210, f"The source phone number provided, {from_}, is not yet verified for your account.")
    if to in _CALL_TO:
        return bad_request(*_CALL_TO[to])
    return None


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """How a message ends."""

    status: str
    error_code: int | None = None
    error_message: str | None = None


ERROR_MESSAGES: Final[dict[int, str]] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
_MESSAGE_MAGIC: Final[dict[str, tuple[str, int]]] = {
    "3003": ("undelivered", 30003),
    "3005": ("undelivered", 30005),
    "3006": ("undelivered", 30006),
    "3007": ("failed", 30007),
    "3008": ("undelivered", 30008),
}
_RANDOM_CODES: Final[dict[str, tuple[int, ...]]] = {
    "undelivered": (30003, 30005, 30006, 30008),
    "failed": (30007, 30008),
}
DELIVERED: Final = MessageOutcome("delivered")


def _failure(status: str, code: int) -> MessageOutcome:
    return MessageOutcome(status, code, ERROR_MESSAGES[code])


def message_outcome(to: str, outcome_rates: dict[str, float], rng: random.Random) -> MessageOutcome:
    """The final status of a message to ``to``: magic digits first, then a random draw."""
    magic = _MESSAGE_MAGIC.get(to[-4:])
    if magic is not None:
        return _failure(*magic)
    draw = rng.random()
    for status in ("undelivered", "failed"):
        rate = outcome_rates.get(status, 0.0)
        if draw < rate:
            return _failure(status, rng.choice(_RANDOM_CODES[status]))
        draw -= rate
    return DELIVERED


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ends, and which progress events it passes through."""

    status: str  # completed, busy, no-answer or failed
    sip_response_code: int
    duration_s: int = 0

    @property
    def rang(self) -> bool:
        """Whether the callee's phone rang."""
        return self.status != "failed"

    @property
    def answered(self) -> bool:
        """Whether the call was answered."""
        return self.status == "completed"

    @property
    def duration_min(self) -> int:
        """Billed minutes, rounded up."""
        return math.ceil(self.duration_s / 60)


_CALL_MAGIC: Final[dict[str, CallOutcome]] = {
    "4001": CallOutcome("busy", 486),
    "4002": CallOutcome("no-answer", 487),
    "4003": CallOutcome("failed", 404),
}


def call_outcome(to: str, rng: random.Random) -> CallOutcome:
    """The final status of a call to ``to``."""
    magic = _CALL_MAGIC.get(to[-4:])
    if magic is not None:
        return magic
    return CallOutcome("completed", 200, duration_s=rng.randint(5, 90))
