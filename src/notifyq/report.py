"""The figures an on-call human looks at first, read once for ``notifyq status`` and ``/metrics/cluster``.

Per lane: deliveries due and scheduled (the depth ledger), how long the oldest due one has waited,
and those in flight (a create request out) or waiting for a retry (the store). Per configured
account: requests in flight against its cap, its calls per second, whether it is paused. Per
configured sender: the rate in force (an operator's override beats the settings), jobs waiting in
its line and how far ahead its slots are booked. Then the callbacks waiting, dead-lettered, and how
far behind the reconciler is.

Everything here is what the deployment holds, the same whichever process reads it: the API serves
it as gauges at ``/metrics/cluster`` (scraped through one target), never per replica. Labels are
bounded by the settings: only configured accounts and senders, never a recipient.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import CollectorRegistry, Gauge

from notifyq.pacing import PacingAdmin
from notifyq.pacing.keys import RATES_KEY
from notifyq.pacing.senders import AccountLimits, account_limits
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import LANES, JobQueue
from notifyq.statuses import DISPATCHING, RETRYING
from notifyq.store.records import ReconcileBacklog

if TYPE_CHECKING:
    from notifyq.settings import Settings
    from notifyq.store import Store


@dataclass(frozen=True, slots=True)
class LaneFigures:
    """One lane's deliveries."""

    due: int  # due now, running ones included
    scheduled: int  # due later: a send_at, a pacing wait, a backoff
    oldest_age_s: float  # since when the oldest due delivery has been due (0: none is due)
    in_flight: int  # dispatching: a create request is (or may be) out
    retrying: int  # waiting for a retry after a retryable error (or a pacing turn that did not come)

    @property
    def depth(self) -> int:
        """Deliveries waiting in the lane's jobs, due or scheduled."""
        return self.due + self.scheduled


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One configured Twilio account, by its name in the settings."""

    account_sid: str
    in_flight: int  # REST requests in flight now (pacer leases)
    cap: float  # requests in flight allowed now (lowered after 429s, up to max_in_flight)
    max_in_flight: int
    calls_per_second: float  # the rate its calls are paced at
    paused: str | None  # why it is paused (20003, 30002), or None

    @property
    def use(self) -> float:
        """Share of its cap in use, 0 to 1 (above 1 only while a lowered cap drains)."""
        return round(self.in_flight / self.cap, 3) if self.cap > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SenderFigures:
    """One configured sender (``pacing.senders``) or sender group (``pacing.groups``, as ``grp:<name>``)."""

    rate: float  # segments per second in force
    waiting: int  # jobs in line for a slot
    backlog_s: float  # seconds of slots booked ahead plus the line: 0 while the sender is not its own bottleneck


@dataclass(frozen=True, slots=True)
class Report:
    """The deployment's figures at one moment."""

    lanes: dict[str, LaneFigures]
    accounts: dict[str, AccountFigures]
    senders: dict[str, SenderFigures]
    callback_backlog: int
    callback_dead_letters: int
    reconcile: ReconcileBacklog
    at: float

    def as_status(self) -> dict[str, Any]:
        """The object ``notifyq status --json`` prints (the README documents its shape)."""
        return {
            "queue_depth": {lane: {"due": f.due, "later": f.scheduled} for lane, f in self.lanes.items()},
            "lanes": {
                lane: {
                    "depth": f.depth,
                    "due": f.due,
                    "scheduled": f.scheduled,
                    "oldest_age_s": f.oldest_age_s,
                    "in_flight": f.in_flight,
                    "retrying": f.retrying,
                }
                for lane, f in self.lanes.items()
            },
            "accounts": {
                name: {**asdict(a), "use": a.use, "paused": a.paused is not None, "paused_reason": a.paused}
                for name, a in self.accounts.items()
            },
            "senders": {sender: asdict(s) for sender, s in self.senders.items()},
            "paused": sorted(a.account_sid for a in self.accounts.values() if a.paused is not None),
            "paused_accounts": {a.account_sid: a.paused for a in self.accounts.values() if a.paused is not None},
            "dead_letters": {"callbacks": self.callback_dead_letters},
            "callback_backlog": self.callback_backlog,
            "callback_dead_letters": self.callback_dead_letters,
            "reconcile_backlog": asdict(self.reconcile),
        }


class _Limits(NamedTuple):
    account_sid: str
    max_in_flight: int
    calls_per_second: float


async def _every_account(store: Store, settings: Settings) -> list[tuple[str, _Limits]]:
    """The environment's accounts, then the registry's (their limits only: no secret is opened)."""
    found = [
        (n, _Limits(a.account_sid, a.max_in_flight, a.calls_per_second)) for n, a in settings.twilio.accounts.items()
    ]
    configured = {a.account_sid for _, a in found}
    found += [
        (r.name, _Limits(r.account_sid, r.max_in_flight, r.calls_per_second))
        for r in await store.account_records()
        if r.account_sid not in configured and r.name not in settings.twilio.accounts
    ]
    return found


