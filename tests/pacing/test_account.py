"""The account: requests in flight as leases that expire, a cap that adapts to 429s, and leases for
requests that send nothing (look-ups, fetches), which share the account's cap with sends."""

from __future__ import annotations

import asyncio
import time

from pacing_helpers import ACCOUNT_SID, leases, make_settings, redeem, reserve, send_now
from redis.asyncio import Redis

from notifyq.pacing import Grant, Pacer, PacerTuning, Reservation, Wait


async def test_leases_count_against_the_accounts_requests_in_flight(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=2, senders={"S": 100.0}))
    first, second = await pacer.lease(ACCOUNT_SID), await pacer.lease(ACCOUNT_SID)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    full = await pacer.lease(ACCOUNT_SID)
    assert isinstance(full, Wait)
    assert full.reason == "account in-flight cap 2 reached"
    # a send finds the account as full as a look-up does
    (held,), _ = await reserve(pacer, None, [("send", 1)], lead_s=0.0)
    (send,) = await redeem(pacer, None, [held])
    assert isinstance(send, Wait)
    assert "in-flight cap" in send.reason
    assert (await pacer.admin.snapshot())["accounts"][ACCOUNT_SID]["in_flight"] == 2
    await pacer.release(first, account_sid=ACCOUNT_SID, throttled=False)
    assert isinstance(await pacer.lease(ACCOUNT_SID), Grant)


async def test_a_full_accounts_turn_is_waited_for_in_process(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=1))
    held = await pacer.lease(ACCOUNT_SID)
    assert isinstance(held, Grant)

    async def answered_later() -> None:
        await asyncio.sleep(0.05)  # the request in flight takes this long
        await pacer.release(held, account_sid=ACCOUNT_SID, throttled=False)

    answer = asyncio.create_task(answered_later())
    assert isinstance(await pacer.lease(ACCOUNT_SID, wait_s=2.0), Grant)
    await answer


async def test_a_paused_account_gives_no_lease_and_is_not_waited_for(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings())
    await pacer.admin.pause_account(ACCOUNT_SID, "20003: Authenticate")
    answer = await pacer.lease(ACCOUNT_SID, wait_s=60.0)
    assert isinstance(answer, Wait)
    assert answer.reason == "account paused: 20003: Authenticate"


async def test_a_throttled_release_of_a_lease_lowers_the_cap(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=8))
    lease = await pacer.lease(ACCOUNT_SID)
    assert isinstance(lease, Grant)
    await pacer.release(lease, account_sid=ACCOUNT_SID, throttled=True)
    assert (await pacer.admin.snapshot())["accounts"][ACCOUNT_SID]["cap"] == 4.0


async def test_leases_cap_in_flight_and_expire(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}, max_in_flight=2))
    t0 = time.time()  # simulated, but near Redis' clock: snapshot() counts the leases alive now
    a, b, full = [await send_now(pacer, t0, f"a{i}") for i in range(3)]
    assert isinstance(a, Grant)
    assert isinstance(b, Grant)
    assert isinstance(full, Wait)
    assert full.reason == "account in-flight cap 2 reached"
    assert t0 < full.until < t0 + 1.0
    assert (await pacer.admin.snapshot())["accounts"][ACCOUNT_SID]["in_flight"] == 2
    # nobody releases (a crashed worker): the leases expire after connect + request timeout + 5 s
    assert isinstance(await send_now(pacer, t0 + 24.0, "b"), Wait)
    c, d, full = [await send_now(pacer, t0 + 25.5, f"c{i}") for i in range(3)]
    assert isinstance(c, Grant)
    assert isinstance(d, Grant)
    assert isinstance(full, Wait)
    await pacer.release(c, account_sid=ACCOUNT_SID, throttled=False, now=t0 + 25.6)
    assert isinstance(await send_now(pacer, t0 + 25.6, "c2"), Grant)  # the send that waited in line takes it


async def test_throttling_halves_the_cap_and_success_restores_it(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}, max_in_flight=8), tuning=PacerTuning(increase_after=5))
    jobs = iter(range(1000))

    async def cap() -> float:
        return float((await pacer.admin.snapshot())["accounts"][ACCOUNT_SID]["cap"])

    async def grant(at: float) -> Grant:
        decision = await send_now(pacer, at, f"j{next(jobs)}")
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
    blocked = await send_now(pacer, 2.0, "blocked")
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


