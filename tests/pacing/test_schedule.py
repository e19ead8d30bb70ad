from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from redis.asyncio import Redis

from notifyq.pacing.pacer import (
    ACQUIRE_LUA,
    LOOSE_S,
    Grant,
    Pacer,
    PacerTuning,
    Reservation,
    Wait,
    sender_kind,
    still_to_book,
)
from notifyq.settings import PacingSettings, Settings, TwilioAccount, TwilioSettings, WorkerSettings

SECOND_US = 1_000_000
ACCOUNT_SID = "AC" + "a" * 32
Connect = Callable[[], Awaitable[Redis]]


def make_settings(
    *,
    senders: dict[str, float] | None = None,
    max_in_flight: int = 50,
    calls_per_second: float = 1.0,
    poll_delay_s: float = 0.05,
) -> Settings:
    account = TwilioAccount(
        account_sid=ACCOUNT_SID,
        auth_token=SecretStr("token"),
        max_in_flight=max_in_flight,
        calls_per_second=calls_per_second,
    )
    return Settings(
        twilio=TwilioSettings(accounts={"main": account}),
        pacing=PacingSettings(senders=senders or {}),
        worker=WorkerSettings(poll_delay_s=poll_delay_s),
    )


# -- the simulated world: jobs that call acquire and, on Wait, come back at `until` plus some lateness


@dataclass
class Job:
    ident: str
    arrive: float
    cost: int
    token: str | None = None
    calls: int = 0
    grant: Grant | None = None
    lane: str = "bulk"
    flow: str | None = None

    @property
    def granted_us(self) -> int:
        assert self.grant is not None
        return int(self.grant.lease.split(":")[0])  # Redis-side grant time, exact


@dataclass
class Run:
    jobs: list[Job]
    call_times: list[float]
    waits: Counter[str]
    reach: float  # the furthest ahead a reservation was made, in seconds

    @property
    def grants(self) -> list[tuple[int, int]]:
        return [(j.granted_us, j.cost) for j in self.jobs]

    @property
    def calls_per_message(self) -> float:
        return sum(j.calls for j in self.jobs) / len(self.jobs)

    def busiest(self, bucket_s: float, after: float) -> int:
        """Most acquire calls in one bucket of simulated time, after the arrival burst."""
        buckets = Counter(int(t / bucket_s) for t in self.call_times if t >= after)
        return max(buckets.values(), default=0)


async def simulate(
    pacers: list[Pacer],
    jobs: list[Job],
    *,
    sender: str,
    rng: random.Random,
    lateness: Callable[[random.Random], float],
    kind: str = "long_code",
    by_job_id: bool = False,
    hold_for: float = 0.2,
) -> Run:
    heap: list[tuple[float, int, str, int]] = [(j.arrive, n, "acquire", n) for n, j in enumerate(jobs)]
    heapq.heapify(heap)
    seq = len(heap)
    call_times: list[float] = []
    waits: Counter[str] = Counter()
    reach = 0.0
    while heap:
        t, _, what, n = heapq.heappop(heap)
        job, pacer = jobs[n], rng.choice(pacers)
        if what == "release":
            assert job.grant is not None
            await pacer.release(job.grant, account_sid=ACCOUNT_SID, throttled=False, now=t)
            continue
        job.calls += 1
        call_times.append(t)
        assert job.calls < 50, "a job that keeps coming back is spinning"
        decision = await pacer.acquire(
            account_sid=ACCOUNT_SID,
            sender=sender,
            sender_kind=kind,
            channel="sms",
            cost=job.cost,
            reservation=None if by_job_id else job.token,
            job_id=job.ident if by_job_id else None,
            lane=job.lane,
            flow=job.flow,
            now=t,
        )
        seq += 1
        if isinstance(decision, Grant):
            job.grant = decision
            heapq.heappush(heap, (t + hold_for, seq, "release", n))
        else:
            assert decision.until > t, "a wait must move time forward"
            waits[decision.reason.split(":")[0]] += 1
            if decision.reason == "sender paced: slot reserved":
                reach = max(reach, decision.until - t)
            job.token = decision.reserved
            heapq.heappush(heap, (decision.until + lateness(rng), seq, "acquire", n))
    return Run(jobs, call_times, waits, reach)


def fullest_second(grants: list[tuple[int, int]], limit: int) -> int:
    """The most segments granted in one second; asserts none holds more than ``limit``.

    A message larger than ``limit`` may only be alone in its second. Checking the windows
    ``(t - 1 s, t]`` that end at a grant covers every half-open window ``[a, a + 1 s)``.
    """
    ordered = sorted(grants)
    worst, total, lo = 0, 0, 0
    for hi, (t, cost) in enumerate(ordered):
        total += cost
        while ordered[lo][0] <= t - SECOND_US:
            total -= ordered[lo][1]
            lo += 1
        if hi > lo:  # more than one message in the window: the limit binds
            assert total <= limit, f"{total} segments in the second ending at {t / SECOND_US:.6f}"
        worst = max(worst, total)
    return worst


# Jobs that come back through arq (grant mode, as these simulations do) wake up to a poll delay late:
# their lateness tolerance must cover it (the worker itself holds reservations in process, at 8 ms).
ARQ_LATE: Final = PacerTuning(early_s=0.005, late_s=0.07, jitter_s=0.0)


def pacers_for(settings_: Settings, clients: list[Redis], tuning: PacerTuning | None = None) -> list[Pacer]:
    return [Pacer(c, settings_, tuning=tuning or ARQ_LATE) for c in clients]


async def _clients(connect: Connect, n: int) -> list[Redis]:
    return [await connect() for _ in range(n)]


async def ask(
    pacer: Pacer,
    now: float | None,
    *,
    sender: str = "S",
    cost: int = 1,
    kind: str = "long_code",
    channel: str = "sms",
    account_sid: str = ACCOUNT_SID,
    job_id: str | None = None,
) -> Grant | Wait:
    return await pacer.acquire(
        account_sid=account_sid,
        sender=sender,
        sender_kind=kind,
        channel=channel,
        cost=cost,
        job_id=job_id,
        now=now,
    )


# -- classification


