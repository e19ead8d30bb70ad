"""A send's turn at the pacer, and the pacer's calls shared by the sends of one process.

A send books its sender slot ahead (``Pacer.reserve_many``, a ``Reservation``), waits in process
until the slot comes, and redeems it right before its request (``Pacer.redeem_many``: a ``Grant``
with an account lease); once Twilio has answered, the lease goes back (``Pacer.release_many``).
Sends come due together, and answers come back together, so these calls are shared:

* ``Redeemer``: one batch's reservations that come due in the same turn of the event loop are
  redeemed in one script call;
* ``Releases``: one account's leases are given back in one script call per ``RELEASE_LINGER_S``;
* ``Turn``: one send's part in both, and its send permit, given back once whatever happens;
* ``Turns``: a process's redeemers (per batch) and releases (per account), and each send's turn.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Final

from notifyq.pacing import LOOSE_S, Grant, Pacer, Reservation, Wait
from notifyq.worker.permits import Permits
from notifyq.worker.prepared import PreparedBatch

RELEASE_LINGER_S: Final = 0.002  # answers that arrive this close together give their leases back in one call
MAX_HELD_ROUNDS: Final = 8  # a held reservation that still cannot go after this many redeems is handed back
REDEEMERS_KEPT: Final = 256  # batches whose redeemer is kept (the latest used)


def fresh(grant: Grant, jitter_s: float) -> bool:
    """Whether a grant may still be used: its request can reach Twilio within the time its slot allows."""
    age = time.time() - grant.granted_at
    return age <= jitter_s / 2 or (grant.loose and age <= LOOSE_S)


class NoTurn(Exception):
    """A held reservation did not become a grant: the account is paused, or the wait ran too long."""

    def __init__(self, reason: str, until: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


class Turn:
    """One send's turn at its sender and account: the slot booked for it, redeemed right before the request.

    ``done`` gives the lease (if one was granted) and the send permit back, once.
    """

    __slots__ = ("closed", "grant", "held", "permits", "redeemer", "releases")

    def __init__(
        self, redeemer: Redeemer, held: Reservation | None, releases: Releases, permits: Permits | None
    ) -> None:
        self.redeemer = redeemer
        self.held = held
        self.releases = releases
        self.permits = permits
        self.grant: Grant | None = None
        self.closed = False

    async def take(self) -> None:
        """Wait for the slot and redeem it (raises ``NoTurn`` when it does not come)."""
        if self.grant is not None:
            return
        if self.held is None:  # nothing goes unpaced: a send without a slot is handed back to book one
            raise NoTurn("no sender slot was booked for this send", time.time())
        self.grant = await self.redeemer.take(self.held)

    def done(self, *, throttled: bool = False) -> None:
        """Give the lease and the permit back (``throttled``: Twilio answered 429, the account's cap goes down)."""
        if not self.closed:
            self.closed = True
            self.releases.add(self.grant, throttled=throttled, permits=self.permits)


class Redeemer:
    """Redeems one batch's held reservations as they come due; those due together share one script call."""

    def __init__(self, pacer: Pacer, batch: PreparedBatch) -> None:
        self.pacer = pacer
        self.batch = batch
        self.pending: list[tuple[Reservation, asyncio.Future[Grant | Wait]]] = []
        self.flushing: set[asyncio.Task[None]] = set()

    async def take(self, held: Reservation) -> Grant:
        """Wait until the slot, then redeem; a slot missed or an account full means a later one, in turn."""
        early = self.pacer.tuning.early_s
        answer: Grant | Wait | None = None
        for _ in range(MAX_HELD_ROUNDS):
            pause = held.at - early - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            answer = await self._redeem(held)
            if isinstance(answer, Grant):
                if fresh(answer, self.pacer.jitter_s):
                    return answer
                # late by more than this process' half of the schedule's jitter, near the sender's rate: the
                # slot stays used and the send takes a new one. A loose grant (far from the rate) cannot
                # overfill a second, so it goes unless very late: asking again would load the worker more
                await self.pacer.release_many([(answer, False)], account_sid=self.batch.account.account_sid)
                held = Reservation(held.job_id, held.cost, held.token, time.time())
                continue
            if answer.reserved is None or answer.reason.startswith("account paused"):
                raise NoTurn(answer.reason, answer.until)
            held = Reservation(held.job_id, held.cost, answer.reserved, answer.until)
        reason = answer.reason if isinstance(answer, Wait) else "no slot"
        raise NoTurn(f"still waiting after {MAX_HELD_ROUNDS} turns: {reason}", held.at)

    def _redeem(self, held: Reservation) -> asyncio.Future[Grant | Wait]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Grant | Wait] = loop.create_future()
        self.pending.append((held, fut))
        if len(self.pending) == 1:
            task = loop.create_task(self._flush())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)
        return fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the others whose slot came in this turn of the loop join the call
        due, self.pending = self.pending, []
        batch = self.batch
        try:
            answers = await self.pacer.redeem_many(
                account_sid=batch.account.account_sid,
                sender=batch.pace_key,
                sender_kind=batch.pace_kind,
                channel=batch.channel.value,
                held=[held for held, _ in due],
                lane=batch.row.priority,
                flow=batch.row.id,
            )
        except Exception as exc:  # noqa: BLE001 - every waiting send gets the error
            for _, fut in due:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), answer in zip(due, answers, strict=True):
            if not fut.done():
                fut.set_result(answer)


