"""A send's turn at the pacer: held reservations redeemed at their slot, together when due together, never stale."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest

from notifyq.pacing import Grant, PacerTuning, Reservation, Wait
from notifyq.worker.prepared import PreparedBatch
from notifyq.worker.turns import MAX_HELD_ROUNDS, NoTurn, Redeemer, Releases, Turn


class FakePacer:
    """Answers redeem_many from a script of answer makers, one per held reservation, and records calls."""

    def __init__(self, answers: Callable[[Reservation, int], Grant | Wait]) -> None:
        self.tuning = PacerTuning()
        self.jitter_s = 0.03
        self.answers = answers
        self.calls: list[tuple[float, list[Reservation]]] = []
        self.released: list[Grant] = []

    async def redeem_many(self, *, held: Sequence[Reservation], **_: Any) -> list[Grant | Wait]:
        self.calls.append((time.time(), list(held)))
        return [self.answers(h, len(self.calls)) for h in held]

    async def release_many(self, leases: Sequence[tuple[Grant, bool]], **_: Any) -> None:
        self.released += [g for g, _ in leases]


def batch() -> PreparedBatch:
    row = SimpleNamespace(id="b1", priority="bulk", channel=SimpleNamespace(value="sms"))
    fake = SimpleNamespace(
        row=row, account=SimpleNamespace(account_sid="AC1"), pace_key="S", pace_kind="long_code", channel=row.channel
    )
    return cast("PreparedBatch", fake)


def fresh(_: Reservation, __: int) -> Grant:
    return Grant(lease="l", granted_at=time.time())


def redeemer(pacer: FakePacer) -> Redeemer:
    return Redeemer(pacer, batch())  # type: ignore[arg-type]


async def test_a_reservation_is_redeemed_at_its_slot() -> None:
    pacer = FakePacer(fresh)
    at = time.time() + 0.05
    grant = await redeemer(pacer).take(Reservation("d1", 1, "t1", at))
    assert isinstance(grant, Grant)
    (called, held), *_ = pacer.calls
    assert called >= at - pacer.tuning.early_s
    assert [h.job_id for h in held] == ["d1"]


async def test_reservations_due_together_share_one_call() -> None:
    pacer = FakePacer(fresh)
    r = redeemer(pacer)
    at = time.time() + 0.02
    grants = await asyncio.gather(*(r.take(Reservation(f"d{i}", 1, f"t{i}", at)) for i in range(5)))
    assert len(grants) == 5
    assert len(pacer.calls) == 1
    assert len(pacer.calls[0][1]) == 5


async def test_a_grant_that_reaches_a_stalled_process_late_is_given_back_and_taken_again() -> None:
    def answers(_: Reservation, call: int) -> Grant:
        # the first grant was made a second ago: the process was stalled since (longer than the jitter)
        return Grant(lease=f"l{call}", granted_at=time.time() - (1.0 if call == 1 else 0.0))

    pacer = FakePacer(answers)
    grant = await redeemer(pacer).take(Reservation("d1", 1, "t1", time.time()))
    assert grant.lease == "l2"
    assert [g.lease for g in pacer.released] == ["l1"]  # its lease went back; the slot stays used
    assert len(pacer.calls) == 2


@pytest.mark.parametrize(("loose", "age", "used"), [(True, 0.1, True), (True, 0.5, False), (False, 0.1, False)])
async def test_a_late_grant_is_used_only_on_a_sender_far_from_its_rate(loose: bool, age: float, used: bool) -> None:
    """A grant 0.1 s old is stale where the window may be full; far from the rate it goes out (up to LOOSE_S)."""

    def answers(_: Reservation, call: int) -> Grant:
        return Grant(lease=f"l{call}", granted_at=time.time() - (age if call == 1 else 0.0), loose=loose)

    pacer = FakePacer(answers)
    grant = await redeemer(pacer).take(Reservation("d1", 1, "t1", time.time()))
    assert (grant.lease == "l1") is used
    assert [g.lease for g in pacer.released] == ([] if used else ["l1"])


async def test_a_paused_account_hands_the_send_back() -> None:
    pacer = FakePacer(lambda _h, _c: Wait(until=time.time() + 5, reason="account paused: 20003", reserved="t1"))
    with pytest.raises(NoTurn, match="account paused"):
        await redeemer(pacer).take(Reservation("d1", 1, "t1", time.time()))
    assert len(pacer.calls) == 1


async def test_a_send_that_never_gets_its_turn_is_handed_back_after_a_bounded_number_of_tries() -> None:
    def later(held: Reservation, _: int) -> Wait:
        return Wait(until=time.time() + 0.001, reason="account in-flight cap 1 reached", reserved=held.token)

    pacer = FakePacer(later)
    with pytest.raises(NoTurn, match="still waiting"):
        await redeemer(pacer).take(Reservation("d1", 1, "t1", time.time()))
    assert len(pacer.calls) == MAX_HELD_ROUNDS


async def test_a_turn_without_a_booked_slot_is_refused_not_taken_unpaced() -> None:
    pacer = FakePacer(fresh)
    turn = Turn(redeemer(pacer), None, Releases(pacer, "AC1"), None)  # type: ignore[arg-type]
    with pytest.raises(NoTurn, match="no sender slot"):
        await turn.take()
    assert pacer.calls == []
    assert turn.grant is None
