"""A delivery event is one typed value, turned into the store's row in one place (``DeliveryEvent.row``)."""

from __future__ import annotations

from notifyq import statuses as st
from notifyq.ids import new_ids
from notifyq.statuses import Channel
from notifyq.store import Store
from notifyq.worker.events import DeliveryEvent

ACCOUNT = "AC" + "0" * 32


async def _delivery(store: Store) -> str:
    [delivery_id] = new_ids(1)
    batch = {
        "id": new_ids(1)[0], "created_at": 1.0, "idempotency_key": None, "channel": "sms", "account": "main",
        "account_sid": ACCOUNT, "sender": "+15005550006", "messaging_service_sid": None,
        "priority": "bulk", "content": {}, "send_at": None, "valid_until": 4e9, "total": 0,
        "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    await store.create_batch(batch, [[(delivery_id, "+14155550100", None)]])
    await store.flush_send_writes(claim_ids=[(delivery_id, ACCOUNT)], accepted=[], now=100.0)
    return delivery_id


def test_a_row_holds_what_the_event_says_and_leaves_out_what_it_does_not() -> None:
    event = DeliveryEvent("attempt", 5.0, "created SM1", status="queued", http_status=201, applied=True, data={})
    assert event.row() == {
        "at": 5.0, "kind": "attempt", "reason": "created SM1", "status": "queued", "http_status": 201,
        "applied": True, "data": {},
    }  # fmt: skip
    assert DeliveryEvent("state", 6.0).row("d1") == {"delivery_id": "d1", "at": 6.0, "kind": "state"}


async def test_an_outcomes_event_takes_the_status_and_code_recorded_with_it(store: Store) -> None:
    delivery_id = await _delivery(store)
    failed = DeliveryEvent("attempt", 101.0, "fail: invalid number", http_status=400, duration_ms=12.5, data={"a": 1})
    await store.record_outcome(
        delivery_id, channel=Channel.SMS, status=st.FAILED, error_code=21211, error_message="x", event=failed.row()
    )
    [event] = await store.events(delivery_id)
    assert (event["kind"], event["status"], event["error_code"]) == ("attempt", "failed", 21211)
    assert event["http_status"] == 400
    assert (event["duration_ms"], event["reason"], event["data"], event["at"]) == (12.5, failed.reason, {"a": 1}, 101.0)


async def test_events_kept_alone_and_with_a_201_are_whole(store: Store) -> None:
    delivery_id = await _delivery(store)
    await store.add_event(DeliveryEvent("lookup", 102.0, "look-up failed").row(delivery_id))
    accepted = DeliveryEvent("attempt", 103.0, "created SM1", status="queued", http_status=201, applied=True)
    sid = "SM" + "a" * 32
    await store.record_accepted(
        delivery_id, channel=Channel.SMS, sid=sid, status="queued", segments=1, event=accepted.row()
    )
    events = await store.events(delivery_id)
    assert [(e["kind"], e["status"], e["error_code"], e["reason"], e["at"]) for e in events] == [
        ("lookup", None, None, "look-up failed", 102.0),
        ("attempt", "queued", None, "created SM1", 103.0),
    ]
    assert (events[1]["http_status"], events[1]["applied"], events[1]["data"]) == (201, True, None)
