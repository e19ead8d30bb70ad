"""The reconciler: what lost callbacks and lost jobs left unsettled is brought back.

Twilio sends each status callback once and retries only a failed connection, so a callback can be
lost; a worker can die with a create unanswered, and a job can be lost with Redis' data. Every
``interval_s`` one worker (arq's unique cron) makes a pass:

* **Stale deliveries.** Twilio holds them (they have a SID) and their status has not moved for longer
  than its deadline (``stale_after_s``). Per account, oldest first, as many as the account's budget
  allows are fetched, and each answer is applied like a callback (source ``reconcile``). The budget
  (``pacing/budget.py``) is ``requests_per_minute`` per account: a pass spends what the account saved
  up since the last one (at most one pass's share), so a backlog of any size drains at that rate, and
  nothing is booked that is not fetched. Each fetch also holds an account lease in the pacer while it
  is in flight, as a send does: the account's requests in flight count it. A fetch that fails for a
  reason worth retrying (429, 5xx, no answer) leaves its delivery where it is in the order, and the
  next pass asks again; one that Twilio refuses for good (a 404) moves its delivery to the back (it is
  asked again after its deadline), so it cannot spend the budget of those behind it on every pass.
* **Unanswered attempts without a job.** ``dispatching`` without a SID, unchanged for
  ``unanswered_after_s``, and no job in Redis (its look-ups gave up, or the job was lost with Redis'
  data): each gets a send job again, which looks in Twilio's list before anything is sent again.
* **Interrupted enqueues.** A batch not marked enqueued ``interrupted_after_s`` after it was created
  (the process queueing its jobs stopped, or Redis refused them): its deliveries without a job are
  queued (``worker/requeue.py``, what ``notifyq requeue`` does for every batch).
* **Queue depth.** Each lane's depth ledger is synced again against the lane, ``DEPTH_HEAL_PER_PASS``
  ids a pass, going on where the last pass stopped (``DepthLedger.heal``): an entry whose job left the
  lane unseen (a worker killed between arq's finish and its sync) leaves the ledger, and a job the
  ledger missed is counted. The gauge drives autoscaling and alerts: it must not drift for good.

Each pass logs how far behind it is (``Store.reconcile_backlog``); ``notifyq status`` and the API's
``/metrics`` say the same.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import structlog

from notifyq.classify import Action, classify
from notifyq.errors import ProviderError, TwilioApiError
from notifyq.pacing import RequestBudget, Wait
from notifyq.provider.twilio_values import fetched_report
from notifyq.queue.jobs import LANES, SendJob
from notifyq.settings import ReconcileSettings, TwilioAccount
from notifyq.statuses import Channel
from notifyq.store import StatusReport
from notifyq.worker.requeue import sweep_interrupted

if TYPE_CHECKING:
    from notifyq.worker.app import WorkerApp

log = structlog.get_logger("notifyq.reconcile")

FETCHES_AT_ONCE: Final = 8  # per account; the account's in-flight cap bounds them too
DEPTH_HEAL_PER_PASS: Final = 5000  # ids of each lane's depth ledger and queue synced again per pass
LEASE_WAIT_S: Final = 1.0  # a fetch waits this long for its turn at a full account; then the next pass takes it
HTTP_TOO_MANY_REQUESTS: Final = 429
TWILIO_TOO_MANY_REQUESTS: Final = 20429
Stale = tuple[str, str, str, str]  # (delivery id, batch id, channel, SID)


def pass_share(cfg: ReconcileSettings) -> int:
    """The most fetches one pass may make per account: one interval's share of the budget, at most a minute's."""
    share = cfg.requests_per_minute * min(cfg.interval_s, 60.0) / 60.0
    return max(1, min(math.floor(share), cfg.max_per_run))


async def reconcile_once(app: WorkerApp, *, now: float | None = None) -> dict[str, int]:
    """One pass: fetch what is stale (within each account's budget), queue what has no job but should.

    What should have a job: unanswered attempts past their deadline, and interrupted enqueues' deliveries.

    ``now`` replaces the clock (the stale deadlines and the budget's), for tests.
    """
    cfg = app.settings.reconcile
    clock = time.time() if now is None else now
    until = time.monotonic() + cfg.interval_s  # no fetch starts after this: the next pass takes over
    budget = RequestBudget(app.redis, "reconcile")
    counts: Counter[str] = Counter(dict.fromkeys(("stale", "fetched", "applied", "deferred", "errors"), 0))
    # the environment's and the registry's; a deauthorised account is asked nothing (its login is revoked)
    accounts = {a.account_sid: a.twilio for a in await app.accounts.all() if not a.deauthorized}
    for account in accounts.values():
        counts.update(await _reconcile_account(app, account, budget, clock, until=until, now=now))
    counts["requeued"] = await _requeue_unanswered(app, clock)
    counts["interrupted"] = await sweep_interrupted(app.store, app.jobs, app.settings, grace_s=cfg.interrupted_after_s)
    counts["depth_corrected"] = await _heal_depth(app)
    if counts["stale"] or counts["requeued"] or counts["interrupted"] or counts["depth_corrected"]:
        behind = await app.store.reconcile_backlog(
            older_than=cfg.stale_after_s, unanswered_after_s=cfg.unanswered_after_s, now=time.time()
        )
        log.info(
            "reconciled",
            **counts,
            stale_left=behind.stale,
            oldest_stale_s=behind.oldest_stale_s,
            unanswered=behind.unanswered,
        )
    return dict(counts)


async def _reconcile_account(
    app: WorkerApp, account: TwilioAccount, budget: RequestBudget, clock: float, *, until: float, now: float | None
) -> Counter[str]:
    cfg = app.settings.reconcile
    sid = account.account_sid
    stale = await app.store.stale(older_than=cfg.stale_after_s, now=clock, limit=cfg.max_per_run, account_sid=sid)
    counts: Counter[str] = Counter(stale=len(stale))
    if not stale:
        return counts
    if await app.pacer.admin.paused(sid):
        counts["deferred"] += len(stale)  # its credentials or the account itself are refused: nothing is asked
        return counts
    allowed = await budget.take(sid, len(stale), per_minute=cfg.requests_per_minute, burst=pass_share(cfg), now=now)
    counts["deferred"] += len(stale) - allowed  # over the account's budget: a later pass takes them, oldest first
    room = asyncio.Semaphore(FETCHES_AT_ONCE)
    results = await asyncio.gather(*(_fetch(app, account, row, room, until) for row in stale[:allowed]))
    reports = [r for r in results if isinstance(r, StatusReport)]
    counts.update(r for r in results if isinstance(r, str))
    counts["fetched"] += len(reports)
    if reports:
        applied = await app.store.apply_reports(reports)
        counts["applied"] += sum(1 for r in applied if r.applied)
    return counts


async def _fetch(
    app: WorkerApp, account: TwilioAccount, row: Stale, room: asyncio.Semaphore, until: float
) -> StatusReport | str:
    """Fetch one stale delivery under an account lease: its report, or what became of it (``deferred``, ``errors``)."""
    delivery_id, _batch_id, channel, sid = row
    async with room:
        if time.monotonic() > until:
            return "deferred"
        lease = await app.pacer.lease(account.account_sid, wait_s=LEASE_WAIT_S)
        if isinstance(lease, Wait):
            return "deferred"
        error: ProviderError | None = None
        try:
            resource = "Calls" if Channel(channel) is Channel.CALL else "Messages"
            found = await app.twilio.fetch(account, resource, sid)
        except ProviderError as exc:
            error = exc
        finally:
            throttled = isinstance(error, TwilioApiError) and (
                error.status == HTTP_TOO_MANY_REQUESTS or error.code == TWILIO_TOO_MANY_REQUESTS
            )
            await app.pacer.release(lease, account_sid=account.account_sid, throttled=throttled)
    if error is not None:
        await _fetch_failed(app, account, delivery_id, error)
        return "errors"
    return _report(delivery_id, sid, found)


async def _fetch_failed(app: WorkerApp, account: TwilioAccount, delivery_id: str, exc: ProviderError) -> None:
    """Classify a failed fetch: asked again next pass, or the account paused, or asked again after the deadline."""
    api = exc if isinstance(exc, TwilioApiError) else None
    verdict = classify(api.status, api.code) if api else classify(None, None)
    log.warning("reconcile fetch failed", delivery_id=delivery_id, error=str(exc), action=str(verdict.action))
    if verdict.action is Action.RETRY:
        return  # still the oldest: the next pass asks again, within the budget
    if verdict.action is Action.PAUSE_ACCOUNT:
        await app.pacer.admin.pause_account(account.account_sid, f"{api.code if api else None}: {exc}")
        return
    event = {
        "at": time.time(),
        "kind": "reconcile",
        "error_code": api.code if api else None,
        "http_status": api.status if api else None,
        "reason": f"fetch refused ({verdict.reason}); asked again after its deadline",
    }
    await app.store.touch_stale(delivery_id, event)


async def _requeue_unanswered(app: WorkerApp, clock: float) -> int:
    """Give a send job to each unanswered attempt past its deadline that has none (oldest first)."""
    cfg = app.settings.reconcile
    rows = await app.store.unanswered(older_than=clock - cfg.unanswered_after_s, limit=cfg.max_per_run)
    if not rows:
        return 0
    present = await app.jobs.has_job([(did, batch_id, seq) for did, batch_id, seq, _ in rows])
    requeued = 0
    for (did, batch_id, _seq, variables), has in zip(rows, present, strict=True):
        if has:
            continue  # its job looks again after its backoff, or runs now
        try:
            batch = await app.dispatcher.batches.get(batch_id)
        except KeyError as exc:  # its account is no longer configured: nothing can look it up
            log.warning("unanswered attempt of an unknown account", delivery_id=did, account=str(exc))
            continue
        job = SendJob(did, batch_id, batch.cost(variables))
        if await app.jobs.defer(batch.row.priority, job, at_s=time.time()):
            requeued += 1
            log.warning("unanswered attempt without a job queued again", delivery_id=did, batch_id=batch_id)
    return requeued


async def _heal_depth(app: WorkerApp) -> int:
    """Sync the next ids of each lane's depth ledger and queue again; how many entries were wrong."""
    corrected = 0
    for lane, queue in LANES.items():
        healed = await app.jobs.ledger.heal(lane, queue, limit=DEPTH_HEAL_PER_PASS)
        if healed.dropped or healed.added:
            # also the sync arq's finish is about to make, when the pass comes first
            log.info("queue depth corrected", lane=lane, dropped=healed.dropped, added=healed.added)
        corrected += healed.dropped + healed.added
    return corrected


def _report(delivery_id: str, sid: str, found: dict[str, Any]) -> StatusReport:
    """The fetched record as a report, checked and bounded as a callback's form is (``twilio_values``)."""
    read = fetched_report(delivery_id, sid, found, at=time.time())
    if read.invalid_fields:
        log.warning("reconcile fetch: values not valid", delivery_id=delivery_id, fields=read.invalid_fields)
    return read.report
