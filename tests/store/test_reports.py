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


async def test_call_reports_apply_in_sequence_order_not_arrival_order(store: Store) -> None:
    [did] = await create_deliveries(store, ["+14155550100"], channel="call")
    await store.flush_send_writes(claim_ids=[(did, ACCOUNT)], accepted=[], now=1.0)
    call = "CA" + "c" * 32
    results = await store.apply_reports(
        [
            StatusReport(did, call, "ringing", "callback", 2.0, sequence=1),
            StatusReport(did, call, "initiated", "callback", 3.0, sequence=0),  # an earlier event, late
            StatusReport(did, call, "in-progress", "callback", 4.0, sequence=2),
            StatusReport(did, call, "in-progress", "callback", 5.0, sequence=2),  # the same event again
        ]
    )
    assert [r.applied for r in results] == [True, False, True, False]
    assert results[1].reason == "sequence 0 is not after 1"
    row = await store.get_delivery(did)
    assert (row.status, row.status_rank, row.call_seq, row.twilio_sid) == ("in-progress", 6, 2, call)
    assert row.final_at is None
    [done] = await store.apply_reports([StatusReport(did, call, "completed", "callback", 6.0, sequence=3)])
    assert done.applied
    row = await store.get_delivery(did)
    assert (row.status, row.call_seq, row.final_at) == ("completed", 3, 6.0)


async def test_reports_for_several_deliveries_apply_each_to_its_own_row(store: Store) -> None:
    first, second = await create_deliveries(store, ["+14155550100", "+14155550101"])
    await store.flush_send_writes(claim_ids=[(first, ACCOUNT), (second, ACCOUNT)], accepted=[], now=1.0)
    other = "SM" + "d" * 32
    results = await store.apply_reports(
        [
            StatusReport(second, other, "delivered", "callback", 3.0),
            StatusReport(first, SID, "failed", "reconcile", 4.0, error_code=30007, error_message="filtered"),
            StatusReport(second, other, "failed", "callback", 5.0, error_code=30008),  # after a final: refused
        ]
    )
    assert [r.applied for r in results] == [True, True, False]
    a, b = await store.get_delivery(first), await store.get_delivery(second)
    assert (a.status, a.twilio_sid, a.error_code, a.error_message, a.final_at) == (
        "failed",
        SID,
        30007,
        "filtered",
        4.0,
    )
    assert (b.status, b.twilio_sid, b.error_code, b.final_at) == ("delivered", other, None, 3.0)
