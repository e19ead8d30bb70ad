"""The pacer's calls: book sender slots, redeem them for grants, give leases back; one script call each.

How the schedule, the line and the leases work, and why a send booked here cannot overfill a second
where Twilio counts it: docs/pacing.md. The arguments of each call are built in ``calls.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

from notifyq.pacing.admin import PacingAdmin
from notifyq.pacing.calls import (
    US,
    Answer,
    LeaseCall,
    Mode,
    PaceCall,
    ReleaseCall,
    ScriptTuning,
    Send,
    read_answers,
    to_us,
)
from notifyq.pacing.scripts import LEASE_LUA, PACE_LUA, RELEASE_LUA
from notifyq.pacing.senders import AccountLimits, account_limits, schedule_for
from notifyq.pacing.types import LANES, Grant, PacerTuning, Reservation, Wait, still_to_book

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from notifyq.settings import Settings

_HOLD_ROUNDS: Final = 3  # reserve_many: calls at most, when the waits between them are held in process
_SKEW_CREEP_S: Final = 1e-5


class Pacer:
    """Shared sender pacing and account concurrency; cheap to build, one per process is enough."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        tuning: PacerTuning | None = None,
        limits: Callable[[str], AccountLimits] | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        # an account's limits by SID: the settings' by default; the worker hands in its account resolver's
        self.limits = limits or partial(account_limits, settings)
        self.tuning = tuning or PacerTuning()
        self.jitter_s = self.tuning.jitter_s if self.tuning.jitter_s is not None else settings.pacing.arrival_jitter_s
        self.admin = PacingAdmin(redis, settings, limits=self.limits)
        self._script_tuning = ScriptTuning.resolve(self.tuning, settings, jitter_s=self.jitter_s)
        self._pace = redis.register_script(PACE_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._lease = redis.register_script(LEASE_LUA)
        self.calls = 0  # pace.lua calls made (reserve_many, redeem_many), for metrics and tests
        self._skew = float("inf")

    def _offset(self, redis_now_us: int) -> float:
        """The difference of this clock and Redis' clock, from a reply that carried Redis' time.

        The smallest difference seen is the one whose reply came back fastest: it is kept (creeping up
        by ``_SKEW_CREEP_S`` a reply, to follow a clock that drifts), so a reply that waited in a busy event loop
        does not make its grant look more recent than it is.
        """
        seen = time.time() - redis_now_us / US
        self._skew = min(seen, self._skew + _SKEW_CREEP_S)
        return self._skew

    def _local(self, answer: Answer, now: float | None) -> float:
        """An answer's time on this process' clock (a simulated clock, ``now``, needs no translation)."""
        return answer.at_us / US + (0.0 if now is not None else self._offset(answer.redis_now_us))

    def _call(
        self,
        mode: Mode,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        sends: list[Send],
        lane: str,
        flow: str | None,
        now: float | None,
        lead_s: float,
        punctual: bool,
    ) -> PaceCall:
        limits = self.limits(account_sid)
        return PaceCall(
            mode=mode,
            account_sid=account_sid,
            schedule=schedule_for(
                self.settings,
                account_sid=account_sid,
                sender=sender,
                kind=sender_kind,
                channel=channel,
                limits=limits,
            ),
            max_in_flight=limits.max_in_flight,
            tuning=self._script_tuning,
            sends=sends,
            fresh=secrets.token_hex(8),
            lane=lane,
            flow=flow or "",
            now_us=None if now is None else to_us(now),
            lead_us=to_us(lead_s),
            punctual=punctual,
        )

    async def _run(self, call: PaceCall) -> list[Answer]:
        self.calls += 1
        reply = await self._pace(keys=call.keys(), args=call.argv())
        return read_answers(reply, indexed=call.mode is Mode.RESERVE)

    async def reserve_many(
        self,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        asks: Sequence[tuple[str, int]],
        lane: str = "bulk",
        flow: str | None = None,
        lead_s: float = 0.0,
        now: float | None = None,
    ) -> tuple[list[Reservation], Wait | None]:
        """Book sender slots for many sends, (job id, cost) each; no lease is taken yet.

        Each slot is at least ``lead_s`` ahead (the time the caller needs before it can send: its
        claims), so the caller claims its deliveries, waits in process until each slot and then
        ``redeem_many``: the grant comes right before the request, with nothing in between. The first
        ask is decided first (it may hold a place in line); the others are booked in the order that
        packs the sender's window best (``lua/pace.lua``), so the reservations come back in that
        order. The ``Wait`` (None when every ask has a slot) is for the ask named by its ``job_id``; it
        and the others without a slot come back then, the waiting one first (``still_to_book``). One
        script call, and up to two more after a wait short enough to hold in process (``hold_s``: a
        turn at a full account comes in milliseconds).
        """
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; expected one of {sorted(LANES)}")
        if any(cost < 1 for _, cost in asks):
            raise ValueError("cost is at least one segment")
        if not asks:
            return [], None
        reservations: list[Reservation] = []
        wait: Wait | None = None
        todo = list(asks)
        for held in range(_HOLD_ROUNDS):
            call = self._call(
                Mode.RESERVE,
                account_sid=account_sid,
                sender=sender,
                sender_kind=sender_kind,
                channel=channel,
                sends=[Send(job_id, cost) for job_id, cost in todo],
                lane=lane,
                flow=flow,
                now=now,
                lead_s=lead_s,
                punctual=held > 0,
            )
            wait = None
            got: list[Reservation] = []
            for answer in await self._run(call):
                job_id, cost = todo[answer.send]
                if answer.kind == "R":
                    got.append(Reservation(job_id, cost, answer.token, self._local(answer, now)))
                else:
                    until = self._local(answer, now)
                    wait = Wait(until=until, reason=answer.reason, reserved=answer.token or None, job_id=job_id)
            reservations += got
            if wait is None or now is not None or wait.reserved is None:
                return reservations, wait
            pause = wait.until - time.time()
            if pause > self.tuning.hold_s:
                return reservations, wait
            await asyncio.sleep(max(pause, 0.0))
            todo = still_to_book(todo, got, wait)
        return reservations, wait

    async def redeem_many(
        self,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        held: Sequence[Reservation],
        lane: str = "bulk",
        flow: str | None = None,
        now: float | None = None,
    ) -> list[Grant | Wait]:
        """Turn reservations that have come due into grants (with their leases), in one script call.

        Each answer is a ``Grant``, or a ``Wait`` whose ``reserved`` token is redeemed at its ``until``
        (the slot is not reached yet; it passed, and a new one was booked at the head of the lane; or
        the account is full). ``Wait.reserved`` is None only when no slot is kept (a paused account).
        """
        if not held:
            return []
        call = self._call(
            Mode.REDEEM,
            account_sid=account_sid,
            sender=sender,
            sender_kind=sender_kind,
            channel=channel,
            sends=[Send(r.job_id, r.cost, r.token) for r in held],
            lane=lane,
            flow=flow,
            now=now,
            lead_s=0.0,
            punctual=True,
        )
        answers: list[Grant | Wait] = []
        for answer in await self._run(call):
            at = self._local(answer, now)
            if answer.kind == "G":
                answers.append(Grant(answer.token, at, loose=answer.loose))
            else:
                answers.append(Wait(until=at, reason=answer.reason, reserved=answer.token or None))
        return answers

    async def release_many(
        self, leases: Sequence[tuple[Grant, bool]], *, account_sid: str, now: float | None = None
    ) -> None:
        """Give many leases of one account back, (grant, throttled) each, in one script call.

        A throttled answer (429/20429) halves the account's in-flight cap, once per round trip.
        """
        if not leases:
            return
        call = ReleaseCall(
            account_sid=account_sid,
            max_in_flight=self.limits(account_sid).max_in_flight,
            tuning=self._script_tuning,
            leases=[(grant.lease, throttled) for grant, throttled in leases],
            now_us=None if now is None else to_us(now),
        )
        await self._release(keys=call.keys(), args=call.argv())

    async def release(self, grant: Grant, *, account_sid: str, throttled: bool, now: float | None = None) -> None:
        """Give one lease back; ``throttled`` (429/20429) halves the account's in-flight cap."""
        await self.release_many([(grant, throttled)], account_sid=account_sid, now=now)

    async def lease(self, account_sid: str, *, wait_s: float = 0.0) -> Grant | Wait:
        """A lease on the account for a REST request that sends nothing (a look-up, a fetch): no sender slot.

        It counts against the account's requests in flight as a send's does. A full account's turn is
        waited for in process while it comes within ``wait_s``; a paused account is not waited for.
        Give the lease back with ``release`` or ``release_many``.
        """
        deadline = time.time() + wait_s
        while True:
            call = LeaseCall(
                account_sid=account_sid,
                max_in_flight=self.limits(account_sid).max_in_flight,
                tuning=self._script_tuning,
                fresh=secrets.token_hex(8),
            )
            (answer,) = read_answers(await self._lease(keys=call.keys(), args=call.argv()), indexed=False)
            at = self._local(answer, None)
            if answer.kind == "G":
                return Grant(lease=answer.token, granted_at=at)
            wait = Wait(until=at, reason=answer.reason, reserved=None)
            if wait.reason.startswith("account paused") or wait.until > deadline:
                return wait
            await asyncio.sleep(max(wait.until - time.time(), 0.0))