@pytest.mark.parametrize(
    ("sender", "service", "kind"),
    [
        ("+14155550100", None, "long_code"),
        ("+447700900123", None, "long_code"),
        ("+18005550100", None, "toll_free"),
        ("+18885550100", None, "toll_free"),
        ("+18335550100", None, "toll_free"),
        ("+18095550100", None, "long_code"),  # 809 is the Dominican Republic, not toll-free
        ("12345", None, "short_code"),
        ("123456", None, "short_code"),
        ("1234567", None, "long_code"),
        ("ACME", None, "alphanumeric"),
        ("Acme Ltd", None, "alphanumeric"),
        ("MG" + "0" * 32, None, "messaging_service"),
        (None, "MG" + "1" * 32, "messaging_service"),
        ("+14155550100", "MG" + "1" * 32, "messaging_service"),
        ("whatsapp:+18005550100", None, "toll_free"),
        (None, None, "long_code"),
    ],
)
def test_sender_kind(sender: str | None, service: str | None, kind: str) -> None:
    assert sender_kind(sender, service) == kind


# -- the rate, exact in every second


@settings(max_examples=120, deadline=None)
@given(
    world=st.fixed_dictionaries(
        {
            "rate": st.sampled_from([1.0, 2.5, 3.0, 10.0, 50.0]),
            "late_share": st.sampled_from([0.0, 0.1, 0.4]),
            "pacers": st.integers(1, 3),
            "by_job_id": st.booleans(),
        }
    ),
    arrivals=st.lists(st.tuples(st.floats(0, 4), st.integers(1, 4)), min_size=1, max_size=40),
    rnd=st.randoms(use_true_random=False),
)
def test_never_exceeds_rate_in_any_second(
    queue_redis_url: str, world: dict[str, Any], arrivals: list[tuple[float, int]], rnd: random.Random
) -> None:
    rate, late_share = world["rate"], world["late_share"]

    def lateness(r: random.Random) -> float:
        # mostly on time give or take a poll delay; some far too late (a stalled worker)
        return r.uniform(0.1, 2.0) if r.random() < late_share else r.uniform(-0.004, 0.06)

    async def run() -> Run:
        clients = [Redis.from_url(queue_redis_url) for _ in range(world["pacers"])]
        try:
            await clients[0].flushdb()
            pacers = pacers_for(make_settings(senders={"+14155550100": rate}), clients)
            jobs = [Job(f"j{n}", 1000.0 + at, cost) for n, (at, cost) in enumerate(arrivals)]
            return await simulate(
                pacers, jobs, sender="+14155550100", rng=rnd, lateness=lateness, by_job_id=world["by_job_id"]
            )
        finally:
            for c in clients:
                await c.aclose()

    result = asyncio.run(run())
    assert all(j.grant is not None for j in result.jobs)
    fullest_second(result.grants, int(rate))


async def test_costs_count_in_segments(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}), tuning=ARQ_LATE)
    assert isinstance(await ask(pacer, 50.0, cost=6), Grant)
    second = await ask(pacer, 50.0, cost=6)
    assert isinstance(second, Wait)
    assert second.until >= 50.0 + 1.0  # 12 segments never share a second at 10 per second
    assert isinstance(await ask(pacer, 50.0, sender="T"), Grant)  # another sender has its own schedule


async def test_a_message_larger_than_a_second_goes_alone(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 2.0}), tuning=ARQ_LATE)
    assert isinstance(await ask(pacer, 10.0, cost=5), Grant)
    after = await ask(pacer, 10.0)
    assert isinstance(after, Wait)
    assert after.until >= 11.0


async def test_calls_share_the_account_calls_per_second(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(calls_per_second=2.0), tuning=ARQ_LATE)
    assert isinstance(await ask(pacer, 5.0, sender="+14155550100", channel="call"), Grant)
    second = await ask(pacer, 5.0, sender="+14155550199", channel="call")
    assert isinstance(second, Wait)  # another number, the same account: 2 calls per second in all
    assert 5.4 < second.until < 5.6
    assert isinstance(await ask(pacer, 5.0, sender="+14155550199"), Grant)  # SMS from it is paced apart


# -- reservations: no herd, about two calls per message


async def test_backlog_costs_two_calls_per_message_across_workers(connect: Connect) -> None:
    rng = random.Random(7)
    pacers = pacers_for(make_settings(senders={"+14155550100": 50.0}), await _clients(connect, 4))
    jobs = [Job(f"j{n}", 100.0 + rng.uniform(0, 0.5), 1) for n in range(600)]
    run = await simulate(pacers, jobs, sender="+14155550100", rng=rng, lateness=lambda r: r.uniform(0, 0.04))
    assert fullest_second(run.grants, 50) <= 50
    assert run.calls_per_message <= 2.0
    assert max(j.calls for j in jobs) == 2
    assert run.busiest(0.05, after=100.5) <= 5  # waiting jobs wake a slot apart, never together
    span = (max(run.grants)[0] - min(run.grants)[0]) / SECOND_US
    assert span < 600 / 50 / 0.9  # and the sender is kept busy: at least 90 % of its rate


async def test_backlog_with_job_ids_and_segments(connect: Connect) -> None:
    rng = random.Random(11)
    pacers = pacers_for(make_settings(senders={"MG1": 40.0}), await _clients(connect, 3))
    jobs = [Job(f"delivery-{n}", 100.0 + rng.uniform(0, 0.2), rng.choice([1, 1, 2, 3])) for n in range(300)]
    run = await simulate(
        pacers,
        jobs,
        sender="MG1",
        kind="messaging_service",
        rng=rng,
        lateness=lambda r: r.uniform(-0.004, 0.06),
        by_job_id=True,
    )
    assert fullest_second(run.grants, 40) <= 40
    # a 13 s backlog waits in line, not in reservations; with mixed costs the line's estimates run a
    # little early and the last stretch is a reservation: about three calls (two with equal costs)
    assert run.calls_per_message <= 3.0
    assert run.busiest(0.05, after=100.2) <= 8  # returns from the line, second estimates, reservations


