"""The reconciler: deliveries Twilio holds whose status has not moved past a deadline are fetched.

Twilio sends each status callback once and retries only a failed connection, so a callback can be
lost. Every ``interval_s`` one worker (arq's unique cron) asks Twilio for the current status of
deliveries stuck longer than their status's deadline, and applies the answer like a callback (source
``reconcile``). Requests go through the same pacer as sends (the account's in-flight leases) and a
per-account budget of ``requests_per_minute``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from notifyq.errors import ProviderError
from notifyq.queue.limiter import Grant
from notifyq.statuses import Channel
from notifyq.store.records import StatusReport

if TYPE_CHECKING:
    from notifyq.worker.main import WorkerApp

log = structlog.get_logger("notifyq.reconcile")


def budget_key(account_sid: str) -> str:
    """The pacing key of an account's reconciler requests."""
    return f"reconcile:{account_sid}"


async def reconcile_once(app: WorkerApp, *, now: float | None = None) -> dict[str, int]:
    """One pass: fetch what is stale (within the budget) and apply what Twilio says."""
    cfg = app.settings.reconcile
    now = time.time() if now is None else now
    stale = await app.store.stale(older_than=cfg.stale_after_s, now=now, limit=cfg.max_per_run)
    counts = {"stale": len(stale), "fetched": 0, "applied": 0, "deferred": 0, "errors": 0}
    reports: list[StatusReport] = []
    for delivery_id, batch_id, channel, sid in stale:
        batch = await app.sender.batches.get(batch_id)
        account = batch.account
        await app.pacer.set_sender_rate(budget_key(account.account_sid), cfg.requests_per_minute / 60.0)
        grant = await app.pacer.acquire(
            account_sid=account.account_sid,
            sender=budget_key(account.account_sid),
            sender_kind="long_code",
            channel="sms",
            cost=1,
        )
        if not isinstance(grant, Grant):
            counts["deferred"] += 1  # over this minute's budget: the next pass takes it
            continue
        try:
            resource = "Calls" if Channel(channel) is Channel.CALL else "Messages"
            found = await app.twilio.fetch(account, resource, sid)
        except ProviderError as exc:
            counts["errors"] += 1
            log.warning("reconcile fetch failed", delivery_id=delivery_id, error=str(exc))
            continue
        finally:
            await app.pacer.release(grant, account_sid=account.account_sid, throttled=False)
        counts["fetched"] += 1
        reports.append(_report(delivery_id, sid, found))
    if reports:
        results = await app.store.apply_reports(reports)
        counts["applied"] = sum(1 for r in results if r.applied)
    if stale:
        log.info("reconciled", **counts)
    return counts


def _report(delivery_id: str, sid: str, found: dict[str, Any]) -> StatusReport:
    code = found.get("error_code")
    return StatusReport(
        delivery_id=delivery_id,
        sid=sid,
        status=str(found.get("status")),
        source="reconcile",
        at=time.time(),
        error_code=int(code) if code not in (None, "") else None,
        error_message=found.get("error_message"),
        raw={k: found.get(k) for k in ("status", "error_code", "error_message", "date_updated")},
    )
