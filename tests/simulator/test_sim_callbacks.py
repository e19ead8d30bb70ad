"""Signed status callbacks: messages, calls, duplicates, reordering, failures to connect."""

from __future__ import annotations

import socket
import time

from sim_helpers import AC, CALLS, Api, Hit, MakeApi, Receiver, call, sms


def _status(hits: list[Hit], status: str) -> dict[str, str]:
    (form,) = [h.form for h in hits if h.form["MessageStatus"] == status]
    return form


async def test_delivered_message_callbacks(api: Api, receiver: Receiver) -> None:
    _, created = await api.send(sms(StatusCallback=receiver.url("d1")))
    hits = await receiver.wait(2, "d1")
    assert await api.sim.settle(2.0)
    assert len(receiver.hits) == 2  # none for the initial "queued"
    assert all(h.signature_ok for h in hits)
    assert all(h.method == "POST" for h in hits)
    # arrival order is not guaranteed (nor is it by Twilio): pick each by status
    sent, delivered = (_status(hits, s) for s in ("sent", "delivered"))
    assert sent["MessageStatus"] == sent["SmsStatus"] == "sent"
    assert delivered["MessageStatus"] == delivered["SmsStatus"] == "delivered"
    for form in (sent, delivered):
        assert form["MessageSid"] == form["SmsSid"] == created["sid"]
        assert (form["AccountSid"], form["ApiVersion"]) == (AC, "2010-04-01")
        assert (form["To"], form["From"]) == ("+14155550100", "+15005550006")
        assert "ErrorCode" not in form
    assert "RawDlrDoneDate" not in sent
    assert len(delivered["RawDlrDoneDate"]) == 10
    assert delivered["RawDlrDoneDate"].isdigit()
    assert hits[0].headers["I-Twilio-Idempotency-Token"] != hits[1].headers["I-Twilio-Idempotency-Token"]
    _, fetched = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{created['sid']}.json")
    assert fetched["status"] == "delivered"
    assert api.sim.counters.callbacks_sent == 2


async def test_undelivered_message_callback_carries_the_error(api: Api, receiver: Receiver) -> None:
    await api.send(sms(to="+14155553003", StatusCallback=receiver.url("d2")))
    hits = await receiver.wait(2, "d2")
    assert all(h.signature_ok for h in hits)
    final = _status(hits, "undelivered")
    assert final["MessageStatus"] == "undelivered"
    assert (final["ErrorCode"], final["ErrorMessage"]) == ("30003", "Unreachable destination handset")
    assert "RawDlrDoneDate" in final


async def test_failed_message_callback(api: Api, receiver: Receiver) -> None:
    await api.send(sms(to="+14155553007", StatusCallback=receiver.url("d3")))
    final = _status(await receiver.wait(2, "d3"), "failed")
    assert (final["MessageStatus"], final["ErrorCode"]) == ("failed", "30007")
    assert "RawDlrDoneDate" not in final


async def test_messaging_service_in_callbacks(api: Api, receiver: Receiver) -> None:
    service = "MG" + "c" * 32
    await api.send(
        {"To": "+14155550100", "MessagingServiceSid": service, "Body": "x", "StatusCallback": receiver.url()}
    )
    hits = await receiver.wait(2)
    assert {h.form["MessagingServiceSid"] for h in hits} == {service}
    assert all(h.form["From"] for h in hits)
    assert api.sim.messages[0].from_ == hits[0].form["From"]


