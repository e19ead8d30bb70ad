"""Who gets the next slot: the sender's line, urgent before bulk, a fair share per batch, no herd."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pacing_helpers import (
    ACCOUNT_SID,
    SECOND_US,
    Connect,
    clients,
    fullest_second,
    make_settings,
    redeem,
    reserve,
    simulate_held,
)
from redis.asyncio import Redis

from notifyq.pacing import Grant, Pacer, Wait


def spread(n: int, start: float, within: float, flow: str, rng: random.Random) -> list[tuple[float, list[int], str]]:
    """``n`` jobs of one one-segment send each, arriving within ``within`` seconds of ``start``."""
    return [(start + rng.uniform(0, within), [1], flow) for _ in range(n)]


async def test_a_backlog_waits_in_line_and_comes_back_spread_out(connect: Connect) -> None:
    rng = random.Random(7)
    pacers = [Pacer(c, make_settings(senders={"S": 50.0}, max_in_flight=500)) for c in await clients(connect, 4)]
    run = await simulate_held(
        pacers,
        spread(600, 100.0, 0.5, "f", rng),
        rng,
        arq_lateness=lambda r: r.uniform(0, 0.04),
        held_lateness=lambda r: r.uniform(-0.002, 0.006),
    )
    assert fullest_second(run.arrivals, 50) <= 50
    # a job books, or waits in line once and then books; then it redeems
    assert run.calls_per_message() <= 3.0
    assert max(run.calls_by_chunk.values()) <= 3
    assert run.busiest(0.05, after=100.5) <= 5  # waiting jobs wake a slot apart, never together
    span = (max(run.granted.values()) - min(run.granted.values())) / SECOND_US
    assert span < 600 / 50 / 0.9  # and the sender is kept busy: at least 90 % of its rate


async def test_a_backlog_of_mixed_costs_comes_back_a_bounded_number_of_times(connect: Connect) -> None:
    rng = random.Random(11)
    pacers = [Pacer(c, make_settings(senders={"S": 40.0}, max_in_flight=500)) for c in await clients(connect, 3)]
    chunks = [(100.0 + rng.uniform(0, 0.2), [rng.choice([1, 1, 2, 3])], "f") for _ in range(300)]
    run = await simulate_held(
        pacers,
        chunks,
        rng,
        arq_lateness=lambda r: r.uniform(-0.004, 0.06),
        held_lateness=lambda r: r.uniform(-0.002, 0.006),
    )
    assert fullest_second(run.arrivals, 40) <= 40
    # a 13 s backlog waits in line, not in reservations; with mixed costs the line's estimates run a
    # little early and a job may come back once more before it books
    assert run.calls_per_message() <= 3.5
    assert run.busiest(0.05, after=100.2) <= 8  # returns from the line, second estimates, bookings


async def test_a_slow_worker_pool_is_asked_back_early(connect: Connect) -> None:
    # every job comes back from the line 0.3 s after the time it was given (an overloaded pool)
    rng = random.Random(13)
    settings_ = make_settings(senders={"FAST": 50.0, "SLOW": 3.0}, max_in_flight=500)
    pacers = [Pacer(c, settings_) for c in await clients(connect, 3)]

    def slow(r: random.Random) -> float:
        return 0.3 + r.uniform(0, 0.02)

    def on_time(r: random.Random) -> float:
        return r.uniform(-0.002, 0.006)

    run = await simulate_held(
        pacers, spread(300, 100.0, 0.2, "f", rng), rng, arq_lateness=slow, held_lateness=on_time, sender="FAST"
    )
    fullest_second(run.arrivals, 50)
    assert run.calls_per_message() <= 3.0
    # the pool's lateness is learnt: a sparse sender's jobs are now asked back 0.3 s early
    run = await simulate_held(
        pacers, spread(40, 200.0, 0.2, "f", rng), rng, arq_lateness=slow, held_lateness=on_time, sender="SLOW"
    )
    fullest_second(run.arrivals, 3)
    assert run.calls_per_message() <= 3.0
    span = (max(run.granted.values()) - min(run.granted.values())) / SECOND_US
    assert span < 40 / 3 / 0.9


async def test_a_later_flow_shares_the_sender_instead_of_waiting_behind_a_backlog(connect: Connect) -> None:
    rng = random.Random(17)
    pacers = [Pacer(c, make_settings(senders={"S": 50.0}, max_in_flight=500)) for c in await clients(connect, 3)]
    chunks = spread(500, 100.0, 0.3, "large", rng) + spread(40, 102.0, 0.05, "small", rng)
    run = await simulate_held(
        pacers, chunks, rng, arq_lateness=lambda r: r.uniform(0, 0.04), held_lateness=lambda r: r.uniform(0, 0.006)
    )
    fullest_second(run.arrivals, 50)
    # the large batch had ~10 s booked or waiting when the small one came: the small one gets half the
    # sender (a fair share of two flows), so its 40 messages take ~1.7 s, not ~10 s
    done = run.done("small")
    assert done < 102.0 + 0.5 + 2 * 40 / 46.5 + 0.5, done
    # ... and it is a share, not a takeover: the large batch keeps going meanwhile, about one for one
    meanwhile = run.granted_between("large", 102.0, done)
    assert 25 <= meanwhile <= 75, meanwhile
    assert run.calls_per_message() <= 4.0
    assert max(n for chunk, n in run.calls_by_chunk.items() if chunks[chunk][2] == "small") <= 4
    assert run.busiest(0.05, after=102.1) <= 10  # the reshuffled line comes back spread out, not as a herd
    span = (max(run.granted.values()) - min(run.granted.values())) / SECOND_US
    assert span < 540 / 50 / 0.9  # sharing costs the sender no throughput


async def test_flows_interleave_from_the_start(connect: Connect) -> None:
    rng = random.Random(19)
    pacers = [Pacer(c, make_settings(senders={"S": 20.0}, max_in_flight=500)) for c in await clients(connect, 2)]
    chunks = [chunk for flow in ("a", "b", "c") for chunk in spread(60, 10.0, 0.2, flow, rng)]
    rng.shuffle(chunks)
    run = await simulate_held(
        pacers, chunks, rng, arq_lateness=lambda r: r.uniform(0, 0.04), held_lateness=lambda r: r.uniform(0, 0.006)
    )
    fullest_second(run.arrivals, 20)
    order = run.order()
    for k in range(30, len(order), 30):  # every prefix is shared about evenly between the three batches
        counts = Counter(order[:k])
        assert max(counts.values()) - min(counts.values()) <= 6, (k, counts)
    assert run.calls_per_message() <= 3.5


async def test_urgent_jobs_get_the_next_slots_before_waiting_bulk_ones(connect: Connect) -> None:
    rng = random.Random(23)
    pacers = [Pacer(c, make_settings(senders={"S": 50.0}, max_in_flight=500)) for c in await clients(connect, 3)]
    chunks = spread(400, 100.0, 0.3, "bulk", rng) + spread(10, 103.0, 0.05, "u", rng)
    run = await simulate_held(
        pacers, chunks, rng, arq_lateness=lambda r: r.uniform(0, 0.04), held_lateness=lambda r: r.uniform(0, 0.006)
    )
    fullest_second(run.arrivals, 50)
    # bulk has ~5 s waiting; the urgent jobs only wait for the slots already booked (the short horizon)
    done = run.done("u")
    assert done < 103.05 + 0.5 + 10 / 46.5 + 0.15, done
    assert run.granted_between("bulk", 103.0, done) <= 0.5 * 50 + 5  # only bulk jobs that held reservations
    assert max(n for chunk, n in run.calls_by_chunk.items() if chunks[chunk][2] == "u") <= 3
    assert run.busiest(0.05, after=103.1) <= 10
    assert run.calls_per_message() <= 3.0


async def test_urgent_jobs_on_a_slow_sender_wait_only_for_booked_slots(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1.0}))
    answers = [await reserve(pacer, 0.0, [(f"b{n}", 1)], lead_s=0.0) for n in range(20)]
    assert answers[0][0]  # the first has its slot
    waiting = [w for _, w in answers if isinstance(w, Wait) and w.reason == "sender paced: waiting in line"]
    assert len(waiting) >= 15  # only two segments' worth of slots are booked ahead on a slow sender
    assert max(w.until for w in waiting) > 15.0
    booked, urgent = await reserve(pacer, 0.0, [("u", 1)], lead_s=0.0, lane="urgent")
    assert booked == []
    assert isinstance(urgent, Wait)
    booked_at = [r.at for booked_now, _ in answers for r in booked_now]
    # after the slots booked already, and no later than the first of the bulk jobs waiting in line
    assert max(booked_at) < urgent.until <= min(w.until for w in waiting), (booked_at, urgent)
    with pytest.raises(ValueError, match="lane"):
        await reserve(pacer, 0.0, [("v", 1)], lane="vip")


@pytest.mark.parametrize("first", ["big", "small"])
async def test_a_full_account_is_shared_in_fair_order(rdb: Redis, first: str) -> None:
    """Sends waiting for a full account take turns by batch, not by when they started waiting."""
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=1))
    (lease, _ready), _ = await reserve(pacer, 0.0, [("x", 1), ("y", 1)], flow="x")
    (grant,) = await redeem(pacer, lease.at, [lease])
    assert isinstance(grant, Grant)  # one in flight, one held ready: the account is spoken for
    # a big batch queues 6 sends for the full account; a small one arrives after them
    waiting = [f"big{i}" for i in range(6)] + ["small0", "small1"]
    if first == "small":
        waiting = waiting[6:] + waiting[:6]
    for job in waiting:
        got, wait = await reserve(pacer, 0.1, [(job, 1)], flow=job.rstrip("0123456789"))
        assert got == []
        assert isinstance(wait, Wait)
    # the lease goes back: from now on one send at a time, each to the head of the fair order
    await pacer.release_many([(grant, False)], account_sid=ACCOUNT_SID, now=0.2)
    order = []
    t = 0.2
    for _ in range(8):
        for job in waiting:
            if job in order:
                continue
            got, _ = await reserve(pacer, t, [(job, 1)], flow=job.rstrip("0123456789"))
            if got:
                order.append(job)
                (g,) = await redeem(pacer, got[0].at, got)
                assert isinstance(g, Grant)
                t = got[0].at + 0.01
                await pacer.release_many([(g, False)], account_sid=ACCOUNT_SID, now=t)
                break
    assert len(order) == 8
    # the small batch is not held behind the big one's six: its two go within the first four
    assert max(order.index("small0"), order.index("small1")) < 4, order
