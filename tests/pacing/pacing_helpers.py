"""What the pacing tests share: settings, the worker's protocol on a simulated clock, and the checks."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import SecretStr
from redis.asyncio import Redis

from notifyq.pacing import Grant, Pacer, PacerTuning, Reservation, Wait, still_to_book
from notifyq.settings import PacingSettings, Settings, TwilioAccount, TwilioSettings, WorkerSettings

SECOND_US: Final = 1_000_000
ACCOUNT_SID: Final = "AC" + "a" * 32
Connect = Callable[[], Awaitable[Redis]]

# reservations reach 2 s ahead: a whole chunk books in one call
WIDE: Final = PacerTuning(horizon_s=2.0)
# wide tolerances and no arrival jitter: the numbers of a test are easy to follow (slots W = 1.075 s apart at 1/s)
ARQ_LATE: Final = PacerTuning(early_s=0.005, late_s=0.07, jitter_s=0.0)


def make_settings(
    *,
    senders: dict[str, float] | None = None,
    groups: dict[str, Any] | None = None,
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
        pacing=PacingSettings.model_validate({"senders": senders or {}, "groups": groups or {}}),
        worker=WorkerSettings(poll_delay_s=poll_delay_s),
    )


async def clients(connect: Connect, n: int) -> list[Redis]:
    """``n`` connections: as many worker processes, as far as Redis can tell."""
    return [await connect() for _ in range(n)]


def fullest_second(grants: list[tuple[int, int]], limit: int) -> int:
    """The most segments in one second, (time in us, segments) each; asserts none holds more than ``limit``.

    A message larger than ``limit`` may only be alone in its second. Checking the windows
    ``(t - 1 s, t]`` that end at a send covers every half-open window ``[a, a + 1 s)``.
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


def granted_us(grant: Grant) -> int:
    """When a grant was made, on Redis' clock (simulated or not), exactly."""
    return int(grant.lease.split(":")[0])


async def reserve(
    pacer: Pacer,
    now: float | None,
    asks: list[tuple[str, int]],
    *,
    lead_s: float = 0.02,
    flow: str = "f",
    lane: str = "bulk",
    sender: str = "S",
    channel: str = "sms",
    kind: str = "long_code",
    account_sid: str = ACCOUNT_SID,
) -> tuple[list[Reservation], Wait | None]:
    return await pacer.reserve_many(
        account_sid=account_sid,
        sender=sender,
        sender_kind=kind,
        channel=channel,
        asks=asks,
        lane=lane,
        flow=flow,
        lead_s=lead_s,
        now=now,
    )


async def redeem(
    pacer: Pacer,
    now: float | None,
    held: list[Reservation],
    *,
    sender: str = "S",
    account_sid: str = ACCOUNT_SID,
) -> list[Grant | Wait]:
    return await pacer.redeem_many(
        account_sid=account_sid,
        sender=sender,
        sender_kind="long_code",
        channel="sms",
        held=held,
        flow="f",
        now=now,
    )


async def send_now(pacer: Pacer, now: float, job_id: str, *, account_sid: str = ACCOUNT_SID) -> Grant | Wait:
    """Book one send for ``now`` and redeem it at its slot: a grant, or why not (on a sender fast enough
    that the slot is ``now``)."""
    held, wait = await reserve(pacer, now, [(job_id, 1)], lead_s=0.0, account_sid=account_sid)
    if wait is not None:
        return wait
    (answer,) = await redeem(pacer, max(now, held[0].at), held, account_sid=account_sid)
    return answer


async def leases(rdb: Redis) -> int:
    return int(await rdb.zcard(f"notifyq:pace:acct:{ACCOUNT_SID}:leases"))