async def test_beyond_the_horizon_jobs_take_tickets(connect: Connect) -> None:
    rng = random.Random(3)
    tuning = PacerTuning(horizon_s=2.0, early_s=0.005, late_s=0.07, jitter_s=0.0)
    pacers = pacers_for(make_settings(senders={"S": 50.0}), await _clients(connect, 2), tuning)
    jobs = [Job(f"j{n}", 100.0 + rng.uniform(0, 0.3), 1) for n in range(400)]
    run = await simulate(pacers, jobs, sender="S", rng=rng, lateness=lambda r: r.uniform(0, 0.04))
    assert fullest_second(run.grants, 50) <= 50
    assert run.waits["sender paced"] > 0
    assert max(j.calls for j in jobs) <= 3  # ticket, reservation, send
    assert run.calls_per_message <= 3.0
    assert run.busiest(0.05, after=100.3) <= 8  # two even streams: tickets coming back, then slots
    assert run.reach <= 1.5 * 2.0  # reservations (and what Redis holds) stay within the horizon


async def test_a_slow_worker_pool_is_asked_back_early(connect: Connect) -> None:
    # every job wakes 0.3 s after the time it was given (an overloaded pool), far beyond the 70 ms tolerance
    rng = random.Random(13)
    pacers = pacers_for(make_settings(senders={"FAST": 50.0, "SLOW": 3.0}), await _clients(connect, 3))

    def slow(r: random.Random) -> float:
        return 0.3 + r.uniform(0, 0.02)

    fast = [Job(f"f{n}", 100.0 + rng.uniform(0, 0.2), 1) for n in range(300)]
    run = await simulate(pacers, fast, sender="FAST", rng=rng, lateness=slow, by_job_id=True)
    fullest_second(run.grants, 50)
    assert run.calls_per_message <= 2.0  # dense slots: a late job takes the slot that is current
    # the pool's lateness is learnt: a sparse sender's jobs are now asked back 0.3 s early
    sparse = [Job(f"s{n}", 200.0 + rng.uniform(0, 0.2), 1) for n in range(40)]
    run = await simulate(pacers, sparse, sender="SLOW", rng=rng, lateness=slow, by_job_id=True)
    fullest_second(run.grants, 3)
    assert run.calls_per_message <= 2.0
    span = (max(run.grants)[0] - min(run.grants)[0]) / SECOND_US
    assert span < 40 / 3 / 0.9


async def test_a_late_job_loses_its_slot_and_books_again(rdb: Redis) -> None:
    pacer = Pacer(
        rdb, make_settings(senders={"S": 1.0}), tuning=ARQ_LATE
    )  # slots 1.075 s apart (W = 1 s + 5 ms + 70 ms)
    assert isinstance(await ask(pacer, 0.0), Grant)
    wait = await ask(pacer, 0.0, job_id="late")
    assert isinstance(wait, Wait)
    assert wait.until == pytest.approx(1.075)
    newcomer = await ask(pacer, 1.575)
    assert isinstance(newcomer, Wait)
    assert newcomer.until == pytest.approx(2.15)
    again = await ask(pacer, 1.575, job_id="late")
    assert isinstance(again, Wait)  # half a second late: its slot went unused, and no other is current
    assert again.reason == "sender paced: slot reserved"
    assert again.until == pytest.approx(3.225)
    early = await ask(pacer, 3.0, job_id="late")
    assert isinstance(early, Wait)
    assert early.reason == "sender paced: reserved slot not reached"
    assert early.until == pytest.approx(3.225)
    assert early.reserved is not None
    assert again.reserved is not None
    assert early.reserved.rsplit(":", 1)[1] == again.reserved.rsplit(":", 1)[1]  # the same reservation
    assert isinstance(await ask(pacer, 3.225 + 0.06, job_id="late"), Grant)


async def test_a_late_job_takes_a_current_slot_of_its_cost(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}, poll_delay_s=0.05), tuning=ARQ_LATE)  # slots 107.5 ms apart
    assert isinstance(await ask(pacer, 0.0), Grant)
    a = await ask(pacer, 0.0, job_id="a")
    b = await ask(pacer, 0.0, job_id="b")
    c = await ask(pacer, 0.0, job_id="c", cost=2)
    assert isinstance(a, Wait)
    assert isinstance(b, Wait)
    assert isinstance(c, Wait)
    assert (a.until, b.until) == (pytest.approx(0.1075), pytest.approx(0.215))
    assert isinstance(await ask(pacer, 0.22, job_id="a"), Grant)  # a is late: b's slot is current, a takes it
    assert isinstance(await ask(pacer, c.until, job_id="c", cost=2), Grant)
    late_b = await ask(pacer, 0.4, job_id="b")  # b is late too, and no slot is current: it books again
    assert isinstance(late_b, Wait)
    assert late_b.reason == "sender paced: slot reserved"


async def test_a_reservation_fits_only_its_cost(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 2.0}), tuning=ARQ_LATE)
    assert isinstance(await ask(pacer, 0.0), Grant)
    one = await ask(pacer, 0.0, job_id="j")
    assert isinstance(one, Wait)
    bigger = await ask(pacer, one.until, job_id="j", cost=2)  # the message grew: it needs a slot of its own
    assert isinstance(bigger, Wait)
    assert bigger.until > one.until


async def test_lower_rate_voids_reservations(rdb: Redis) -> None:
    rng = random.Random(5)
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}), tuning=ARQ_LATE)
    jobs = [Job(f"j{n}", 20.0, 1) for n in range(30)]
    for job in jobs:
        decision = await ask(pacer, 20.0, job_id=job.ident)
        if isinstance(decision, Grant):
            job.grant = decision
    await pacer.set_sender_rate("S", 2.0)
    waiting = [j for j in jobs if j.grant is None]
    run = await simulate([pacer], waiting, sender="S", rng=rng, lateness=lambda r: r.uniform(0, 0.03), by_job_id=True)
    grants = sorted((j.granted_us, j.cost) for j in jobs)
    fullest_second(grants, 10)
    changed_us = 20 * SECOND_US
    for end, _ in grants:  # every second that ends after the change holds at most 2, counting what came before
        if end > changed_us:
            assert sum(c for t, c in grants if end - SECOND_US < t <= end) <= 2
    assert run.calls_per_message <= 3.0
    await pacer.clear_sender_rate("S")
    assert await rdb.hget("notifyq:pace:rates", "S") is None


