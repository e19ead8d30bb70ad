"""The reconciler's view: deliveries Twilio holds whose status has not moved past its deadline, oldest first,
and how far behind it is."""

from __future__ import annotations

from typing import Any

from notifyq.statuses import Channel
from notifyq.store import ReconcileBacklog, StatusReport, Store, accepted_send

from .helpers import ACCOUNT, create_deliveries

DEADLINES = {"queued": 100.0, "sent": 1000.0}


async def _at_twilio(store: Store, statuses: list[tuple[str, float]]) -> list[str]:
    """One delivery per (status, time of its last change), each with a SID."""
    ids = await create_deliveries(store, [f"+1415555{i:04d}" for i in range(len(statuses))])
    await store.flush_send_writes(claim_ids=[(d, ACCOUNT) for d in ids], accepted=[], now=1.0)
    for i, (did, (status, at)) in enumerate(zip(ids, statuses, strict=True)):
        sid = f"SM{i:032x}"
        params = accepted_send(did, channel=Channel.SMS, sid=sid, status="queued", segments=1)
        await store.flush_send_writes(claim_ids=[], accepted=[(params, {"at": at})], now=at)
        if status != "queued":
            await store.apply_reports([StatusReport(did, sid, status, "callback", at)])
        await store.touch_stale(did, {"at": at, "kind": "state", "reason": "as of the test"})
    return ids


async def test_a_delivery_is_stale_past_its_statuss_deadline_oldest_first(store: Store) -> None:
    ids = await _at_twilio(store, [("queued", 50.0), ("queued", 10.0), ("sent", 20.0), ("queued", 150.0)])
    batch_id = (await store.get_delivery(ids[0])).batch_id
    stale = await store.stale(older_than=DEADLINES, now=200.0, limit=10)
    assert stale == [(ids[1], batch_id, "sms", f"SM{1:032x}"), (ids[0], batch_id, "sms", f"SM{0:032x}")]
    assert [d for d, *_ in await store.stale(older_than=DEADLINES, now=200.0, limit=1)] == [ids[1]]
    assert await store.stale(older_than={}, now=200.0, limit=10) == []
    assert [d for d, *_ in await store.stale(older_than=DEADLINES, now=2000.0, limit=10)] == [
        ids[1],
        ids[2],
        ids[0],
        ids[3],
    ]


async def test_only_the_accounts_own_stale_deliveries_when_one_is_named(store: Store) -> None:
    ids = await _at_twilio(store, [("queued", 10.0)])
    assert [d for d, *_ in await store.stale(older_than=DEADLINES, now=200.0, limit=10, account_sid=ACCOUNT)] == ids
    assert await store.stale(older_than=DEADLINES, now=200.0, limit=10, account_sid="AC" + "1" * 32) == []


async def test_a_touched_delivery_goes_to_the_back_of_the_order_with_the_reason(store: Store) -> None:
    ids = await _at_twilio(store, [("queued", 10.0), ("queued", 20.0)])
    event: dict[str, Any] = {"at": 30.0, "kind": "reconcile", "reason": "Twilio answered 404"}
    await store.touch_stale(ids[0], event)
    assert [d for d, *_ in await store.stale(older_than=DEADLINES, now=500.0, limit=10)] == [ids[1], ids[0]]
    assert [(e["kind"], e["reason"]) for e in await store.events(ids[0])][-1] == ("reconcile", "Twilio answered 404")


async def test_the_backlog_counts_the_stale_its_oldest_age_and_the_unanswered(store: Store) -> None:
    empty = await store.reconcile_backlog(older_than=DEADLINES, unanswered_after_s=60.0, now=200.0)
    assert empty == ReconcileBacklog(stale=0, oldest_stale_s=0.0, unanswered=0)
    await _at_twilio(store, [("queued", 10.0), ("queued", 50.0), ("queued", 150.0)])
    unanswered = await create_deliveries(store, ["+14155559999"])
    await store.flush_send_writes(claim_ids=[(unanswered[0], ACCOUNT)], accepted=[], now=120.0)
    backlog = await store.reconcile_backlog(older_than=DEADLINES, unanswered_after_s=60.0, now=200.0)
    assert backlog == ReconcileBacklog(stale=2, oldest_stale_s=190.0, unanswered=1)
    later = await store.reconcile_backlog(older_than=DEADLINES, unanswered_after_s=100.0, now=200.0)
    assert later.unanswered == 0
