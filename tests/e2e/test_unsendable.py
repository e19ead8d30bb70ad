"""Stored deliveries that cannot be sent as they are: each ends ``failed`` alone, and requeue goes on past them.

Intake refuses such text now; these rows are written straight to the store, as an older version, a hand
edit or a bug would have left them.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from helpers import SENDER, settle
from notifyq import statuses as st
from notifyq.client import Client
from notifyq.ids import new_id, new_ids
from notifyq.queue.jobs import SendJob
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack
from notifyq.worker import requeue_with

LONE = "\ud800"


async def _store_batch(
    stack: LocalStack, body: str, variables: list[dict[str, str]], *, account: str = "main", enqueue: bool = True
) -> tuple[str, list[str]]:
    """A batch written to the store as given (no validation), and queued as the API would queue it."""
    now = time.time()
    batch_id = new_id()
    batch = {
        "id": batch_id, "created_at": now, "idempotency_key": None, "channel": "sms", "account": account,
        "account_sid": ACCOUNT_SID, "sender": SENDER, "messaging_service_sid": None, "priority": "bulk",
        "content": {"params": [["From", SENDER]], "body": body, "request": {}}, "send_at": None,
        "valid_until": now + 3600, "total": 0, "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    ids = new_ids(len(variables))
    rows = [(did, f"+1415555{3000 + i:04d}", v) for i, (did, v) in enumerate(zip(ids, variables, strict=True))]
    store = stack.worker_app.store
    await store.create_batch(batch, [rows])
    if enqueue:
        jobs = stack.worker_app.jobs
        start = await jobs.lane_start("bulk", not_before_ms=None)
        await jobs.enqueue_chunks(
            "bulk", [SendJob(did, batch_id, 1, seq) for seq, did in enumerate(ids)], start_ms=start
        )
        await store.mark_enqueued(batch_id)
    return batch_id, ids


async def _statuses(stack: LocalStack, ids: list[str]) -> list[tuple[str, str | None]]:
    rows = {r.id: r for r in await stack.worker_app.store.get_deliveries(ids)}
    return [(rows[i].status, rows[i].error_message) for i in ids]


async def test_a_delivery_whose_text_cannot_be_encoded_fails_alone_and_its_chunk_goes_on(stack: LocalStack) -> None:
    names = [{"name": "Ann"}, {"name": f"B{LONE}"}, {"name": "Cy"}, {}]  # the last one misses its variable
    batch_id, ids = await _store_batch(stack, "Hi {name}", names)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        status = await settle(stack, client, batch_id)
    assert status["done"], status
    found = await _statuses(stack, ids)
    assert [s for s, _ in found] == ["delivered", st.FAILED, "delivered", st.FAILED]
    assert "cannot be encoded" in (found[1][1] or "")
    assert "missing variable 'name'" in (found[3][1] or "")
    assert len(stack.simulator.sends_by_callback()) == 2  # nothing was sent for the two that failed


async def test_a_batch_whose_shared_text_cannot_be_encoded_fails_each_delivery(stack: LocalStack) -> None:
    batch_id, ids = await _store_batch(stack, f"Hi {LONE}", [{}, {}, {}])
    async with Client(stack.api_url, token=API_TOKEN) as client:
        status = await settle(stack, client, batch_id)
    assert status["done"], status
    assert status["by_status"] == {st.FAILED: 3}
    assert all("cannot be encoded" in (reason or "") for _, reason in await _statuses(stack, ids))
    assert stack.simulator.sends_by_callback() == {}


async def test_requeue_reports_a_broken_batch_and_queues_the_rest(stack: LocalStack) -> None:
    good, good_ids = await _store_batch(stack, "Hi {name}", [{"name": "Ann"}, {"name": "Bo"}], enqueue=False)
    broken, _ = await _store_batch(stack, "Hi", [{}, {}], account="gone", enqueue=False)  # no such account now
    odd, odd_ids = await _store_batch(stack, "Hi {name}", [{"name": LONE}, {}, {"name": "Cy"}], enqueue=False)
    fixed, fixed_ids = await _store_batch(stack, f"Hi {LONE}", [{}], enqueue=False)  # its form never encodes
    redis = Redis.from_url(stack.settings.redis_url or "")
    await redis.flushall()
    await redis.aclose()
    result: dict[str, Any] = await requeue_with(stack.worker_app.store, stack.worker_app.jobs, stack.settings)
    assert (result["checked"], result["requeued"], result["batches"]) == (8, 6, 3)
    assert list(result["skipped"]) == [broken]
    assert "no Twilio account 'gone'" in result["skipped"][broken]
    assert result["unrenderable"] == 2  # without its variable, or of a broken batch: queued all the same
    async with Client(stack.api_url, token=API_TOKEN) as client:
        for batch_id in (good, odd, fixed):
            assert (await settle(stack, client, batch_id))["done"]
    assert [s for s, _ in await _statuses(stack, good_ids)] == ["delivered", "delivered"]
    assert [s for s, _ in await _statuses(stack, odd_ids)] == [st.FAILED, st.FAILED, "delivered"]
    assert [s for s, _ in await _statuses(stack, fixed_ids)] == [st.FAILED]
