"""The status model of a delivery: states, ranks, which are final.

A delivery starts in notifyq (``pending`` → ``dispatching``, maybe ``retrying``), then takes
Twilio's own status names once Twilio holds it. Statuses only move forward: an update is
applied when its rank is higher than the stored one and the stored status is not final
(``read`` after ``delivered`` is the one move between final statuses). Call callbacks are
additionally ordered by ``SequenceNumber``. See docs/status-model.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Channel(StrEnum):
    """What a batch sends."""

    SMS = "sms"
    MMS = "mms"
    CALL = "call"

    @property
    def is_message(self) -> bool:
        """SMS and MMS go to Messages.json; calls to Calls.json."""
        return self is not Channel.CALL


# notifyq's own states, before Twilio holds the message or call
PENDING: Final = "pending"  # durable, job queued, not yet tried
DISPATCHING: Final = "dispatching"  # a worker claimed it; the create request is (or may be) in flight
RETRYING: Final = "retrying"  # a retryable error; waiting for its backoff
# notifyq's own final states
EXPIRED: Final = "expired"  # validity deadline passed before Twilio accepted it
SUPPRESSED: Final = "suppressed"  # recipient opted out; no request sent
CANCELED: Final = "canceled"  # batch canceled before it was sent (also Twilio's canceled)
FAILED: Final = "failed"  # permanent error at create (with Twilio's code) or Twilio's failed
UNDELIVERED: Final = "undelivered"  # Twilio's: the carrier could not deliver (error_code says why)

# what `notifyq failures` reports: the statuses that carry a reason a delivery did not reach its recipient.
# expired and canceled are left out: neither reached Twilio, and canceled is an operator's choice
FAILURES: Final = (FAILED, UNDELIVERED)

# the final statuses that mean the recipient was reached: a replay never sends to them again
REACHED: Final = ("delivered", "read", "partially_delivered", "completed")
# the final statuses a replay may send again: they did not reach the recipient, and no opt-out stopped them
REPLAYABLE: Final = (FAILED, UNDELIVERED, EXPIRED, CANCELED, "busy", "no-answer")

MESSAGE_RANKS: Final[dict[str, int]] = {
    PENDING: 0,
    RETRYING: 1,
    DISPATCHING: 2,
    "accepted": 3,
    "scheduled": 3,
    "queued": 3,
    "sending": 4,
    "sent": 5,
    "partially_delivered": 10,
    "delivered": 10,
    "undelivered": 10,
    FAILED: 10,
    CANCELED: 10,
    EXPIRED: 10,
    SUPPRESSED: 10,
    "read": 11,
}

CALL_RANKS: Final[dict[str, int]] = {
    PENDING: 0,
    RETRYING: 1,
    DISPATCHING: 2,
    "queued": 3,
    "initiated": 4,
    "ringing": 5,
    "in-progress": 6,
    "completed": 10,
    "busy": 10,
    "no-answer": 10,
    FAILED: 10,
    CANCELED: 10,
    EXPIRED: 10,
    SUPPRESSED: 10,
}

FINAL_RANK: Final = 10
# the only moves from a final status to another: a read receipt after delivery (WhatsApp, RCS)
FINAL_MOVES: Final = frozenset({("delivered", "read")})

# a worker may claim a delivery only from these
CLAIMABLE: Final = frozenset({PENDING, RETRYING})


def ranks(channel: Channel | str) -> dict[str, int]:
    """The rank table for a channel."""
    return CALL_RANKS if Channel(channel) is Channel.CALL else MESSAGE_RANKS


def rank(channel: Channel | str, status: str) -> int | None:
    """The rank of ``status`` on ``channel``, or None for a status we do not know."""
    return ranks(channel).get(status)


def is_final(channel: Channel | str, status: str) -> bool:
    """Whether ``status`` is final: only a move in ``FINAL_MOVES`` (``delivered`` → ``read``) may follow it."""
    r = rank(channel, status)
    return r is not None and r >= FINAL_RANK


def should_apply(
    channel: Channel | str,
    current: str,
    new: str,
    *,
    current_seq: int | None = None,
    new_seq: int | None = None,
) -> tuple[bool, str]:
    """Decide whether a reported status replaces the stored one; the reason when it does not.

    Pure, so that the store's guarded UPDATE and the tests agree on one rule.
    """
    table = ranks(channel)
    new_rank = table.get(new)
    if new_rank is None:
        return False, f"unknown status {new!r}"
    cur_rank = table.get(current, 0)
    if cur_rank >= FINAL_RANK and (current, new) not in FINAL_MOVES:
        return False, f"{current} is final"
    if Channel(channel) is Channel.CALL and new_seq is not None and current_seq is not None:
        if new_seq <= current_seq:
            return False, f"sequence {new_seq} is not after {current_seq}"
        return True, "later sequence"
    if new_rank <= cur_rank:
        return False, f"{new} does not move forward from {current}"
    return True, "forward"
