"""What operators ask: how deep are the lanes, how far is a batch, which accounts are paused."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from notifyq.pacing import PacingAdmin
from notifyq.producer import Producer
from notifyq.queue.connect import redis_from_url
from notifyq.queue.inbox import CallbackInbox, dead_letters
from notifyq.queue.jobs import JobQueue
from notifyq.settings import Settings
from notifyq.store import Store


async def gather_status(settings: Settings, batch_id: str | None) -> dict[str, Any]:
    """Deliveries queued per lane, callback backlog and dead letter, paused accounts, reconciler backlog, a batch."""
    redis = redis_from_url(settings.redis_url or "")
    store = await Store.open(settings.sqlalchemy_url())
    try:
        jobs = JobQueue(redis)
        pacing = PacingAdmin(redis, settings)
        out: dict[str, Any] = {
            "queue_depth": {lane: depth.as_dict() for lane, depth in (await jobs.depth()).items()},
            "callback_backlog": await CallbackInbox(redis, store).backlog(),
            "callback_dead_letters": await dead_letters(redis).count(),
            "paused_accounts": {
                acct.account_sid: reason
                for acct in settings.twilio.accounts.values()
                if (reason := await pacing.paused(acct.account_sid))
            },
            # how far behind the reconciler is: stale deliveries waiting for a fetch, the oldest one's age, and
            # unanswered attempts past their deadline
            "reconcile_backlog": asdict(
                await store.reconcile_backlog(
                    older_than=settings.reconcile.stale_after_s,
                    unanswered_after_s=settings.reconcile.unanswered_after_s,
                    now=time.time(),
                )
            ),
        }
        if batch_id:
            out["batch"] = await Producer(settings, store, jobs).batch_status(batch_id)
        return out
    finally:
        await redis.aclose()
        await store.close()


async def resume_account(settings: Settings, account_sid: str) -> None:
    """Lift a pause; waiting jobs go on at their next check."""
    redis = redis_from_url(settings.redis_url or "")
    try:
        await PacingAdmin(redis, settings).resume_account(account_sid)
    finally:
        await redis.aclose()


async def replay_batch(
    settings: Settings, batch_id: str, statuses: list[str], error_codes: list[int] | None, *, dry_run: bool
) -> dict[str, Any]:
    """Replay a batch's failed recipients (see ``Producer.replay``)."""
    producer = await Producer.open(settings)
    try:
        return await producer.replay(batch_id, statuses=statuses, error_codes=error_codes, dry_run=dry_run)
    finally:
        await producer.close()