# -- the account: leases, the adaptive cap, pauses


async def test_leases_cap_in_flight_and_expire(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}, max_in_flight=2), tuning=ARQ_LATE)
    t0 = time.time()  # simulated, but near Redis' clock: snapshot() counts the leases alive now
    a, b, full = [await ask(pacer, t0) for _ in range(3)]
    assert isinstance(a, Grant)
    assert isinstance(b, Grant)
    assert isinstance(full, Wait)
    assert full.reason == "account in-flight cap 2 reached"
    assert t0 < full.until < t0 + 1.0
    assert (await pacer.snapshot())["accounts"][ACCOUNT_SID]["in_flight"] == 2
    # nobody releases (a crashed worker): the leases expire after connect + request timeout + 5 s
    assert isinstance(await ask(pacer, t0 + 24.0), Wait)
    c, d, full = [await ask(pacer, t0 + 25.5) for _ in range(3)]
    assert isinstance(c, Grant)
    assert isinstance(d, Grant)
    assert isinstance(full, Wait)
    await pacer.release(c, account_sid=ACCOUNT_SID, throttled=False, now=t0 + 25.6)
    assert isinstance(await ask(pacer, t0 + 25.6), Grant)


async def test_throttling_halves_the_cap_and_success_restores_it(rdb: Redis) -> None:
    pacer = Pacer(
        rdb,
        make_settings(senders={"S": 1000.0}, max_in_flight=8),
        tuning=PacerTuning(increase_after=5, early_s=0.005, late_s=0.07, jitter_s=0.0),
    )

    async def cap() -> float:
        return float((await pacer.snapshot())["accounts"][ACCOUNT_SID]["cap"])

    async def grant(at: float) -> Grant:
        decision = await ask(pacer, at)
        assert isinstance(decision, Grant), decision
        return decision

    async def cycle(at: float, *, throttled: bool) -> None:
        await pacer.release(await grant(at), account_sid=ACCOUNT_SID, throttled=throttled, now=at + 0.05)

    a, b = await grant(1.0), await grant(1.0)
    await pacer.release(a, account_sid=ACCOUNT_SID, throttled=True, now=1.1)
    assert await cap() == 4.0
    await pacer.release(b, account_sid=ACCOUNT_SID, throttled=True, now=1.2)
    assert await cap() == 4.0  # b was in flight before the cap dropped: one drop per round
    await cycle(1.3, throttled=True)
    assert await cap() == 2.0
    held = [await grant(2.0), await grant(2.0)]
    blocked = await ask(pacer, 2.0)
    assert isinstance(blocked, Wait)
    assert blocked.reason == "account in-flight cap 2 reached"
    for g in held:
        await pacer.release(g, account_sid=ACCOUNT_SID, throttled=False, now=2.1)
    for n in range(3):
        await cycle(3.0 + n / 10, throttled=False)
    assert await cap() == 3.0  # +1 after 5 successes
    for n in range(60):
        await cycle(4.0 + n / 10, throttled=False)
    assert await cap() == 8.0  # back to the configured cap, and never above it
    await cycle(20.0, throttled=True)
    assert await cap() == 4.0


async def test_pause_and_resume(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(), tuning=ARQ_LATE)
    assert await pacer.paused(ACCOUNT_SID) is None
    await pacer.pause_account(ACCOUNT_SID, "20003: Authenticate")
    assert await pacer.paused(ACCOUNT_SID) == "20003: Authenticate"
    wait = await ask(pacer, 7.0, sender="+14155550100")
    assert isinstance(wait, Wait)
    assert wait.reason == "account paused: 20003: Authenticate"
    assert wait.until == pytest.approx(12.0)
    assert (await pacer.snapshot())["accounts"][ACCOUNT_SID]["paused"] == "20003: Authenticate"
    await pacer.resume_account(ACCOUNT_SID)
    assert await pacer.paused(ACCOUNT_SID) is None
    assert isinstance(await ask(pacer, 12.0, sender="+14155550100"), Grant)


async def test_unknown_account_gets_safe_defaults(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}), tuning=ARQ_LATE)
    decisions = [await ask(pacer, 1.0, account_sid="AC" + "b" * 32) for _ in range(11)]
    assert sum(isinstance(d, Grant) for d in decisions) == 10


# -- real time: Redis' clock, separate connections racing, the in-process hold


async def test_real_time_workers_share_the_limit(connect: Connect) -> None:
    pacers = pacers_for(make_settings(senders={"S": 20.0}), await _clients(connect, 3))
    calls = 0

    async def job(n: int) -> Grant:
        nonlocal calls
        pacer, token = pacers[n % len(pacers)], None
        while True:
            calls += 1
            decision = await pacer.acquire(
                account_sid=ACCOUNT_SID, sender="S", sender_kind="long_code", channel="sms", cost=1, reservation=token
            )
            if isinstance(decision, Grant):
                await pacer.release(decision, account_sid=ACCOUNT_SID, throttled=False)
                return decision
            token = decision.reserved
            await asyncio.sleep(max(decision.until - time.time(), 0))

    started = time.time()
    grants = await asyncio.gather(*(job(n) for n in range(24)))
    assert all(abs(g.granted_at - started) < 5 for g in grants)  # translated to our clock
    fullest_second([(int(g.lease.split(":")[0]), 1) for g in grants], 20)
    assert calls / len(grants) <= 2.1


async def test_short_waits_are_held_in_process(rdb: Redis) -> None:
    pacer = Pacer(
        rdb,
        make_settings(senders={"S": 100.0}),
        tuning=PacerTuning(burst_s=0.0, hold_s=0.05, early_s=0.005, late_s=0.07, jitter_s=0.0),
    )
    first = await ask(pacer, None)
    second = await ask(pacer, None)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    assert pacer.calls == 3
    assert second.granted_at - first.granted_at > 0.004