async def gather_report(jobs: JobQueue, inbox: CallbackInbox, store: Store, settings: Settings) -> Report:
    """Read the figures from Redis (queue, pacer, callbacks) and the store (deliveries in flight, reconciler)."""
    now = time.time()
    depth = await jobs.depth()
    oldest = await jobs.oldest_due_age(now=now)
    working = await store.working_by_lane()
    lanes = {
        lane: LaneFigures(
            due=depth[lane].due,
            scheduled=depth[lane].later,
            oldest_age_s=oldest[lane],
            in_flight=working.get(lane, {}).get(DISPATCHING, 0),
            retrying=working.get(lane, {}).get(RETRYING, 0),
        )
        for lane in LANES
    }
    every = await _every_account(store, settings)
    limits = {a.account_sid: AccountLimits(a.max_in_flight, a.calls_per_second) for _, a in every}

    def limits_of(account_sid: str) -> AccountLimits:
        return limits.get(account_sid) or account_limits(settings, account_sid)

    snapshot = await PacingAdmin(jobs.redis, settings, limits=limits_of).snapshot()
    accounts: dict[str, AccountFigures] = {}
    for name, acct in every:
        seen = snapshot["accounts"].get(acct.account_sid, {})
        calls = snapshot["schedules"].get(f"cps:{acct.account_sid}", {})
        accounts[name] = AccountFigures(
            account_sid=acct.account_sid,
            in_flight=int(seen.get("in_flight", 0)),
            cap=float(seen.get("cap", acct.max_in_flight)),
            max_in_flight=acct.max_in_flight,
            calls_per_second=float(calls.get("rate", acct.calls_per_second)),
            paused=seen.get("paused"),
        )
    overrides = {
        _text(k): float(_text(v))
        for k, v in (await jobs.redis.hgetall(RATES_KEY)).items()  # type: ignore[misc]
    }
    senders: dict[str, SenderFigures] = {}
    configured_rates = {**settings.pacing.senders, **{f"grp:{n}": g.rate for n, g in settings.pacing.groups.items()}}
    for sender, configured in configured_rates.items():
        # a sender's schedule is snd:<sender>; a group's name is its schedule's (grp:<name>)
        line = snapshot["schedules"].get(sender if sender.startswith("grp:") else f"snd:{sender}", {})
        senders[sender] = SenderFigures(
            rate=float(line.get("rate", overrides.get(sender, configured))),
            waiting=int(line.get("waiting", 0)),
            backlog_s=round(float(line.get("backlog_s", 0.0)), 3),
        )
    reconcile = await store.reconcile_backlog(
        older_than=settings.reconcile.stale_after_s, unanswered_after_s=settings.reconcile.unanswered_after_s, now=now
    )
    return Report(
        lanes=lanes,
        accounts=accounts,
        senders=senders,
        callback_backlog=await inbox.backlog(),
        callback_dead_letters=await inbox.dead.count(),
        reconcile=reconcile,
        at=now,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ReportGauges:
    """The report's figures as gauges; every lane, configured account and sender has each, 0 when idle."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.oldest_due = Gauge(
            "notifyq_queue_oldest_due_seconds",
            "How long the oldest due delivery of each lane has waited (0 when none is due)",
            ["lane"],
            registry=r,
        )
        self.in_flight = Gauge(
            "notifyq_deliveries_in_flight", "Deliveries with a create request out (dispatching)", ["lane"], registry=r
        )
        self.retrying = Gauge(
            "notifyq_deliveries_retrying", "Deliveries waiting for a retry (retrying)", ["lane"], registry=r
        )
        account = ["account", "account_sid"]
        self.account_in_flight = Gauge(
            "notifyq_account_in_flight", "REST requests in flight per configured account", account, registry=r
        )
        self.account_cap = Gauge(
            "notifyq_account_in_flight_cap",
            "Requests in flight allowed now per configured account (lowered after 429s)",
            account,
            registry=r,
        )
        self.account_cps = Gauge(
            "notifyq_account_calls_per_second", "Calls per second the account's calls are paced at", account, registry=r
        )
        self.account_paused = Gauge(
            "notifyq_account_paused", "1 while the account is paused (20003, 30002), else 0", account, registry=r
        )
        self.sender_rate = Gauge(
            "notifyq_sender_rate", "Segments per second in force per configured sender", ["sender"], registry=r
        )
        self.sender_waiting = Gauge(
            "notifyq_sender_waiting_jobs", "Jobs in line for a configured sender's next slot", ["sender"], registry=r
        )
        self.sender_backlog = Gauge(
            "notifyq_sender_backlog_seconds",
            "Seconds of slots booked ahead on a configured sender (0: not its own bottleneck)",
            ["sender"],
            registry=r,
        )

    def set(self, report: Report) -> None:
        """Set every gauge from ``report``."""
        for lane, f in report.lanes.items():
            self.oldest_due.labels(lane=lane).set(f.oldest_age_s)
            self.in_flight.labels(lane=lane).set(f.in_flight)
            self.retrying.labels(lane=lane).set(f.retrying)
        for name, a in report.accounts.items():
            labels = {"account": name, "account_sid": a.account_sid}
            self.account_in_flight.labels(**labels).set(a.in_flight)
            self.account_cap.labels(**labels).set(a.cap)
            self.account_cps.labels(**labels).set(a.calls_per_second)
            self.account_paused.labels(**labels).set(1 if a.paused is not None else 0)
        for sender, s in report.senders.items():
            self.sender_rate.labels(sender=sender).set(s.rate)
            self.sender_waiting.labels(sender=sender).set(s.waiting)
            self.sender_backlog.labels(sender=sender).set(s.backlog_s)
