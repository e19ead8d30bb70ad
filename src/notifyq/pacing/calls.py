"""The scripts' calling convention: KEYS and ARGV built from named fields, and replies read back.

This is the one place on the Python side that knows the order of the scripts' arguments; on the Lua
side it is ``lua/layout.lua`` (``pace.lua``) and each script's header (``release.lua``, ``lease.lua``).
A test holds ``PaceCall`` and ``layout.lua`` to the same order. Times cross as integer microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from notifyq.pacing.keys import INDEX_KEY, RATES_KEY, WAKE_KEY, account_key, account_name, job_key, schedule_key

if TYPE_CHECKING:
    from notifyq.pacing.senders import Schedule
    from notifyq.pacing.types import PacerTuning
    from notifyq.settings import Settings

US: Final = 1_000_000


def to_us(seconds: float) -> int:
    """Seconds as the scripts count time: whole microseconds."""
    return round(seconds * US)


class Mode(StrEnum):
    """What a ``pace.lua`` call does with its sends."""

    RESERVE = "reserve"  # book each a slot at least ``lead`` ahead, no lease; stop at the first that waits
    REDEEM = "redeem"  # turn held reservations into grants with their leases; answer every send


@dataclass(frozen=True, slots=True)
class ScriptTuning:
    """``PacerTuning`` as the scripts take it: microseconds, with the settings' defaults filled in."""

    lease_ttl_us: int
    early_us: int
    late_us: int
    burst_us: int
    horizon_us: int
    horizon_segments: int
    pause_recheck_us: int
    latency_guess_us: int
    jitter_us: int
    ahead_us: int
    increase_after: int
    decrease_factor: float

    @classmethod
    def resolve(cls, tuning: PacerTuning, settings: Settings, *, jitter_s: float) -> ScriptTuning:
        """The tuning for these settings; ``jitter_s`` is the arrival jitter the pacer settled on."""
        lease_ttl = tuning.lease_ttl_s or settings.twilio.connect_timeout_s + settings.twilio.request_timeout_s + 5.0
        return cls(
            lease_ttl_us=to_us(lease_ttl),
            early_us=to_us(tuning.early_s),
            late_us=to_us(tuning.late_s),
            burst_us=to_us(tuning.burst_s),
            horizon_us=to_us(tuning.horizon_s),
            horizon_segments=tuning.horizon_segments,
            pause_recheck_us=to_us(tuning.pause_recheck_s),
            latency_guess_us=to_us(tuning.latency_guess_s),
            jitter_us=to_us(jitter_s),
            ahead_us=to_us(tuning.ahead_s),
            increase_after=tuning.increase_after,
            decrease_factor=tuning.decrease_factor,
        )


@dataclass(frozen=True, slots=True)
class Send:
    """One send of a ``pace.lua`` call: its job (whose key keeps its token between calls), cost, token."""

    job_id: str
    cost: int  # segments; calls: 1
    token: str = ""  # a reservation or place in line; "": the one kept under the job's key, if any


@dataclass(frozen=True, slots=True)
class PaceCall:
    """One call of ``pace.lua``: the sends of one chunk (one sender, account, lane and flow)."""

    mode: Mode
    account_sid: str
    schedule: Schedule
    max_in_flight: int
    tuning: ScriptTuning
    sends: Sequence[Send]
    fresh: str  # a random id: the name of what the call creates (slots, leases, places), with each send's index
    lane: str = "bulk"
    flow: str = ""  # the batch; "": one flow
    now_us: int | None = None  # None: Redis' clock (a simulated clock in tests)
    lead_us: int | None = None  # a booked slot is at least this far ahead; None: how late jobs come back
    punctual: bool = False  # the caller waited in process: how late it comes says nothing of the pool's

    def keys(self) -> list[str]:
        """KEYS, in ``layout.lua``'s ``read_keys`` order."""
        sched, sid = self.schedule.name, self.account_sid
        return [
            schedule_key(sched),
            schedule_key(sched, "slots"),
            account_key(sid),
            account_key(sid, "leases"),
            account_key(sid, "paused"),
            RATES_KEY,
            INDEX_KEY,
            schedule_key(sched, "open"),
            WAKE_KEY,
            schedule_key(sched, "line"),
            schedule_key(sched, "due"),
            schedule_key(sched, "flows"),
            account_key(sid, "held"),
        ]

    def argv(self) -> list[str]:
        """ARGV, in ``layout.lua``'s ``read_call`` order, then (job key, cost, token) per send."""
        t = self.tuning
        args = [
            "" if self.now_us is None else str(self.now_us),
            self.schedule.override,
            repr(float(self.schedule.rate)),
            self.fresh,
            str(self.max_in_flight),
            str(t.lease_ttl_us),
            str(t.early_us),
            str(t.late_us),
            str(t.burst_us),
            str(t.horizon_us),
            str(t.horizon_segments),
            str(t.pause_recheck_us),
            str(t.latency_guess_us),
            self.schedule.name,
            account_name(self.account_sid),
            "1" if self.punctual else "0",
            self.lane,
            self.flow,
            self.mode.value,
            "" if self.lead_us is None else str(self.lead_us),
            str(t.jitter_us),
            str(t.ahead_us),
        ]
        for send in self.sends:
            args += [job_key(send.job_id), str(send.cost), send.token]
        return args