async def test_unknown_account_gets_safe_defaults(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}))
    unknown = "AC" + "b" * 32
    held, wait = await reserve(pacer, 1.0, [(f"d{i}", 1) for i in range(11)], lead_s=0.0, account_sid=unknown)
    assert wait is None
    decisions = await redeem(pacer, max(r.at for r in held), held, account_sid=unknown)
    assert sum(isinstance(d, Grant) for d in decisions) == 10


async def test_release_many_adapts_the_cap_once_per_round_trip(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=8))
    grants = [await send_now(pacer, 0.0, f"d{i}") for i in range(9)]
    assert [isinstance(g, Grant) for g in grants] == [True] * 8 + [False]
    assert isinstance(grants[8], Wait)
    assert grants[8].reason.startswith("account in-flight cap")
    # one 429 among them halves the cap (once), the rest count as successes
    granted = [g for g in grants if isinstance(g, Grant)]
    await pacer.release_many([(g, i == 0) for i, g in enumerate(granted)], account_sid=ACCOUNT_SID, now=0.1)
    account = await rdb.hgetall(f"notifyq:pace:acct:{ACCOUNT_SID}")
    assert float(account[b"cap"]) == 4.0
    assert await leases(rdb) == 0
    later = [await send_now(pacer, 0.2, f"e{i}") for i in range(6)]
    assert [isinstance(g, Grant) for g in later] == [True] * 4 + [False] * 2


async def test_release_many_leaves_the_account_as_one_release_per_lease_would(rdb: Redis) -> None:
    # one call for many leases reads the account once and writes it once: the hash ends as N single calls leave it
    async def released(*, many: bool) -> dict[bytes, bytes]:
        await rdb.flushdb()
        pacer = Pacer(rdb, make_settings(senders={"S": 100_000.0}, max_in_flight=8))
        granted = [await send_now(pacer, 0.001 * i, f"d{i}") for i in range(8)]
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
    for _ in range(2):  # something else (the reconciler, say) takes the account's two leases meanwhile
        assert isinstance(await pacer.lease(ACCOUNT_SID), Grant)
    answers = await redeem(pacer, held[-1].at + 0.0002, held)
    waits = [a for a in answers if isinstance(a, Wait)]
    assert len(waits) == 2
    assert all(w.reason.startswith("account in-flight cap") and w.reserved for w in waits)
    assert waits[0].until < waits[1].until  # told to come back in turn


async def test_a_held_reservation_on_a_paused_account_is_not_granted(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 10.0}))
    (held,), _ = await reserve(pacer, 0.0, [("a", 1)])
    await pacer.admin.pause_account(ACCOUNT_SID, "20003: suspended")
    (answer,) = await redeem(pacer, held.at, [held])
    assert isinstance(answer, Wait)
    assert answer.reason.startswith("account paused")
    assert await leases(rdb) == 0


async def test_slots_booked_seconds_ahead_do_not_fill_the_account(rdb: Redis) -> None:
    # three long codes at 1/s on one account with 2 requests in flight (3 booked at most): each books its
    # next two slots, one now and one a second later. The later ones cannot be in flight with the ones due
    # now, so they do not count: every sender gets its slot now (counted, the third would wait its turn)
    senders = {f"S{i}": 1.0 for i in range(3)}
    pacer = Pacer(rdb, make_settings(senders=senders, max_in_flight=2))
    firsts = []
    for sender in senders:
        held, wait = await reserve(pacer, 0.0, [(f"{sender}-a", 1), (f"{sender}-b", 1)], sender=sender, flow=sender)
        assert wait is None
        assert [r.job_id for r in held] == [f"{sender}-a", f"{sender}-b"]
        assert held[1].at - held[0].at >= 1.0
        firsts.append(held[0])
    # the account still holds to its cap when they come due: the sends due now, and half a cap more
    more, wait = await reserve(pacer, 0.0, [("T-a", 1)], sender="T", flow="T")
    assert more == []
    assert isinstance(wait, Wait)
    assert wait.reason.startswith("account in-flight cap")