@dataclass
class HeldRun:
    arrivals: list[tuple[int, int]]  # when each request reached Twilio (us) and its segments
    calls: int
    granted: dict[str, int] = field(default_factory=dict)  # job id -> when it was granted (us)
    flows: dict[str, str] = field(default_factory=dict)  # job id -> its flow
    calls_by_chunk: Counter[int] = field(default_factory=Counter)
    call_times: list[float] = field(default_factory=list)  # when each reserve call was made
    waits: Counter[str] = field(default_factory=Counter)  # reserve waits, by reason
    reach: float = 0.0  # the furthest ahead a slot was booked, in seconds

    def busiest(self, bucket_s: float, after: float) -> int:
        """Most reserve calls in one bucket of simulated time, after the arrival burst."""
        buckets = Counter(int(t / bucket_s) for t in self.call_times if t >= after)
        return max(buckets.values(), default=0)

    def done(self, flow: str) -> float:
        """When the last send of a flow was granted, in seconds."""
        return max(t for job, t in self.granted.items() if self.flows[job] == flow) / SECOND_US

    def granted_between(self, flow: str, start: float, end: float) -> int:
        """Sends of a flow granted from ``start`` to ``end`` (seconds)."""
        return sum(1 for job, t in self.granted.items() if self.flows[job] == flow and start <= t / SECOND_US <= end)

    def order(self) -> list[str]:
        """The flows of the sends, in the order they were granted."""
        return [self.flows[job] for job in sorted(self.granted, key=self.granted.__getitem__)]

    def calls_per_message(self) -> float:
        return self.calls / len(self.granted)


async def simulate_held(
    pacers: list[Pacer],
    chunks: Sequence[tuple[float, list[int], str]],
    rng: random.Random,
    *,
    arq_lateness: Callable[[random.Random], float],
    held_lateness: Callable[[random.Random], float],
    lead_s: float = 0.02,
    rate_changes: Sequence[tuple[float, float]] = (),
    sender: str = "S",
) -> HeldRun:
    """The worker's protocol: a chunk books what it can (arq brings it back for the rest), each held slot
    is redeemed in process, and a grant's request reaches Twilio up to ``jitter_s`` later.

    Chunks are (arrival, costs, flow); the flow ``u`` is urgent. ``rate_changes`` (time, rate): an operator
    sets the sender's rate when the simulated clock passes that time. One account, one sender.
    """
    jitter = pacers[0].jitter_s
    left = [[(f"c{n}d{i}", cost) for i, cost in enumerate(costs)] for n, (_, costs, _) in enumerate(chunks)]
    heap: list[tuple[float, int, int, Reservation | None]] = [(at, n, n, None) for n, (at, _, _) in enumerate(chunks)]
    heapq.heapify(heap)
    seq = len(heap)
    changes = sorted(rate_changes)
    run = HeldRun([], 0)
    limit = 60 * len(chunks) + 12 * sum(len(c) for _, c, _ in chunks)
    while heap:
        t, _, n, held = heapq.heappop(heap)
        while changes and changes[0][0] <= t:
            await pacers[0].admin.set_sender_rate(sender, changes.pop(0)[1])
        run.calls += 1
        run.calls_by_chunk[n] += 1
        assert run.calls < limit, "sends keep coming back"
        pacer, flow = rng.choice(pacers), chunks[n][2]
        where = {
            "account_sid": ACCOUNT_SID,
            "sender": sender,
            "sender_kind": "long_code",
            "channel": "sms",
            "lane": "urgent" if flow == "u" else "bulk",
            "flow": flow,
            "now": t,
        }
        if held is None:  # the chunk job: book, then (after the claims) hold each slot in process
            run.call_times.append(t)
            got, wait = await pacer.reserve_many(asks=left[n], lead_s=lead_s, **where)
            left[n] = still_to_book(left[n], got, wait)
            for r in got:
                run.reach = max(run.reach, r.at - t)
                seq += 1
                heapq.heappush(heap, (r.at + held_lateness(rng), seq, n, r))
            if wait is not None:
                assert wait.until > t, "a wait must move time forward"
                run.waits[wait.reason.split(":")[0]] += 1
                seq += 1
                heapq.heappush(heap, (wait.until + arq_lateness(rng), seq, n, None))
            continue
        (answer,) = await pacer.redeem_many(held=[held], **where)
        if isinstance(answer, Grant):
            run.granted[held.job_id] = granted_us(answer)
            run.flows[held.job_id] = flow
            arrival = granted_us(answer) + round(rng.uniform(0, jitter) * SECOND_US)
            run.arrivals.append((arrival, held.cost))
            await pacer.release(answer, account_sid=ACCOUNT_SID, throttled=False, now=t + 0.05)
        else:
            assert answer.reserved is not None
            assert answer.until > t, "a wait must move time forward"
            seq += 1
            again = Reservation(held.job_id, held.cost, answer.reserved, answer.until)
            heapq.heappush(heap, (answer.until + held_lateness(rng), seq, n, again))
    return run
