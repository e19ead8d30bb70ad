"""The one table that says what to do about an error from Twilio (architecture invariant 5).

Two questions, one table:

* ``classify(http_status, code)``: a create request failed (Twilio answered with an error, or no answer
  came at all). Retry with backoff, fail the delivery, suppress the recipient, or stop the account?
* ``classify_delivery_error(code)``: Twilio accepted the message, and a status callback later reported
  it ``failed`` / ``undelivered``. Is a new message worth sending? Only for the few codes that may be
  transient, and only a limited number of times (each new attempt is a new, billed message).

Rules, in order:

1. A Twilio error code in ``CODES`` (or a range in ``CODE_RANGES``) decides, whatever the HTTP status.
2. No HTTP status and no code: a transport error, retried. The caller must never pass an ambiguous
   outcome here (the request was written, Twilio may have acted): see invariant 2.
3. Otherwise the HTTP status: 429, 408 and 5xx retry; 401 stops the account (bad credentials fail every
   delivery alike, so failing them one by one would burn the whole batch); any other 4xx fails.

``CODES`` is the data; docs and tests enumerate it. The reasons paraphrase Twilio's error pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Action(StrEnum):
    """What the worker does with a delivery after an error."""

    RETRY = "retry"  # try again later, with backoff, within max_attempts and the deadline
    FAIL = "fail"  # permanent for this delivery; record Twilio's code
    SUPPRESS = "suppress"  # the recipient opted out: add to the suppression list, never send again
    PAUSE_ACCOUNT = "pause_account"  # the account cannot send at all: stop it, keep the deliveries


@dataclass(frozen=True, slots=True)
class Verdict:
    """The action for one error, why, and what it was judged on.

    ``retry_limit`` bounds how many new messages a delivery may get for failures reported by status
    callbacks with this code (None: only ``max_attempts`` and the deadline bound it).
    """

    action: Action
    reason: str
    code: int | None
    http_status: int | None
    retry_limit: int | None = None


RETRY, FAIL, SUPPRESS, PAUSE = Action.RETRY, Action.FAIL, Action.SUPPRESS, Action.PAUSE_ACCOUNT

CODES: Final[Mapping[int, tuple[Action, str]]] = MappingProxyType(
    {
        # account and request level
        10004: (RETRY, "call concurrency limit exceeded for the account"),
        20003: (PAUSE, "permission denied: authentication failed, or the account is suspended or closed"),
        20429: (RETRY, "too many concurrent requests to the REST API; not processed, safe to retry"),
        # messages: rejected at create
        21211: (FAIL, "invalid 'To' phone number"),
        21212: (FAIL, "invalid 'From' phone number"),
        21408: (FAIL, "no permission to send to this region (Geo Permissions)"),
        21606: (FAIL, "'From' is not a message-capable Twilio number for this destination"),
        21610: (SUPPRESS, "recipient unsubscribed (replied STOP); never send to them again"),
        21611: (RETRY, "the sender's queue holds more than 10 hours of messages; retry later, slower"),
        21612: (FAIL, "cannot route between this 'To' and 'From' (unsupported carrier or bad format)"),
        21614: (FAIL, "'To' is not a mobile number and cannot receive SMS"),
        21635: (FAIL, "'To' is a landline"),
        # calls: rejected at create
        21210: (FAIL, "'From' is not a verified caller ID or Twilio number for calls"),
        21214: (FAIL, "'To' phone number cannot be reached"),
        21215: (FAIL, "no permission to call this region (Geo Permissions)"),
        21216: (FAIL, "calls to this 'To' number are blocked"),
        21217: (FAIL, "invalid 'To' phone number for a call"),
        22005: (RETRY, "the account's call queue is full (more than 24 h of calls at its CPS); retry later"),
        # messages: failed after acceptance (status callbacks, some also at create)
        30001: (RETRY, "queue overflow: more messages than the sender can send in time; retry later, slower"),
        30002: (PAUSE, "account suspended"),
        30003: (RETRY, "unreachable handset: powered off or out of coverage, may be transient"),
        30004: (FAIL, "message blocked by the recipient or the carrier"),
        30005: (FAIL, "unknown destination handset: number unknown or no longer in service"),
        30006: (FAIL, "landline or unreachable carrier"),
        30007: (FAIL, "carrier filtering: message flagged; fix content or sender registration"),
        30008: (RETRY, "unknown error from the carrier"),
        30034: (FAIL, "US A2P 10DLC: message sent from an unregistered number"),
        30036: (FAIL, "validity period expired before the message could be sent"),
        # channels
        63005: (FAIL, "WhatsApp rejected the media (e.g. a video without an audio track)"),
    }
)

# Families Twilio numbers by the hundred, where no single code changes the answer.
CODE_RANGES: Final[tuple[tuple[range, Action, str], ...]] = (
    (range(30500, 30600), FAIL, "toll-free verification or A2P registration problem"),
)

# New messages allowed per delivery for a downstream failure (status callback) with a retryable code.
DELIVERY_RETRY_LIMITS: Final[Mapping[int, int]] = MappingProxyType({30001: 2, 30003: 2, 30008: 1})
_DEFAULT_DELIVERY_RETRY_LIMIT: Final = 1  # any other retryable code reported by a callback
_NO_CODE_REASON: Final = "failed without an error code; treated like an unknown carrier error"


def classify(http_status: int | None, code: int | None) -> Verdict:
    """What to do after a create request failed with this HTTP status and Twilio error code.

    ``http_status`` None means no answer came (connection refused or reset, timeout before the request
    was written); with no code either, that is retried.
    """
    known = _lookup(code)
    if known is not None:
        return Verdict(known[0], known[1], code, http_status)
    action, reason = _by_status(http_status, code)
    return Verdict(action, reason, code, http_status)


def classify_delivery_error(code: int | None) -> Verdict:
    """Whether a message that ended ``failed``/``undelivered`` with this error code is worth a new attempt."""
    if code is None:
        return Verdict(RETRY, _NO_CODE_REASON, None, None, DELIVERY_RETRY_LIMITS[30008])
    known = _lookup(code)
    if known is None:
        return Verdict(FAIL, f"unrecognised delivery error {code}; not retried", code, None)
    action, reason = known
    limit = DELIVERY_RETRY_LIMITS.get(code, _DEFAULT_DELIVERY_RETRY_LIMIT) if action is RETRY else None
    return Verdict(action, reason, code, None, limit)


def explain(code: int) -> tuple[Action, str] | None:
    """The table's action and reason for a Twilio error code (exact codes before ranges), None if it has none."""
    return _lookup(code)


