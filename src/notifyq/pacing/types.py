"""The values the pacer's calls take and give (terms: docs/pacing.md's glossary).

Times in them are epoch seconds on this process' clock: the pacer translates Redis' clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

LANES: Final = frozenset({"urgent", "bulk"})
LOOSE_S: Final = 0.25  # decide.lua's LOOSE: how late a loose grant may still be used


@dataclass(frozen=True, slots=True)
class Grant:
    """Send now, then ``release`` the lease. ``granted_at`` is epoch seconds on this process' clock."""

    lease: str
    granted_at: float
    loose: bool = False  # the sender is far from its rate: the request may go up to LOOSE_S late


@dataclass(frozen=True, slots=True)
class Wait:
    """Do not send; come back at ``until`` (epoch seconds, this process' clock) presenting ``reserved``."""

    until: float
    reason: str
    reserved: str | None
    job_id: str | None = None  # ``reserve_many``: the ask this wait is for (it keeps its place under this id)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A sender slot booked for one send, without a lease: redeem it at ``at`` (epoch seconds, this clock)."""

    job_id: str
    cost: int
    token: str
    at: float


@dataclass(frozen=True, slots=True)
class PacerTuning:
    """The pacer's knobs; the defaults suit arq workers polling every ``worker.poll_delay_s``."""

    early_s: float = 0.010  # a reserved job is granted this long before its slot (its redeem wakes then)
    late_s: float = 0.008  # ... and this long after (a held reservation: the event loop's lag)
    jitter_s: float | None = None  # grant to arrival at Twilio, its spread; None: pacing.arrival_jitter_s
    ahead_s: float = 0.25  # held reservations: jobs in line come back and book this long before their turn
    burst_s: float = 0.1  # GCRA burst tolerance: an idle sender sends this much of a second at once
    horizon_s: float = 0.5  # reservations reach this far ahead (what a newcomer may find booked before it) ...
    horizon_segments: int = 2  # ... or this many segments, when that is further (a slow sender)
    hold_s: float = 0.015  # waits up to this long happen inside reserve_many(), not through the queue
    lease_ttl_s: float | None = None  # None: connect + request timeout + 5 s
    pause_recheck_s: float = 5.0
    increase_after: int = 20  # successful releases per +1 on the in-flight cap
    decrease_factor: float = 0.5
    latency_guess_s: float = 0.25  # request time assumed before any release has measured it


def still_to_book(
    asks: Sequence[tuple[str, int]], reservations: Sequence[Reservation], wait: Wait | None
) -> list[tuple[str, int]]:
    """The asks of a ``reserve_many`` call that got no slot, the one that waits first (it holds a place in line)."""
    booked = {r.job_id for r in reservations}
    rest = [a for a in asks if a[0] not in booked]
    if wait is not None and wait.job_id is not None:
        rest.sort(key=lambda a: a[0] != wait.job_id)
    return rest
