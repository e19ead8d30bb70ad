"""Held reservations, what the worker does: book slots ahead, claim, redeem each at its slot, send at once."""

from __future__ import annotations

import pytest
from pacing_helpers import ACCOUNT_SID, ARQ_LATE, WIDE, leases, make_settings, redeem, reserve
from redis.asyncio import Redis

from notifyq.pacing import Grant, Pacer, PacerTuning, Reservation, Wait, still_to_book


async def test_reserve_books_slots_ahead_without_leases_and_redeem_grants_them(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=500))
    held, wait = await reserve(pacer, 10.0, [(f"d{i}", 1) for i in range(20)], lead_s=0.03)
    assert wait is None
    assert len(held) == 20
    assert all(r.at >= 10.03 for r in held)  # at least the lead ahead: time for the claims
    assert [r.job_id for r in held] == [f"d{i}" for i in range(20)]
    assert await leases(rdb) == 0  # nothing is in flight before it is redeemed
    answers = await redeem(pacer, max(r.at for r in held), held)
    assert all(isinstance(a, Grant) for a in answers)
    assert await leases(rdb) == 20
    assert pacer.calls == 2  # one call to book the wave, one to redeem it


async def test_a_wave_reads_the_shared_state_once_per_call(rdb: Redis) -> None:
    # the pause, the rate override, the schedule's and the account's state are read once per script call
    # and the schedule written once: what each further send of a wave costs is its own booking
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=500))

    async def commands() -> int:
        stats = await rdb.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))

    costs = {}
    for n in (10, 50):
        await rdb.config_resetstat()
        held, wait = await reserve(pacer, 10.0 * n, [(f"{n}-{i}", 1) for i in range(n)], lead_s=0.03)
        booked = await commands()
        answers = await redeem(pacer, max(r.at for r in held), held)
        assert wait is None
        assert all(isinstance(a, Grant) for a in answers)
        costs[n] = (booked, await commands() - booked)
    per_send = [(costs[50][k] - costs[10][k]) / 40 for k in (0, 1)]
    # a further send costs its own commands, not the shared state's again
    assert per_send[0] <= 11  # reserve: the clock, the flow's tag, the line, the slot, the reservation, ...
    assert per_send[1] <= 6  # redeem: the clock, its reservation, the lease, the held set, the job key


async def test_one_many_call_reads_the_clock_once(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=500))
    await rdb.config_resetstat()
    held, wait = await pacer.reserve_many(
        account_sid=ACCOUNT_SID,
        sender="S",
        sender_kind="long_code",
        channel="sms",
        asks=[(f"d{i}", 1) for i in range(5)],
    )
    assert wait is None
    assert len(held) == 5
    stats = await rdb.info("commandstats")
    assert stats["cmdstat_time"]["calls"] == 1


async def test_a_held_reservation_redeemed_early_waits_and_redeemed_late_is_booked_again(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1.0}))
    (first,), _ = await reserve(pacer, 0.0, [("a", 1)])
    assert first.at == pytest.approx(0.02)
    (second,), wait = await reserve(pacer, 0.0, [("b", 1)])
    assert wait is None  # within the horizon of a 1/s sender (two segments): reserved
    assert second.at > first.at + 1.0
    (granted,) = await redeem(pacer, first.at + 0.005, [first])
    assert isinstance(granted, Grant)
    (early,) = await redeem(pacer, second.at - 0.5, [second])
    assert isinstance(early, Wait)
    assert early.reason == "sender paced: reserved slot not reached"
    assert early.until == pytest.approx(second.at)
    assert early.reserved is not None
    assert early.reserved.rsplit(":", 1)[1] == second.token.rsplit(":", 1)[1]  # the same reservation
    # b comes back 0.3 s after its slot (beyond the 8 ms tolerance): the slot is gone, a new one is booked
    (late,) = await redeem(pacer, second.at + 0.3, [second])
    assert isinstance(late, Wait)
    assert late.reserved is not None
    assert late.until > second.at + 0.3
    (again,) = await redeem(pacer, late.until, [Reservation("b", 1, late.reserved, late.until)])
    assert isinstance(again, Grant)


