"""What a run of a send job comes to, as values; the job functions (``worker/jobs.py``) put them in arq's terms.

* ``Done``: what became of one delivery in this run (an ``Outcome``, and the status it was left in).
* ``Deferred``: the delivery's job comes back at ``until``; ``Throttled`` when Twilio answered 429 /
  20429. Nothing in the send path raises arq's ``Retry``: a deferral is returned, and only the job
  function raises.
* ``ChunkRun``: one run of a chunk job: a ``Done`` per delivery it took, and ``Owed``, the
  deliveries the pacer had no slot for yet, with the time to come back for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

MIN_DEFER_S: Final = 0.001  # a job deferred to a time already past comes back at the next poll


def defer_s(until: float) -> float:
    """How long a job due at ``until`` (epoch seconds) is deferred from now."""
    return max(until - time.time(), MIN_DEFER_S)


class Outcome(StrEnum):
    """What one run of a send job did with a delivery."""

    SENT = "sent"  # Twilio accepted the create
    DEFERRED = "deferred"  # a chunk's delivery that continues in a job of its own, later
    SUPPRESSED = "suppressed"  # the recipient opted out: no request
    EXPIRED = "expired"  # its validity period ended before it was sent
    FAILED = "failed"  # refused for good, by Twilio or because no request can be built for it
    GAVE_UP = "gave_up"  # its retries, or its unanswered attempts, are used up
    ADOPTED = "adopted"  # an unanswered create, found in Twilio's list
    LOOKUP_FAILED = "lookup_failed"  # Twilio's list could not be read: left to the reconciler
    CANCELED = "canceled"  # its batch was canceled
    TAKEN_BY_ANOTHER_WORKER = "taken_by_another_worker"  # another worker settles it
    ALREADY_HANDLED = "already_handled"  # not claimable: another run or a callback moved it (see the status)


@dataclass(frozen=True, slots=True)
class Done:
    """What became of one delivery in this run (the metrics count each request as it is answered)."""

    outcome: Outcome
    status: str | None = None
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class Deferred:
    """The delivery's job comes back at ``until`` (epoch seconds), for ``reason``."""

    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Throttled(Deferred):
    """Twilio answered 429 / 20429: the job comes back after its backoff (the pacer lowered the account's cap)."""


@dataclass(frozen=True, slots=True)
class Owed:
    """The deliveries a chunk still owes (the pacer had no slot for them yet), and when it comes back."""

    delivery_ids: list[str]
    costs: list[int]
    lane: str
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkRun:
    """One run of a chunk job: what became of each delivery it took, and what it still owes."""

    done: list[Done]
    owed: Owed | None = None