async def test_snapshot_and_validation(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=ARQ_LATE)
    now = time.time()
    await ask(pacer, now)
    await ask(pacer, now, cost=4)
    snap = await pacer.snapshot()
    assert snap["schedules"]["snd:S"]["rate"] == 5.0
    assert snap["schedules"]["snd:S"]["backlog_s"] > 0
    assert snap["accounts"][ACCOUNT_SID]["max_in_flight"] == 50
    assert snap["accounts"][ACCOUNT_SID]["in_flight"] == 1
    with pytest.raises(ValueError, match="segment"):
        await ask(pacer, now, cost=0)
    with pytest.raises(ValueError, match="sender kind"):
        await ask(pacer, now, kind="pigeon")
    with pytest.raises(ValueError, match="positive"):
        await pacer.set_sender_rate("S", 0)


# -- lanes and fair sharing: which waiting job gets the next slot


def granted_between(jobs: list[Job], start: float, end: float) -> int:
    return sum(1 for j in jobs if start * SECOND_US <= j.granted_us <= end * SECOND_US)


async def test_a_later_flow_shares_the_sender_instead_of_waiting_behind_a_backlog(connect: Connect) -> None:
    rng = random.Random(17)
    pacers = pacers_for(make_settings(senders={"S": 50.0}), await _clients(connect, 3))
    large = [Job(f"large-{n}", 100.0 + rng.uniform(0, 0.3), 1, flow="large") for n in range(500)]
    small = [Job(f"small-{n}", 102.0 + rng.uniform(0, 0.05), 1, flow="small") for n in range(40)]
    run = await simulate(
        pacers, large + small, sender="S", rng=rng, lateness=lambda r: r.uniform(0, 0.04), by_job_id=True
    )
    fullest_second(run.grants, 50)
    # the large batch had ~10 s booked or waiting when the small one came: the small one gets half the
    # sender (a fair share of two flows), so its 40 messages take ~1.7 s, not ~10 s
    done = max(j.granted_us for j in small) / SECOND_US
    assert done < 102.0 + 0.5 + 2 * 40 / 46.5 + 0.5, done
    # ... and it is a share, not a takeover: the large batch keeps going meanwhile, about one for one
    meanwhile = granted_between(large, 102.0, done)
    assert 25 <= meanwhile <= 75, meanwhile
    assert run.calls_per_message <= 3.0
    assert max(j.calls for j in small) <= 4
    assert run.busiest(0.05, after=102.1) <= 10  # the reshuffled line comes back spread out, not as a herd
    span = (max(run.grants)[0] - min(run.grants)[0]) / SECOND_US
    assert span < 540 / 50 / 0.9  # sharing costs the sender no throughput


async def test_flows_interleave_from_the_start(connect: Connect) -> None:
    rng = random.Random(19)
    pacers = pacers_for(make_settings(senders={"S": 20.0}), await _clients(connect, 2))
    jobs = [Job(f"{f}-{n}", 10.0 + rng.uniform(0, 0.2), 1, flow=f) for n in range(60) for f in ("a", "b", "c")]
    rng.shuffle(jobs)
    run = await simulate(pacers, jobs, sender="S", rng=rng, lateness=lambda r: r.uniform(0, 0.04))
    fullest_second(run.grants, 20)
    order = [j.flow for j in sorted(jobs, key=lambda j: j.granted_us)]
    for k in range(30, len(order), 30):  # every prefix is shared about evenly between the three batches
        counts = Counter(order[:k])
        assert max(counts.values()) - min(counts.values()) <= 6, (k, counts)
    assert run.calls_per_message <= 3.0


async def test_urgent_jobs_get_the_next_slots_before_waiting_bulk_ones(connect: Connect) -> None:
    rng = random.Random(23)
    pacers = pacers_for(make_settings(senders={"S": 50.0}), await _clients(connect, 3))
    bulk = [Job(f"bulk-{n}", 100.0 + rng.uniform(0, 0.3), 1, flow="bulk") for n in range(400)]
    urgent = [Job(f"urgent-{n}", 103.0 + rng.uniform(0, 0.05), 1, lane="urgent", flow="u") for n in range(10)]
    run = await simulate(pacers, bulk + urgent, sender="S", rng=rng, lateness=lambda r: r.uniform(0, 0.04))
    fullest_second(run.grants, 50)
    # bulk has ~5 s waiting; the urgent jobs only wait for the slots already booked (the short horizon)
    done = max(j.granted_us for j in urgent) / SECOND_US
    assert done < 103.05 + 0.5 + 10 / 46.5 + 0.15, done
    assert granted_between(bulk, 103.0, done) <= 0.5 * 50 + 5  # only bulk jobs that held reservations
    assert max(j.calls for j in urgent) <= 3
    assert run.busiest(0.05, after=103.1) <= 10
    assert run.calls_per_message <= 3.0


async def test_urgent_jobs_on_a_slow_sender_wait_only_for_booked_slots(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1.0}), tuning=ARQ_LATE)
    bulk = [await ask(pacer, 0.0, job_id=f"b{n}") for n in range(20)]
    assert isinstance(bulk[0], Grant)
    waiting = [d for d in bulk if isinstance(d, Wait) and d.reason == "sender paced: waiting in line"]
    assert len(waiting) >= 15  # only two segments' worth of slots are booked ahead on a slow sender
    assert max(d.until for d in waiting) > 15.0
    urgent = await pacer.acquire(
        account_sid=ACCOUNT_SID,
        sender="S",
        sender_kind="long_code",
        channel="sms",
        cost=1,
        job_id="u",
        lane="urgent",
        now=0.0,
    )
    assert isinstance(urgent, Wait)
    assert urgent.until < 3.5  # after the two booked slots, ahead of every bulk job in line
    with pytest.raises(ValueError, match="lane"):
        await pacer.acquire(
            account_sid=ACCOUNT_SID, sender="S", sender_kind="long_code", channel="sms", cost=1, lane="vip", now=0.0
        )


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([2.0, 5.0, 20.0]),
    arrivals=st.lists(
        st.tuples(st.floats(0, 3), st.integers(1, 3), st.sampled_from(["a", "b", "c", "u"])), min_size=1, max_size=50
    ),
    late_share=st.sampled_from([0.0, 0.2]),
    rnd=st.randoms(use_true_random=False),
)
def test_lanes_and_flows_never_exceed_the_rate(
    queue_redis_url: str, rate: float, arrivals: list[tuple[float, int, str]], late_share: float, rnd: random.Random
) -> None:
    def lateness(r: random.Random) -> float:
        return r.uniform(0.1, 2.0) if r.random() < late_share else r.uniform(-0.004, 0.06)

    async def run() -> Run:
        clients = [Redis.from_url(queue_redis_url) for _ in range(2)]
        try:
            await clients[0].flushdb()
            pacers = pacers_for(make_settings(senders={"S": rate}), clients)
            jobs = [
                Job(f"j{n}", 1000.0 + at, cost, lane="urgent" if f == "u" else "bulk", flow=f)
                for n, (at, cost, f) in enumerate(arrivals)
            ]
            return await simulate(pacers, jobs, sender="S", rng=rnd, lateness=lateness, by_job_id=True)
        finally:
            for c in clients:
                await c.aclose()

    result = asyncio.run(run())
    assert all(j.grant is not None for j in result.jobs)
    fullest_second(result.grants, int(rate))
    assert result.calls_per_message <= 6.0


