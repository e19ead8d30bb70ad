"""The status-callback receiver: signatures, forward-only statuses, every callback kept."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from helpers import wait_until
from notifyq.client import Client
from notifyq.provider.signature import compute_signature
from notifyq.queue.inbox import run_applier
from notifyq.store.schema import inbound_messages
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack, local_stack


async def _one_pending_delivery(stack: LocalStack) -> str:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(
            {"channel": "sms", "from": "+15005550006", "body": "x", "recipients": ["+14155550199"]}
        )
    rows = [r async for r in stack.worker_app.store.iter_unsettled(["pending"])]
    assert rows
    assert rows[0][0][1] == accepted["id"]
    return rows[0][0][0]


def _form(delivery_sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": delivery_sid,
        "SmsSid": delivery_sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": "+14155550199",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **extra,
    }


async def _post(stack: LocalStack, delivery_id: str, form: dict[str, str], signature: str | None) -> int:
    url = f"{stack.api_url}/twilio/message-status/{delivery_id}"
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    async with aiohttp.ClientSession() as s, s.post(url, data=form, headers=headers) as resp:
        return resp.status


def _sign(stack: LocalStack, delivery_id: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    url = stack.settings.callback_url("message", delivery_id)
    return compute_signature(token, url, form)


@pytest.mark.parametrize(
    "signature",
    [None, "", "bm90IGEgc2lnbmF0dXJl", "wrong-token"],
    ids=["missing", "empty", "garbage", "signed-with-another-token"],
)
async def test_bad_or_missing_signature_is_rejected_and_changes_nothing(
    stack: LocalStack, signature: str | None
) -> None:
    delivery_id = await _one_pending_delivery(stack)
    form = _form("SM" + "1" * 32, "delivered")
    if signature == "wrong-token":
        signature = _sign(stack, delivery_id, form, token="another-token")
    assert await _post(stack, delivery_id, form, signature) == 403
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert row.status == "pending"
    assert await stack.worker_app.store.events(delivery_id) == []


async def test_tampered_parameters_are_rejected(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    form = _form("SM" + "1" * 32, "undelivered")
    signature = _sign(stack, delivery_id, form)
    form["MessageStatus"] = "delivered"
    assert await _post(stack, delivery_id, form, signature) == 403


async def test_signed_callback_is_applied(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    form = _form("SM" + "2" * 32, "sent")
    assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert row.status == "sent"
    assert row.twilio_sid == "SM" + "2" * 32


async def test_out_of_order_and_duplicate_message_callbacks(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    sid = "SM" + "3" * 32
    for status, extra in [
        ("delivered", {}),
        ("sent", {}),
        ("delivered", {}),
        ("sending", {}),
        ("undelivered", {"ErrorCode": "30003"}),
        ("queued", {}),
    ]:
        form = _form(sid, status, **extra)
        assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert row.status == "delivered"
    assert row.error_code is None
    events = await stack.worker_app.store.events(delivery_id)
    assert len(events) == 6
    assert [e["applied"] for e in events] == [True, False, False, False, False, False]
    assert all(e["reason"] for e in events)


async def test_read_may_follow_delivered(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    sid = "SM" + "4" * 32
    for status in ("delivered", "read", "delivered"):
        form = _form(sid, status)
        assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
    await stack.inbox.drain()
    assert (await stack.worker_app.store.get_delivery(delivery_id)).status == "read"


async def test_callback_for_another_sid_is_kept_but_not_applied(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    for sid, status in (("SM" + "5" * 32, "sent"), ("SM" + "6" * 32, "failed")):
        form = _form(sid, status)
        assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.twilio_sid) == ("sent", "SM" + "5" * 32)
    events = await stack.worker_app.store.events(delivery_id)
    assert events[-1]["applied"] is False
    assert "not this delivery" in events[-1]["reason"]


async def test_call_callbacks_are_ordered_by_sequence_number(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(
            {
                "channel": "call",
                "from": "+15005550006",
                "url": "https://example.com/twiml",
                "recipients": ["+14155550198"],
            }
        )
    pages = [p async for p in stack.worker_app.store.iter_unsettled(["pending"])]
    delivery_id = pages[0][0][0]
    sid = "CA" + "8" * 32
    url = stack.settings.callback_url("call", delivery_id)
    # arrival order: ringing(1), completed(3), in-progress(2), initiated(0), completed(3) again
    for seq, status in ((1, "ringing"), (3, "completed"), (2, "in-progress"), (0, "initiated"), (3, "completed")):
        form = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": status, "SequenceNumber": str(seq)}
        headers = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, form)}
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{stack.api_url}/twilio/call-status/{delivery_id}", data=form, headers=headers) as resp,
        ):
            assert resp.status == 200
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.call_seq) == ("completed", 3)
    events = await stack.worker_app.store.events(delivery_id)
    assert [e["applied"] for e in events] == [True, True, False, False, False]


async def test_a_receiver_without_an_applier_buffers_and_notifyq_applier_applies(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """`notifyq api --no-applier` answers 200 once the callback is in the stream; `notifyq applier`, in a
    process of its own, applies it to the store."""
    async with local_stack(
        data_dir=tmp_path, redis_url=redis_url, database_url=database_url, run_worker=False, apply_callbacks=False
    ) as stack:
        delivery_id = await _one_pending_delivery(stack)
        form = _form("SM" + "7" * 32, "sent")
        assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
        await asyncio.sleep(0.3)  # the scenario: time for an applier, were one running here, to apply it
        assert (await stack.worker_app.store.get_delivery(delivery_id)).status == "pending"  # buffered only
        assert await stack.inbox.backlog() == 1
        applier = asyncio.create_task(run_applier(stack.settings.sqlalchemy_url(), redis_url))
        try:

            async def applied() -> bool:
                return (await stack.worker_app.store.get_delivery(delivery_id)).status == "sent"

            async def acknowledged() -> bool:
                return await stack.inbox.backlog() == 0

            await wait_until(applied, "the applier to apply the callback")
            # the entry leaves the stream just after the store's commit: not cancelled in between
            await wait_until(acknowledged, "the applied callback to leave the stream")
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier
        assert await stack.inbox.backlog() == 0


# -- Twilio's values, checked and bounded at the receiver (issue #16): answered 200, never stored unbounded


async def _event_after(stack: LocalStack, delivery_id: str, form: dict[str, str]) -> dict[str, Any]:
    """Post ``form`` signed, apply it, and return the event it left."""
    assert await _post(stack, delivery_id, form, _sign(stack, delivery_id, form)) == 200
    await stack.inbox.drain()
    [event] = await stack.worker_app.store.events(delivery_id)
    return event


async def test_an_error_code_out_of_range_is_taken_as_absent_and_the_status_applied(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    event = await _event_after(
        stack, delivery_id, _form("SM" + "a" * 32, "undelivered", ErrorCode="99999999999999999999")
    )
    assert (event["applied"], event["error_code"]) == (True, None)
    assert event["data"]["ErrorCode"] == "99999999999999999999"  # what Twilio sent, kept
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.error_code) == ("undelivered", None)


@pytest.mark.parametrize(
    ("sid", "status", "reason"),
    [
        ("SM" + "g" * 32, "delivered", "not a valid MessageSid"),
        ("SM" + "b" * 40, "delivered", "not a valid MessageSid"),
        ("SM" + "b" * 32, "x" * 100, "not a valid MessageStatus"),
        ("SM" + "b" * 32, "delivered\x00", "not a valid MessageStatus"),
    ],
    ids=["sid-not-hex", "sid-too-long", "status-too-long", "status-with-nul"],
)
async def test_a_sid_or_status_that_is_not_one_is_kept_as_an_event_and_not_applied(
    stack: LocalStack, sid: str, status: str, reason: str
) -> None:
    delivery_id = await _one_pending_delivery(stack)
    event = await _event_after(stack, delivery_id, _form(sid, status))
    assert (event["applied"], event["reason"]) == (False, reason)
    assert len(event["status"]) <= 24
    assert "\x00" not in event["status"]
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.twilio_sid) == ("pending", None)


async def test_oversized_values_are_stored_bounded(stack: LocalStack) -> None:
    delivery_id = await _one_pending_delivery(stack)
    long_message = "é" * 3_000 + "\x00"  # with the rest, under the 64 KiB a callback's body may have
    form = _form("SM" + "c" * 32, "failed", ErrorCode="30008", ErrorMessage=long_message, Extra="x\x00" * 10_000)
    form["N" * 200] = "1"
    event = await _event_after(stack, delivery_id, form)
    assert event["applied"] is True
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.error_code) == ("failed", 30008)
    assert row.error_message is not None
    assert row.error_message.startswith("é" * 100)
    assert len(row.error_message) <= 1024
    assert all(len(k) <= 64 and len(v) <= 1024 and "\x00" not in v for k, v in event["data"].items())
    assert event["data"]["To"] == "+14155550199"


async def test_a_call_sequence_number_out_of_range_is_taken_as_absent(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(
            {"channel": "call", "from": "+15005550006", "url": "https://example.com/t", "recipients": ["+14155550197"]}
        )
    delivery_id = next(iter([c async for c in stack.worker_app.store.iter_unsettled(["pending"])]))[0][0]
    url = stack.settings.callback_url("call", delivery_id)
    form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "9" * 32, "CallStatus": "ringing", "SequenceNumber": "9" * 20}
    headers = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, form)}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{stack.api_url}/twilio/call-status/{delivery_id}", data=form, headers=headers) as resp,
    ):
        assert resp.status == 200
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    assert (row.status, row.call_seq) == ("ringing", None)


async def test_an_inbound_message_with_oversized_values_is_kept_bounded(stack: LocalStack) -> None:
    url = f"{stack.settings.public_base_url}/twilio/inbound"
    texter = "+1" + "5" * 40
    form = {"AccountSid": ACCOUNT_SID, "From": texter, "To": "+15005550006", "Body": "STOP\x00" + "x" * 10_000}
    form["MessageSid"] = "SM" + "z" * 32
    headers = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, form)}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{stack.api_url}/twilio/inbound", data=form, headers=headers) as resp,
    ):
        assert resp.status == 200
    engine = stack.worker_app.store.engine
    async with engine.connect() as conn:
        [row] = (await conn.execute(select(inbound_messages))).all()
    assert (len(row.from_number), row.message_sid) == (32, None)
    assert len(row.body) <= 4096
    assert "\x00" not in row.body


# -- unsigned or oversized requests are refused before their body is read (issue #16, item 7)


async def _raw_post(stack: LocalStack, path: str, head: str, body: bytes) -> bytes:
    """Write a request by hand (``body`` and then nothing: the rest never comes) and read the status line."""
    port = int(stack.api_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()
    assert b"application/problem+json" in headers
    return status_line


def _chunks(total: int, size: int = 8192) -> bytes:
    piece = b"a=" + b"x" * (size - 2)
    return b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(total // size))


FORM = "Content-Type: application/x-www-form-urlencoded\r\n"
PATHS = ["/twilio/message-status/" + "0" * 24, "/twilio/inbound"]


@pytest.mark.parametrize("path", PATHS, ids=["status", "inbound"])
async def test_a_body_declared_too_large_is_refused_413_at_once(stack: LocalStack, path: str) -> None:
    head = f"{FORM}X-Twilio-Signature: forged\r\nContent-Length: {200 * 1024 * 1024}\r\n"
    assert (await _raw_post(stack, path, head, b"")).split()[1] == b"413"


@pytest.mark.parametrize("path", PATHS, ids=["status", "inbound"])
async def test_a_chunked_body_is_cut_off_at_the_bound_with_413(stack: LocalStack, path: str) -> None:
    head = f"{FORM}X-Twilio-Signature: forged\r\nTransfer-Encoding: chunked\r\n"
    body = _chunks(stack.settings.api.callback_max_body_bytes + 16 * 1024)  # past the bound, then it stalls
    assert (await _raw_post(stack, path, head, body)).split()[1] == b"413"


@pytest.mark.parametrize("path", PATHS, ids=["status", "inbound"])
async def test_a_request_without_a_signature_is_refused_403_unread(stack: LocalStack, path: str) -> None:
    head = f"{FORM}Transfer-Encoding: chunked\r\n"
    assert (await _raw_post(stack, path, head, _chunks(16 * 1024))).split()[1] == b"403"
