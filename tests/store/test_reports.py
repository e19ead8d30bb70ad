"""Status reports (callbacks, fetches) applied set-at-a-time: forward only, in arrival order, each kept as an event."""

from __future__ import annotations

from notifyq import statuses as st
from notifyq.ids import new_ids
from notifyq.statuses import Channel
from notifyq.store import Applied, StatusReport, Store, accepted_send

from .helpers import ACCOUNT, create_deliveries

SID = "SM" + "a" * 32


async def _accepted(store: Store) -> str:
    [did] = await create_deliveries(store, ["+14155550100"])
    await store.flush_send_writes(claim_ids=[(did, ACCOUNT)], accepted=[], now=1.0)
    params = accepted_send(did, channel=Channel.SMS, sid=SID, status="queued", segments=1)
    await store.flush_send_writes(claim_ids=[], accepted=[(params, {"at": 2.0})], now=2.0)
    return did


async def test_reports_for_one_delivery_are_taken_in_arrival_order(store: Store) -> None:
    did = await _accepted(store)
    results = await store.apply_reports(
        [
            StatusReport(did, SID, "sent", "callback", 3.0),
            StatusReport(did, SID, "undelivered", "callback", 5.0, error_code=30003, error_message="unreachable"),
            StatusReport(did, SID, "sent", "reconcile", 4.0),  # late: the final status stays
        ]
    )
    assert [(r.applied, r.status) for r in results] == [(True, "sent"), (True, "undelivered"), (False, "undelivered")]
    assert results[2].reason == "undelivered is final"
    row = await store.get_delivery(did)
    stored = (row.status, row.status_rank, row.error_code, row.error_message)
    assert stored == ("undelivered", st.FINAL_RANK, 30003, "unreachable")
    assert (row.final_at, row.updated_at) == (5.0, 5.0)
    events = [(e["kind"], e["status"], e["applied"]) for e in await store.events(did)][1:]  # after the 201's
    assert events == [("callback", "sent", True), ("callback", "undelivered", True), ("reconcile", "sent", False)]


async def test_a_report_that_cannot_apply_is_kept_as_an_event_with_the_reason(store: Store) -> None:
    did = await _accepted(store)
    unknown = new_ids(1)[0]
    results = await store.apply_reports(
        [
            StatusReport(did, "SM" + "b" * 32, "delivered", "callback", 3.0),
            StatusReport(did, SID, "delivered", "callback", 4.0, invalid="ErrorCode is not a number"),
            StatusReport(unknown, SID, "delivered", "callback", 5.0),
        ]
    )
    assert results == [
        Applied(applied=False, reason=f"sid SM{'b' * 32} is not this delivery's {SID}", status="queued"),
        Applied(applied=False, reason="ErrorCode is not a number", status="queued"),
        Applied(applied=False, reason="no such delivery", status=None),
    ]
    assert (await store.get_delivery(did)).status == "queued"
    assert [(e["applied"], e["reason"]) for e in await store.events(did)][1:] == [
        (False, f"sid SM{'b' * 32} is not this delivery's {SID}"),
        (False, "ErrorCode is not a number"),
    ]
    assert [(e["applied"], e["reason"]) for e in await store.events(unknown)] == [(False, "no such delivery")]


async def test_a_report_before_the_201_adopts_the_sid(store: Store) -> None:
    [did] = await create_deliveries(store, ["+14155550100"])
    await store.flush_send_writes(claim_ids=[(did, ACCOUNT)], accepted=[], now=1.0)
    [result] = await store.apply_reports([StatusReport(did, SID, "sent", "callback", 2.0, raw={"MessageSid": SID})])
    assert result == Applied(applied=True, reason="forward", status="sent")
    row = await store.get_delivery(did)
    assert (row.status, row.twilio_sid, row.final_at) == ("sent", SID, None)
    assert (await store.events(did))[0]["data"] == {"MessageSid": SID}
