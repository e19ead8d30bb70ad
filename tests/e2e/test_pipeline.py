"""A batch through the whole pipeline: API -> store -> Redis -> burst worker -> simulator -> callbacks."""

from __future__ import annotations

from collections import Counter

import pytest

from helpers import SENDER, people, settle, sms_batch
from notifyq import statuses as st
from notifyq.api.app import STATE
from notifyq.client import ApiError, Client
from notifyq.queue.arq_compat import JOB_KEY_PREFIX
from notifyq.simulator import SimulatorConfig
from notifyq.testing import API_TOKEN, LocalStack


async def test_sms_batch_reaches_final_statuses(stack: LocalStack) -> None:
    recipients = [
        *people(40),
        {"to": "+15005550001", "vars": {"name": "x", "code": "1"}},  # 21211 invalid To
        {"to": "+15005550004", "vars": {"name": "x", "code": "1"}},  # 21610 opted out
        {"to": "+14155553005", "vars": {"name": "x", "code": "1"}},  # undelivered 30005 (simulator magic)
    ]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(recipients))
        assert accepted["total"] == 43
        status = await settle(stack, client, accepted["id"])
    assert status["done"], status
    by_status = status["by_status"]
    assert by_status.get("delivered") == 40
    assert by_status.get("failed") == 1
    assert by_status.get(st.SUPPRESSED) == 1
    assert by_status.get("undelivered") == 1
    assert status["by_error_code"] == {"21211": 1, "21610": 1, "30005": 1}
    # one live message per delivered recipient, counted at the simulator
    sends = stack.simulator.sends_by_callback()
    assert len(sends) == 41
    assert set(sends.values()) == {1}


async def test_delivery_history_records_attempt_and_callbacks(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        await settle(stack, client, accepted["id"])
        ids = list(stack.simulator.sends_by_callback())
        delivery_id = ids[0].rsplit("/", 1)[-1]
        delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "delivered"
    assert delivery["twilio_sid"].startswith("SM")
    kinds = [e["kind"] for e in delivery["events"]]
    assert kinds[0] == "attempt"
    assert kinds.count("callback") >= 2  # sent, delivered
    attempt = delivery["events"][0]
    assert ["Body", "Hi P0, code 0"] in attempt["data"]["params"]
    assert all("Token" not in str(p) for p in attempt["data"]["params"])


async def test_calls_batch_follows_sequence_numbers(stack: LocalStack) -> None:
    calls = {
        "channel": "call",
        "from": SENDER,
        "twiml": "<Response><Say>hello</Say></Response>",
        "status_callback_event": ["initiated", "ringing", "answered", "completed"],
        "recipients": ["+14155554001", "+14155554002", "+14155550123", "+14155550124"],
        "priority": "urgent",
    }
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(calls)
        status = await settle(stack, client, accepted["id"])
    assert status["done"], status
    assert status["by_status"] == {"busy": 1, "no-answer": 1, "completed": 2}


@pytest.mark.parametrize("dup_rate", [1.0])
async def test_duplicated_and_reordered_callbacks_leave_the_right_final_status(
    sim_config: SimulatorConfig, dup_rate: float, stack: LocalStack
) -> None:
    stack.simulator.config.callback_duplicate_rate = dup_rate
    stack.simulator.config.callback_reorder_rate = 1.0
    recipients = [*people(20), {"to": "+14155553003", "vars": {"name": "u", "code": "0"}}]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(recipients))
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 20, "undelivered": 1}
    assert status["by_error_code"] == {"30003": 1}


async def test_idempotency_key_returns_the_same_batch(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        first = await client.submit(sms_batch(people(3)), idempotency_key="k-1")
        second = await client.submit(sms_batch(people(3)), idempotency_key="k-1")
        assert second["id"] == first["id"]
        assert second["created"] is False
        await settle(stack, client, first["id"])
    assert len(stack.simulator.sends_by_callback()) == 3


async def test_invalid_batch_is_rejected_whole_with_every_reason(stack: LocalStack) -> None:
    bad = sms_batch([*people(2), "+1555", "nonsense"])
    async with Client(stack.api_url, token=API_TOKEN) as client:
        with pytest.raises(ApiError) as info:
            await client.submit(bad)
    assert info.value.status == 422
    indexes = sorted(e["index"] for e in info.value.problem["errors"] if "index" in e)
    assert indexes == [2, 3]
    assert stack.simulator.counters.created == 0


async def test_producer_api_needs_a_bearer_token(stack: LocalStack) -> None:
    async with Client(stack.api_url, token="wrong") as client:
        with pytest.raises(ApiError) as info:
            await client.submit(sms_batch(people(1)))
    assert info.value.status == 401


async def test_cancel_leaves_unsent_deliveries_canceled(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(5)))
        canceled = await client.cancel(accepted["id"])
        assert canceled["canceled"] == 5
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {st.CANCELED: 5}
    assert stack.simulator.counters.created == 0


async def test_status_counts_every_status_once(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(7)))
        status = await settle(stack, client, accepted["id"])
    assert sum(Counter(status["by_status"]).values()) == 7


async def test_no_job_in_redis_is_pickled(stack: LocalStack) -> None:
    from notifyq.queue.jobs import deserialize  # noqa: PLC0415

    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(sms_batch(people(3)))
    await stack.app[STATE].require_producer().drain()
    await stack.worker_app.redis.enqueue_job("reconcile", _job_id="cron:reconcile:test")  # as arq's cron does
    keys = await stack.worker_app.redis.keys(JOB_KEY_PREFIX + "*")
    assert len(keys) == 2  # the batch's chunk job and the cron job
    for key in keys:
        raw = await stack.worker_app.redis.get(key)
        assert raw is not None
        assert raw[:1] != b"\x80"  # pickle's protocol marker
        assert deserialize(raw)["f"] in {"send_chunk", "reconcile"}