# -- many sends per call (chunk jobs): the account's leases given back together


async def test_release_many_adapts_the_cap_once_per_round_trip(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=8), tuning=ARQ_LATE)
    grants = [await ask(pacer, 0.0, job_id=f"d{i}") for i in range(9)]
    assert [isinstance(g, Grant) for g in grants] == [True] * 8 + [False]
    assert isinstance(grants[8], Wait)
    assert grants[8].reason.startswith("account in-flight cap")
    # one 429 among them halves the cap (once), the rest count as successes
    granted = [g for g in grants if isinstance(g, Grant)]
    await pacer.release_many([(g, i == 0) for i, g in enumerate(granted)], account_sid=ACCOUNT_SID, now=0.1)
    account = await rdb.hgetall(f"notifyq:pace:acct:{ACCOUNT_SID}")
    assert float(account[b"cap"]) == 4.0
    assert await leases(rdb) == 0
    later = [await ask(pacer, 0.2, job_id=f"e{i}") for i in range(6)]
    assert [isinstance(g, Grant) for g in later] == [True] * 4 + [False] * 2


async def test_release_many_leaves_the_account_as_one_release_per_lease_would(rdb: Redis) -> None:
    # the many-call reads the account once and writes it once: the hash must end as N single releases leave it
    async def released(*, many: bool) -> dict[bytes, bytes]:
        await rdb.flushdb()
        pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=8), tuning=ARQ_LATE)
        granted = [await ask(pacer, 0.001 * i, job_id=f"d{i}") for i in range(8)]
        assert all(isinstance(g, Grant) for g in granted)
        answers = [(g, i in (2, 5)) for i, g in enumerate(granted)]  # two 429s among eight answers
        if many:
            await pacer.release_many(answers, account_sid=ACCOUNT_SID, now=0.1)  # type: ignore[arg-type]
        else:
            for grant, throttled in answers:
                await pacer.release(grant, account_sid=ACCOUNT_SID, throttled=throttled, now=0.1)  # type: ignore[arg-type]
        assert await leases(rdb) == 0
        return dict(await rdb.hgetall(f"notifyq:pace:acct:{ACCOUNT_SID}"))

    together, one_by_one = await released(many=True), await released(many=False)
    assert together == one_by_one
    assert set(together) >= {b"cap", b"ok", b"dec", b"lat"}
    assert await rdb.ttl(f"notifyq:pace:acct:{ACCOUNT_SID}") > 0


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


async def test_the_scripts_print_numbers_as_percent_dot_zero_f_would(rdb: Redis) -> None:
    # acquire.lua's fmt prints whole numbers with %d (libc's float printing is slow): the same digits as %.0f
    start = ACQUIRE_LUA.index("local function fmt(x)")
    source = ACQUIRE_LUA[start : ACQUIRE_LUA.index("\nend\n", start) + 5]
    each = "out[i] = fmt(tonumber(v)) .. ' ' .. string.format('%.0f', tonumber(v))"
    script = source + f"local out = {{}} for i, v in ipairs(ARGV) do {each} end return out"
    values = ["0", "-0", "1", "-7", "0.5", "1.5", "2.5", "-2.5", "1764500000000000", "1764500000000000.5"]
    values += ["8999999999999999", "9e15", "1e16", "-9e15", "1e300", "123456789.0", "10000000000000.25"]
    printed = [v.decode().split(" ") for v in await rdb.eval(script, 0, *values)]
    assert [mine for mine, _ in printed] == [libc for _, libc in printed]


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


# -- held reservations (what the worker does): book a slot, claim, redeem at the slot, send at once


async def reserve(
    pacer: Pacer, now: float, asks: list[tuple[str, int]], *, lead_s: float = 0.02, flow: str = "f", lane: str = "bulk"
) -> tuple[list[Reservation], Wait | None]:
    return await pacer.reserve_many(
        account_sid=ACCOUNT_SID,
        sender="S",
        sender_kind="long_code",
        channel="sms",
        asks=asks,
        lane=lane,
        flow=flow,
        lead_s=lead_s,
        now=now,
    )


async def redeem(pacer: Pacer, now: float, held: list[Reservation]) -> list[Grant | Wait]:
    return await pacer.redeem_many(
        account_sid=ACCOUNT_SID, sender="S", sender_kind="long_code", channel="sms", held=held, flow="f", now=now
    )


async def leases(rdb: Redis) -> int:
    return int(await rdb.zcard(f"notifyq:pace:acct:{ACCOUNT_SID}:leases"))


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
    # measured: 10 and 5 (24 and 16 when each send read and wrote the shared state itself)
    assert per_send[0] <= 11  # reserve: the clock, the flow's tag, the line, the slot, the reservation, ...
    assert per_send[1] <= 6  # redeem: the clock, its reservation, the lease, the held set, the job key


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
    # b comes back 0.3 s after its slot (beyond the 8 ms tolerance): the slot is gone, a new one is booked
    (late,) = await redeem(pacer, second.at + 0.3, [second])
    assert isinstance(late, Wait)
    assert late.reserved is not None
    assert late.until > second.at + 0.3
    (again,) = await redeem(pacer, late.until, [Reservation("b", 1, late.reserved, late.until)])
    assert isinstance(again, Grant)


WIDE = PacerTuning(horizon_s=2.0)  # reservations reach 2 s ahead: a whole chunk books in one call