async def test_a_chunk_books_next_the_send_that_fits_first(rdb: Redis) -> None:
    """K = 5 segments in a window W of 1.048 s (interval W / 5). Booked in the order asked, the second
    three-segment send must wait a window after the first and the two-segment one waits behind it; the
    pacer books the two-segment send in between instead."""
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=WIDE)
    window = 1 + pacer.tuning.early_s + pacer.tuning.late_s + pacer.jitter_s
    assert window == pytest.approx(1.048)
    held, wait = await reserve(pacer, 0.0, [("x0", 3), ("x1", 3), ("x2", 2)])
    assert wait is None
    assert [(r.job_id, r.cost) for r in held] == [("x0", 3), ("x2", 2), ("x1", 3)]
    assert [r.at for r in held] == pytest.approx([0.02, 0.02 + 3 * window / 5, 0.02 + window], abs=1e-5)
    # every reservation is the ask's own: redeemed under its job id, each is granted at its slot
    for r in held:
        (answer,) = await redeem(pacer, r.at, [r])
        assert isinstance(answer, Grant)


async def test_the_send_that_fits_first_takes_the_waiting_ask_s_place_in_line(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}))
    line = "notifyq:pace:snd:S:line"
    (a,), wait = await reserve(pacer, 0.0, [("a", 3), ("b", 3)])
    assert a.job_id == "a"
    assert isinstance(wait, Wait)
    assert wait.job_id == "b"  # b's turn is a window later, beyond the horizon: it waits in line
    assert await rdb.zcard(line) == 1
    assert still_to_book([("a", 3), ("b", 3)], [a], wait) == [("b", 3)]
    # back with a one-segment send c: c fits now, b only a window after a
    got, again = await reserve(pacer, 0.55, [("b", 3), ("c", 1)])
    assert [(r.job_id, r.at) for r in got] == [("c", pytest.approx(0.57))]  # now + lead (the burst allows it)
    assert isinstance(again, Wait)
    assert again.job_id == "b"
    assert await rdb.zcard(line) == 1  # c took b's place; b has one new place, not two
    assert still_to_book([("b", 3), ("c", 1), ("d", 2)], got, again) == [("b", 3), ("d", 2)]


async def test_an_ask_holding_a_reservation_keeps_it_and_goes_first(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=WIDE)
    (a,), _ = await reserve(pacer, 0.0, [("a", 3)])
    # the chunk runs again before its reservation was redeemed (a worker died): a keeps its slot
    held, wait = await reserve(pacer, 0.01, [("a", 3), ("c", 1)])
    assert wait is None
    assert [(r.job_id, r.token, r.at) for r in held[:1]] == [("a", a.token, a.at)]
    assert [r.job_id for r in held] == ["a", "c"]


def test_still_to_book_puts_the_waiting_ask_first() -> None:
    asks = [("a", 1), ("b", 2), ("c", 3), ("d", 1)]
    booked = [Reservation("c", 3, "t", 1.0)]
    assert still_to_book(asks, booked, None) == [("a", 1), ("b", 2), ("d", 1)]
    wait = Wait(until=2.0, reason="sender paced: waiting in line", reserved="q", job_id="d")
    assert still_to_book(asks, booked, wait) == [("d", 1), ("a", 1), ("b", 2)]


async def test_a_sender_far_from_its_rate_grants_loosely_and_takes_a_late_redeem_on_its_own_slot(
    rdb: Redis,
) -> None:
    fast = Pacer(rdb, make_settings(senders={"S": 1000.0}))
    held, _ = await reserve(fast, 0.0, [(f"d{i}", 1) for i in range(10)])
    # redeemed 0.1 s late (beyond the 8 ms tolerance): 10 segments booked of 1,000 a second
    answers = await redeem(fast, held[-1].at + 0.1, held)
    assert all(isinstance(a, Grant) and a.loose for a in answers)
    assert fast.calls == 2  # nothing booked again


async def test_a_sender_near_its_rate_grants_strictly(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=WIDE)
    held, _ = await reserve(pacer, 0.0, [("a", 1), ("b", 1), ("c", 1)])
    (first,) = await redeem(pacer, held[0].at, held[:1])
    assert isinstance(first, Grant)
    assert not first.loose  # 3 segments booked for 5 a second: a late request could fill a second
    (late,) = await redeem(pacer, held[1].at + 0.1, held[1:2])
    assert isinstance(late, Wait)  # redeemed late: booked again, not granted on the old slot
    assert late.reason == "sender paced: slot reserved"