async def test_call_progress_events_with_sequence_numbers(api: Api, receiver: Receiver) -> None:
    events = [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")]
    _, created = await api.send([*call(StatusCallback=receiver.url("c1")).items(), *events], path=CALLS)
    hits = await receiver.wait(4, "c1")
    assert all(h.signature_ok for h in hits)
    forms = sorted((h.form for h in hits), key=lambda f: int(f["SequenceNumber"]))
    assert [f["CallStatus"] for f in forms] == ["initiated", "ringing", "in-progress", "completed"]
    assert [f["SequenceNumber"] for f in forms] == ["0", "1", "2", "3"]
    for form in forms:
        assert form["CallSid"] == created["sid"]
        assert (form["CallbackSource"], form["Direction"], form["ApiVersion"]) == (
            "call-progress-events",
            "outbound-api",
            "2010-04-01",
        )
        assert (form["To"], form["From"], form["AccountSid"]) == ("+14155550100", "+15005550006", AC)
        assert form["Timestamp"].endswith("+0000")
    final = forms[-1]
    assert final["SipResponseCode"] == "200"
    assert int(final["CallDuration"]) > 0
    assert int(final["Duration"]) >= 1
    assert "SipResponseCode" not in forms[0]
    assert await api.sim.settle(2.0)
    _, fetched = await api.get(f"/2010-04-01/Accounts/{AC}/Calls/{created['sid']}.json")
    assert (fetched["status"], fetched["duration"]) == ("completed", final["CallDuration"])


async def test_call_without_events_sends_only_the_terminal_one(api: Api, receiver: Receiver) -> None:
    await api.send(call(StatusCallback=receiver.url("c2")), path=CALLS)
    await api.send(call(to="+14155554001", StatusCallback=receiver.url("c3")), path=CALLS)
    await receiver.wait(1, "c2")
    await receiver.wait(1, "c3")
    assert await api.sim.settle(2.0)
    (only,) = receiver.on("c2")
    assert (only.form["CallStatus"], only.form["SequenceNumber"]) == ("completed", "0")
    (busy,) = receiver.on("c3")
    assert (busy.form["CallStatus"], busy.form["SipResponseCode"], busy.form["CallDuration"]) == ("busy", "486", "0")
    assert "Duration" not in busy.form


async def test_busy_call_skips_answered(api: Api, receiver: Receiver) -> None:
    events = [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered")]
    await api.send([*call(to="+14155554001", StatusCallback=receiver.url()).items(), *events], path=CALLS)
    await receiver.wait(3)
    assert await api.sim.settle(2.0)
    by_sequence = sorted(receiver.hits, key=lambda h: int(h.form["SequenceNumber"]))
    assert [h.form["CallStatus"] for h in by_sequence] == ["initiated", "ringing", "busy"]


async def test_call_status_callback_by_get(api: Api, receiver: Receiver) -> None:
    await api.send(call(StatusCallback=receiver.url("g") + "?tag=1", StatusCallbackMethod="GET"), path=CALLS)
    (hit,) = await receiver.wait(1, "g")
    assert hit.method == "GET"
    assert hit.signature_ok
    assert hit.form["CallStatus"] == "completed"


async def test_application_sid_means_no_status_callback(api: Api, receiver: Receiver) -> None:
    form = {"To": "+14155550100", "From": "+15005550006", "ApplicationSid": "AP" + "d" * 32}
    await api.send({**form, "StatusCallback": receiver.url()}, path=CALLS)
    assert await api.sim.settle(2.0)
    assert receiver.hits == []
    assert api.sim.calls[0].status == "completed"


async def test_duplicates(make_api: MakeApi, receiver: Receiver) -> None:
    api = await make_api(callback_duplicate_rate=1.0)
    await api.send(sms(StatusCallback=receiver.url()))
    hits = await receiver.wait(4)
    assert await api.sim.settle(2.0)
    assert len(receiver.hits) == 4
    assert sorted(h.form["MessageStatus"] for h in hits) == ["delivered", "delivered", "sent", "sent"]
    tokens = [h.headers["I-Twilio-Idempotency-Token"] for h in hits]
    assert len(set(tokens)) == 2  # a repeat of one event keeps its token


async def test_dropped_callbacks_are_never_sent_and_the_record_still_moves_on(
    make_api: MakeApi, receiver: Receiver
) -> None:
    api = await make_api(callback_drop_rate=1.0)
    await api.send(sms(StatusCallback=receiver.url()))
    assert await api.sim.settle(2.0)
    assert receiver.hits == []
    assert api.sim.messages[0].status == "delivered"
    api.sim.config.callback_drop_rate = 0.5
    for i in range(20):
        await api.send(sms(to=f"+1415555{i:04d}", StatusCallback=receiver.url()))
    assert await api.sim.settle(2.0)
    assert 5 < len(receiver.hits) < 35  # of 40: about half were lost


async def test_reorder(make_api: MakeApi, receiver: Receiver) -> None:
    api = await make_api(callback_reorder_rate=1.0, callback_delay_s=0.15)
    await api.send(sms(StatusCallback=receiver.url("m")))
    events = [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered")]
    await api.send([*call(StatusCallback=receiver.url("c")).items(), *events], path=CALLS)
    await receiver.wait(2, "m")
    await receiver.wait(4, "c")
    assert [h.form["MessageStatus"] for h in receiver.on("m")] == ["delivered", "sent"]
    sequence = [int(h.form["SequenceNumber"]) for h in receiver.on("c")]
    assert sorted(sequence) == [0, 1, 2, 3]
    assert sequence != [0, 1, 2, 3]
    assert await api.sim.settle(2.0)
    # the records still move forward only
    assert api.sim.messages[0].status == "delivered"
    assert api.sim.calls[0].status == "completed"


async def test_callbacks_off_still_progress(make_api: MakeApi, receiver: Receiver) -> None:
    api = await make_api(callbacks=False)
    _, created = await api.send(sms(to="+14155553005", StatusCallback=receiver.url()))
    assert await api.sim.settle(2.0)
    assert receiver.hits == []
    _, fetched = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{created['sid']}.json")
    assert (fetched["status"], fetched["error_code"]) == ("undelivered", 30005)
    assert api.sim.sends_by_callback() == {receiver.url(): 1}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_callback_is_retried_once_then_failed(make_api: MakeApi) -> None:
    api = await make_api(callback_retry_delay_s=0.01)
    await api.send(sms(StatusCallback=f"http://127.0.0.1:{_closed_port()}/cb"))
    assert await api.sim.settle(3.0)
    counters = api.sim.counters
    assert (counters.callbacks_retried, counters.callbacks_failed, counters.callbacks_sent) == (2, 2, 0)
    assert api.sim.messages[0].status == "delivered"


async def test_error_answer_is_not_retried(api: Api, receiver: Receiver) -> None:
    receiver.reply_status = 500
    await api.send(sms(StatusCallback=receiver.url()))
    await receiver.wait(2)
    assert await api.sim.settle(2.0)
    assert len(receiver.hits) == 2
    counters = api.sim.counters
    assert (counters.callbacks_sent, counters.callbacks_rejected, counters.callbacks_retried) == (2, 2, 0)


async def test_stop_cancels_pending_steps(make_api: MakeApi, receiver: Receiver) -> None:
    api = await make_api(callback_delay_s=30.0)
    await api.send(sms(StatusCallback=receiver.url()))
    assert not await api.sim.settle(0.05)
    await api.sim.stop()
    assert receiver.hits == []
    assert api.sim.messages[0].status == "queued"
    assert await api.sim.settle(0.01)


async def test_stop_gives_up_on_slow_receivers(make_api: MakeApi, receiver: Receiver) -> None:
    receiver.reply_delay_s = 10.0
    api = await make_api()
    await api.send(sms(StatusCallback=receiver.url()))
    await receiver.wait(1)
    started = time.perf_counter()
    await api.sim.stop(drain_timeout_s=0.1)
    # it stopped without waiting for the receiver's answer: sooner than the receiver takes to give it
    assert time.perf_counter() - started < receiver.reply_delay_s
    assert await api.sim.settle(0.01)