async def test_a_chunk_books_next_the_send_that_fits_first(rdb: Redis) -> None:
    """K = 5 segments in a window W of 1.04 s (interval 0.208 s). Booked in the order asked, the second
    three-segment send must wait a window after the first and the two-segment one waits behind it; the
    pacer books the two-segment send in between instead."""
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=WIDE)
    window = 1 + pacer.tuning.early_s + pacer.tuning.late_s + pacer.jitter_s
    assert window == pytest.approx(1.04)
    held, wait = await reserve(pacer, 0.0, [("x0", 3), ("x1", 3), ("x2", 2)])
    assert wait is None
    assert [(r.job_id, r.cost) for r in held] == [("x0", 3), ("x2", 2), ("x1", 3)]
    assert [r.at for r in held] == pytest.approx([0.02, 0.02 + 3 * 0.208, 0.02 + window], abs=1e-5)
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


def test_the_worker_and_the_script_agree_on_how_late_a_loose_send_may_go() -> None:
    (line,) = [ln for ln in ACQUIRE_LUA.splitlines() if ln.startswith("local LOOSE = ")]
    assert int(line.split("=")[1].split("--")[0]) == round(LOOSE_S * SECOND_US)


async def test_a_sender_near_its_rate_grants_strictly(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}), tuning=WIDE)
    held, _ = await reserve(pacer, 0.0, [("a", 1), ("b", 1), ("c", 1)])
    (first,) = await redeem(pacer, held[0].at, held[:1])
    assert isinstance(first, Grant)
    assert not first.loose  # 3 segments booked for 5 a second: a late request could fill a second
    (late,) = await redeem(pacer, held[1].at + 0.1, held[1:2])
    assert isinstance(late, Wait)  # redeemed late: booked again, not granted on the old slot
    assert late.reason == "sender paced: slot reserved"


async def test_reserve_books_no_more_than_the_account_can_take(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=2))
    held, wait = await reserve(pacer, 0.0, [(f"d{i}", 1) for i in range(6)])
    # booked sends count against the account's cap: the cap's worth to send, and half a cap more
    assert [r.job_id for r in held] == ["d0", "d1", "d2"]
    assert isinstance(wait, Wait)
    assert wait.reason.startswith("account in-flight cap")
    assert 0.0 < wait.until <= 0.25  # in turn: a request's time over the cap (0.25 s assumed at first)
    answers = await redeem(pacer, held[-1].at, held)
    assert [isinstance(a, Grant) for a in answers] == [True, True, False]
    more, wait = await reserve(pacer, held[-1].at, [("e", 1)])
    assert more == []  # two leases and one held: the account is spoken for
    assert isinstance(wait, Wait)
    grants = [a for a in answers if isinstance(a, Grant)]
    await pacer.release_many([(g, False) for g in grants], account_sid=ACCOUNT_SID, now=held[-1].at + 0.05)
    waiting = [
        Reservation(r.job_id, r.cost, a.reserved, a.until)
        for r, a in zip(held, answers, strict=True)
        if isinstance(a, Wait) and a.reserved
    ]
    later = await redeem(pacer, held[-1].at + 0.06, waiting)
    assert [isinstance(a, Grant) for a in later] == [True]  # the held send takes a freed lease


async def test_a_full_account_at_redeem_keeps_the_reservation_in_turn(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=2))
    held, _ = await reserve(pacer, 0.0, [("d0", 1), ("d1", 1)])
    for n in range(2):  # something else (the reconciler, say) takes the account's two leases meanwhile
        assert isinstance(await ask(pacer, held[-1].at + 0.0001, job_id=f"other{n}"), Grant)
    answers = await redeem(pacer, held[-1].at + 0.0002, held)
    waits = [a for a in answers if isinstance(a, Wait)]
    assert len(waits) == 2
    assert all(w.reason.startswith("account in-flight cap") and w.reserved for w in waits)
    assert waits[0].until < waits[1].until  # told to come back in turn


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


async def test_a_held_reservation_on_a_paused_account_is_not_granted(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}))
    (held,), _ = await reserve(pacer, 0.0, [("a", 1)])
    await pacer.pause_account(ACCOUNT_SID, "20003: suspended")
    (answer,) = await redeem(pacer, held.at, [held])
    assert isinstance(answer, Wait)
    assert answer.reason.startswith("account paused")
    assert await leases(rdb) == 0


@dataclass
class HeldRun:
    arrivals: list[tuple[int, int]]  # when each request reached Twilio (us) and its segments
    calls: int