def _lookup(code: int | None) -> tuple[Action, str] | None:
    """The table entry for a code, exact codes before ranges."""
    if code is None:
        return None
    if code in CODES:
        return CODES[code]
    for codes, action, reason in CODE_RANGES:
        if code in codes:
            return action, reason
    return None


def _by_status(http_status: int | None, code: int | None) -> tuple[Action, str]:  # noqa: PLR0911 - a rule each
    """The fallback when the code is unknown: judge by the HTTP status alone."""
    unknown = "" if code is None else f" (unrecognised Twilio error {code})"
    if http_status is None:
        if code is None:
            return RETRY, "transport error: no response from Twilio"
        return FAIL, f"unrecognised Twilio error {code} without an HTTP status"
    if http_status == 429:
        return RETRY, "HTTP 429: too many requests; not processed, safe to retry" + unknown
    if http_status == 408:
        return RETRY, "HTTP 408: request timed out before it was processed" + unknown
    if http_status == 401:
        return PAUSE, "HTTP 401: Twilio rejected the credentials" + unknown
    if http_status >= 500:
        return RETRY, f"HTTP {http_status}: Twilio server error" + unknown
    if http_status >= 400:
        return FAIL, f"HTTP {http_status}: request rejected" + unknown
    return FAIL, f"HTTP {http_status}: not an error status, yet reported as a failure" + unknown