class Releases:
    """Gives an account's leases back in batches: one script call per ``RELEASE_LINGER_S`` at most.

    The send permit of each goes back at once (it is this process' own budget).
    """

    def __init__(self, pacer: Pacer, account_sid: str) -> None:
        self.pacer = pacer
        self.account_sid = account_sid
        self.pending: list[tuple[Grant, bool]] = []
        self.flushing: set[asyncio.Task[None]] = set()

    def add(self, grant: Grant | None, *, throttled: bool, permits: Permits | None) -> None:
        """Give ``grant``'s lease back soon, and one of ``permits`` now."""
        if permits is not None:
            permits.give(1)
        if grant is None:
            return
        self.pending.append((grant, throttled))
        if len(self.pending) == 1:
            task = asyncio.get_running_loop().create_task(self._flush_soon())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(RELEASE_LINGER_S)
        batch, self.pending = self.pending, []
        await self.pacer.release_many(batch, account_sid=self.account_sid)

    async def flush(self) -> None:
        """Wait until every lease added so far has been given back.

        A lease still pending belongs to a task that exists already: the one that will take it.
        """
        await asyncio.gather(*list(self.flushing))


class Turns:
    """The turns of one process' sends: a ``Redeemer`` per batch (the latest used kept), ``Releases`` per account."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer
        self._releases: dict[str, Releases] = {}
        self._redeemers: OrderedDict[str, Redeemer] = OrderedDict()

    def turn(self, batch: PreparedBatch, held: Reservation | None, permits: Permits | None) -> Turn:
        """The turn of a send of ``batch`` that booked ``held`` (None: none yet) and holds one of ``permits``."""
        return Turn(self._redeemer(batch), held, self.releases(batch.account.account_sid), permits)

    def releases(self, account_sid: str) -> Releases:
        """The account's lease releases."""
        found = self._releases.get(account_sid)
        if found is None:
            found = self._releases[account_sid] = Releases(self.pacer, account_sid)
        return found

    def _redeemer(self, batch: PreparedBatch) -> Redeemer:
        found = self._redeemers.pop(batch.row.id, None) or Redeemer(self.pacer, batch)
        self._redeemers[batch.row.id] = found
        while len(self._redeemers) > REDEEMERS_KEPT:
            self._redeemers.popitem(last=False)
        return found