@dataclass(frozen=True, slots=True)
class ReleaseCall:
    """One call of ``release.lua``: leases of one account given back, (lease, throttled) each."""

    account_sid: str
    max_in_flight: int
    tuning: ScriptTuning
    leases: Sequence[tuple[str, bool]]
    now_us: int | None = None

    def keys(self) -> list[str]:
        """KEYS: the account's hash and leases."""
        return [account_key(self.account_sid), account_key(self.account_sid, "leases")]

    def argv(self) -> list[str]:
        """ARGV, in ``release.lua``'s order."""
        t = self.tuning
        args = [
            "" if self.now_us is None else str(self.now_us),
            str(self.max_in_flight),
            str(t.increase_after),
            repr(t.decrease_factor),
            str(t.latency_guess_us),
        ]
        for lease, throttled in self.leases:
            args += [lease, "1" if throttled else "0"]
        return args


@dataclass(frozen=True, slots=True)
class LeaseCall:
    """One call of ``lease.lua``: an account lease for a request that sends nothing."""

    account_sid: str
    max_in_flight: int
    tuning: ScriptTuning
    fresh: str

    def keys(self) -> list[str]:
        """KEYS: the account's hash, leases and pause."""
        sid = self.account_sid
        return [account_key(sid), account_key(sid, "leases"), account_key(sid, "paused")]

    def argv(self) -> list[str]:
        """ARGV, in ``lease.lua``'s order."""
        t = self.tuning
        return [
            self.fresh,
            str(self.max_in_flight),
            str(t.lease_ttl_us),
            str(t.latency_guess_us),
            str(t.pause_recheck_us),
        ]


@dataclass(frozen=True, slots=True)
class Answer:
    """One send's answer as a script gives it, on Redis' clock."""

    kind: str  # "G" grant, "W" wait, "R" reserved
    at_us: int  # G: when granted; W: when to come back; R: the slot
    token: str  # G: the lease; W: the token to come back with ("": none kept); R: the reservation
    redis_now_us: int  # Redis' clock when it answered
    reason: str = ""  # W: why
    loose: bool = False  # G: the sender is far from its rate
    send: int = -1  # reserving: the index in ``PaceCall.sends`` of the send answered


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_WIDTH: Final = {"G": 5, "W": 5, "R": 4}  # fields of each kind of answer, before its send's index


def read_answers(reply: Sequence[Any], *, indexed: bool) -> list[Answer]:
    """The answers of a script's reply, in order; ``indexed`` (a reserving call): each names its send.

    Grant ``G lease at loose now``; wait ``W until reason token now``; reserved ``R slot token now``.
    """
    values = [_text(v) for v in reply]
    answers: list[Answer] = []
    i = 0
    while i < len(values):
        kind = values[i]
        if kind not in _WIDTH:
            raise ValueError(f"unknown answer {kind!r} in a pacing script's reply")
        width = _WIDTH[kind]
        send = int(values[i + width]) if indexed else -1
        if kind == "G":
            loose = values[i + 3] == "1"
            answers.append(Answer(kind, int(values[i + 2]), values[i + 1], int(values[i + 4]), loose=loose, send=send))
        elif kind == "W":
            reason = values[i + 2]
            answers.append(Answer(kind, int(values[i + 1]), values[i + 3], int(values[i + 4]), reason, send=send))
        else:
            answers.append(Answer(kind, int(values[i + 1]), values[i + 2], int(values[i + 3]), send=send))
        i += width + indexed
    return answers