async def test_reserve_many_moves_its_flows_finish_tag_once_per_send(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=500))
    held, wait = await reserve(pacer, 10.0, [(f"d{i}", 1) for i in range(3)] + [("big", 2)], flow="f")
    assert wait is None
    assert len(held) == 4
    flows = await rdb.hgetall("notifyq:pace:snd:S:flows")
    assert flows == {b"bulk:f": b"5"}  # 1 + 1 + 1 + 2 segments, written when the call ends
    held, _ = await reserve(pacer, 10.1, [("e0", 1)], flow="g")
    assert len(held) == 1
    flows = await rdb.hgetall("notifyq:pace:snd:S:flows")
    assert flows[b"bulk:f"] == b"5"
    assert int(flows[b"bulk:g"]) >= 1  # a new flow starts level with the line's virtual time
    assert await rdb.zcard("notifyq:pace:snd:S:line") == 0  # no place left behind in the line


async def test_reserve_many_validates_its_asks(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings())
    with pytest.raises(ValueError, match="segment"):
        await reserve(pacer, 0.0, [("d", 0)])
    with pytest.raises(ValueError, match="lane"):
        await reserve(pacer, 0.0, [("d", 1)], lane="vip")
    assert await reserve(pacer, 0.0, []) == ([], None)
    assert (
        await pacer.redeem_many(account_sid=ACCOUNT_SID, sender="S", sender_kind="long_code", channel="sms", held=[])
        == []
    )
    await pacer.release_many([], account_sid=ACCOUNT_SID)  # nothing to give back: no call
    assert pacer.calls == 0


async def test_a_late_send_takes_a_current_slot_of_its_cost(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}), tuning=ARQ_LATE)  # slots 107.5 ms apart
    (first,), _ = await reserve(pacer, 0.0, [("first", 1)], lead_s=0.0)
    (granted,) = await redeem(pacer, 0.0, [first])
    assert isinstance(granted, Grant)
    (a,), _ = await reserve(pacer, 0.0, [("a", 1)], lead_s=0.0)
    (b,), _ = await reserve(pacer, 0.0, [("b", 1)], lead_s=0.0)
    (c,), _ = await reserve(pacer, 0.0, [("c", 2)], lead_s=0.0)
    assert (a.at, b.at) == (pytest.approx(0.1075), pytest.approx(0.215))
    (late_a,) = await redeem(pacer, 0.22, [a])
    assert isinstance(late_a, Grant)  # a is late: b's slot is current, a takes it
    (on_time_c,) = await redeem(pacer, c.at, [c])
    assert isinstance(on_time_c, Grant)
    (late_b,) = await redeem(pacer, 0.4, [b])  # b is late too, and no slot is current: it books again
    assert isinstance(late_b, Wait)
    assert late_b.reason == "sender paced: slot reserved"


async def test_a_reservation_fits_only_its_cost(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 2.0}))
    (one,), _ = await reserve(pacer, 0.0, [("j", 1)], lead_s=0.0)
    grown = Reservation("j", 2, one.token, one.at)  # the message grew: it needs a slot of its own
    (bigger,) = await redeem(pacer, one.at, [grown])
    assert isinstance(bigger, Wait)
    assert bigger.until > one.at


async def test_short_waits_are_held_in_process(rdb: Redis) -> None:
    pacer = Pacer(
        rdb,
        make_settings(senders={"S": 100.0}),
        tuning=PacerTuning(burst_s=0.0, horizon_s=0.005, horizon_segments=0, ahead_s=0.0, hold_s=0.05),
    )
    held, wait = await reserve(pacer, None, [("a", 1), ("b", 1)], lead_s=0.0)
    assert wait is None  # b's slot was beyond the horizon: its turn came in milliseconds, waited for here
    assert [r.job_id for r in held] == ["a", "b"]
    assert pacer.calls == 2
    assert held[1].at - held[0].at > 0.004