async def simulate_held(
    pacers: list[Pacer],
    chunks: list[tuple[float, list[int], str]],
    rng: random.Random,
    *,
    arq_lateness: Callable[[random.Random], float],
    held_lateness: Callable[[random.Random], float],
) -> HeldRun:
    """The worker's protocol: a chunk books what it can (arq brings it back for the rest), each held slot
    is redeemed in process, and a grant's request reaches Twilio up to ``jitter_s`` later."""
    jitter = pacers[0].jitter_s
    left = [[(f"c{n}d{i}", cost) for i, cost in enumerate(costs)] for n, (_, costs, _) in enumerate(chunks)]
    heap: list[tuple[float, int, int, Reservation | None]] = [(at, n, n, None) for n, (at, _, _) in enumerate(chunks)]
    heapq.heapify(heap)
    seq = len(heap)
    run = HeldRun([], 0)
    limit = 60 * len(chunks) + 12 * sum(len(c) for _, c, _ in chunks)
    while heap:
        t, _, n, held = heapq.heappop(heap)
        run.calls += 1
        assert run.calls < limit, "sends keep coming back"
        pacer, flow = rng.choice(pacers), chunks[n][2]
        where = {
            "account_sid": ACCOUNT_SID,
            "sender": "S",
            "sender_kind": "long_code",
            "channel": "sms",
            "lane": "urgent" if flow == "u" else "bulk",
            "flow": flow,
            "now": t,
        }
        if held is None:  # the chunk job: book, then (after the claims) hold each slot in process
            got, wait = await pacer.reserve_many(asks=left[n], lead_s=0.02, **where)
            left[n] = still_to_book(left[n], got, wait)
            for r in got:
                seq += 1
                heapq.heappush(heap, (r.at + held_lateness(rng), seq, n, r))
            if wait is not None:
                assert wait.until > t, "a wait must move time forward"
                seq += 1
                heapq.heappush(heap, (wait.until + arq_lateness(rng), seq, n, None))
            continue
        (answer,) = await pacer.redeem_many(held=[held], **where)
        if isinstance(answer, Grant):
            arrival = int(answer.lease.split(":")[0]) + round(rng.uniform(0, jitter) * SECOND_US)
            run.arrivals.append((arrival, held.cost))
            await pacer.release(answer, account_sid=ACCOUNT_SID, throttled=False, now=t + 0.05)
        else:
            assert answer.reserved is not None
            assert answer.until > t, "a wait must move time forward"
            seq += 1
            again = Reservation(held.job_id, held.cost, answer.reserved, answer.until)
            heapq.heappush(heap, (answer.until + held_lateness(rng), seq, n, again))
    return run


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([2.0, 5.0, 20.0, 50.0]),
    chunks=st.lists(
        st.tuples(st.floats(0, 3), st.lists(st.integers(1, 3), min_size=1, max_size=12), st.sampled_from("abu")),
        min_size=1,
        max_size=8,
    ),
    late_share=st.sampled_from([0.0, 0.2]),
    rnd=st.randoms(use_true_random=False),
)
def test_held_reservations_never_exceed_the_rate_where_the_requests_arrive(
    queue_redis_url: str,
    rate: float,
    chunks: list[tuple[float, list[int], str]],
    late_share: float,
    rnd: random.Random,
) -> None:
    """Two processes with the default tolerances; arq brings chunks back up to 60 ms late (sometimes
    seconds), held slots are redeemed mostly on time (sometimes far too late). Counted where the
    requests arrive, no second ever holds more than the rate."""
    tuning = PacerTuning()

    def arq_lateness(r: random.Random) -> float:
        return r.uniform(0.1, 2.0) if r.random() < late_share else r.uniform(-0.004, 0.06)

    def held_lateness(r: random.Random) -> float:  # the event loop's lag; now and then a stall
        return r.uniform(0.05, 0.5) if r.random() < late_share / 2 else r.uniform(-tuning.early_s, tuning.late_s)

    async def run() -> HeldRun:
        clients = [Redis.from_url(queue_redis_url) for _ in range(2)]
        try:
            await clients[0].flushdb()
            pacers = [Pacer(c, make_settings(senders={"S": rate}, max_in_flight=500), tuning=tuning) for c in clients]
            timed = [(1000.0 + at, costs, flow) for at, costs, flow in chunks]
            return await simulate_held(pacers, timed, rnd, arq_lateness=arq_lateness, held_lateness=held_lateness)
        finally:
            for c in clients:
                await c.aclose()

    result = asyncio.run(run())
    total = sum(len(costs) for _, costs, _ in chunks)
    assert len(result.arrivals) == total
    fullest_second(result.arrivals, int(rate))
    assert result.calls <= 12 * total


def test_a_late_held_send_of_several_segments_does_not_overfill_a_slow_sender(queue_redis_url: str) -> None:
    """The case the property above found (rate 2/s, sends of 1 to 3 segments, some redeemed late), over
    200 seeds of the simulated lateness.

    A held reservation redeemed late may keep its own slot only while the sender's kept schedule holds
    at most half its rate even counting the send's segments once more; with the check on the schedule
    alone, 7 of these 200 runs put 3 segments in a second of a 2-segment sender.
    """
    tuning = PacerTuning()
    chunks = [(1000.0, [1, 2], "a"), (1001.0, [1, 3], "b"), (1002.0, [1], "a")]

    def arq_lateness(r: random.Random) -> float:
        return r.uniform(0.1, 2.0) if r.random() < 0.2 else r.uniform(-0.004, 0.06)

    def held_lateness(r: random.Random) -> float:
        return r.uniform(0.05, 0.5) if r.random() < 0.1 else r.uniform(-tuning.early_s, tuning.late_s)

    async def run(seed: int) -> HeldRun:
        clients = [Redis.from_url(queue_redis_url) for _ in range(2)]
        try:
            await clients[0].flushdb()
            pacers = [Pacer(c, make_settings(senders={"S": 2.0}, max_in_flight=500), tuning=tuning) for c in clients]
            return await simulate_held(
                pacers, chunks, random.Random(seed), arq_lateness=arq_lateness, held_lateness=held_lateness
            )
        finally:
            for c in clients:
                await c.aclose()

    for seed in range(200):
        result = asyncio.run(run(seed))
        assert len(result.arrivals) == 5
        fullest_second(result.arrivals, 2)


@pytest.mark.parametrize(("costs", "share"), [((1,), 0.99), ((1, 2, 3), 0.98)])
async def test_held_reservations_keep_a_backlog_at_the_rate(
    connect: Connect, costs: tuple[int, ...], share: float
) -> None:
    """A backlog on four processes keeps a 50/s sender busy.

    One-segment sends reach the ceiling K / W (W: 1 s plus the tolerances). Whole messages of 1 to 3
    segments fit a sliding second less well (at most 16 three-segment messages in any second of 50):
    booked in the order asked they reached about 96 % of the ceiling; packed by cost, 98.6 %.
    """
    rng = random.Random(17)
    pacers = [Pacer(c, make_settings(senders={"S": 50.0})) for c in await _clients(connect, 4)]
    t = pacers[0].tuning
    ceiling = 50 / (1 + t.early_s + t.late_s + pacers[0].jitter_s)
    chunks = [(100.0 + rng.uniform(0, 0.2), [costs[i % len(costs)] for i in range(20)], "f") for _ in range(40)]
    run = await simulate_held(
        pacers,
        chunks,
        rng,
        arq_lateness=lambda r: r.uniform(0, 0.04),
        held_lateness=lambda r: r.uniform(-0.002, 0.006),  # measured in the benchmark: p99 4 ms
    )
    assert len(run.arrivals) == 800
    fullest_second(run.arrivals, 50)
    first, last = min(run.arrivals), max(run.arrivals)
    segments = sum(cost for _, cost in run.arrivals) - first[1]
    assert segments / ((last[0] - first[0]) / SECOND_US) >= share * ceiling
