"""Batch intake: recipients validated and stored as they are read, and the batch still stored or refused whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from helpers import people, sms_batch
from notifyq.api.app import STATE
from notifyq.client import ApiError, Client
from notifyq.producer import Producer
from notifyq.queue.arq_compat import JOB_KEY_PREFIX
from notifyq.queue.jobs import chunk_job_id, deserialize
from notifyq.store import Store
from notifyq.store.bulk_insert import ROWS_PER_INSERT
from notifyq.store.schema import batches, deliveries
from notifyq.testing import API_TOKEN, LocalStack


async def _count(store: Store, table: Any) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _post_raw(stack: LocalStack, body: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(stack.api_url + "/v1/batches", data=body.encode(), headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_a_large_batch_is_stored_in_insert_blocks_with_seq_segments_and_chunk_jobs(stack: LocalStack) -> None:
    n = 2 * ROWS_PER_INSERT + 7
    recipients: list[Any] = [{"to": f"+1415{2000000 + i:07d}", "vars": {"name": "x" * (i % 200)}} for i in range(n)]
    recipients.append(recipients[0]["to"])  # a duplicate, dropped and counted
    batch = {"channel": "sms", "from": "+15005550006", "body": "Hi {name}", "recipients": recipients}
    status, body = await _post_raw(stack, json.dumps(batch))
    assert status == 202, body
    assert (body["total"], body["duplicates_dropped"]) == (n, 1)
    store = stack.app[STATE].require_producer().store
    await stack.app[STATE].require_producer().drain()
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(deliveries.c.id, deliveries.c.seq, deliveries.c.to_number, deliveries.c.variables)
                .where(deliveries.c.batch_id == body["id"])
                .order_by(deliveries.c.seq)
            )
        ).all()
    assert [r.seq for r in rows] == list(range(n))
    assert [r.to_number for r in rows] == [r["to"] for r in recipients[:n]]
    assert [r.variables for r in rows] == [r["vars"] for r in recipients[:n]]
    # every delivery is in the chunk job its seq names, with the segments of its own body
    redis = stack.app[STATE].redis
    assert redis is not None
    for seq in (0, 49, 50, ROWS_PER_INSERT, n - 1):
        payload = deserialize(await redis.get(JOB_KEY_PREFIX + chunk_job_id(body["id"], seq)))
        batch_id, ids, costs = payload["a"]
        assert batch_id == body["id"]
        at = ids.index(rows[seq].id)
        assert costs[at] == (1 if len("Hi ") + seq % 200 <= 160 else 2)


async def test_members_after_the_recipients_are_read_too(stack: LocalStack) -> None:
    # recipients first: the request is read whole instead, and the fields after it still count
    text = json.dumps({"recipients": people(3), "channel": "sms", "from": "+15005550006", "body": "Hi {name}"})
    status, body = await _post_raw(stack, text[:-1] + ', "idempotency_key": "after"}')
    assert status == 202, body
    assert body["idempotency_key"] == "after"
    status, again = await _post_raw(stack, text[:-1] + ', "idempotency_key": "after"}')
    assert (status, again["id"], again["created"]) == (200, body["id"], False)


async def test_malformed_json_inside_the_recipients_is_400_and_stores_nothing(stack: LocalStack) -> None:
    text = json.dumps(sms_batch(people(ROWS_PER_INSERT + 10)))
    broken = text.replace('"P2005"', '"P2005" oops', 1)
    assert broken != text
    status, body = await _post_raw(stack, broken)
    assert status == 400
    assert body["title"] == "Malformed JSON"
    store = stack.app[STATE].require_producer().store
    assert await _count(store, batches) == 0
    assert await _count(store, deliveries) == 0


async def test_a_bad_recipient_after_the_first_insert_block_refuses_the_batch_whole(stack: LocalStack) -> None:
    recipients: list[Any] = people(ROWS_PER_INSERT * 2)
    recipients[ROWS_PER_INSERT + 5] = "+1555"
    recipients[-1] = {"to": "+14155550100"}  # misses the variables the body uses
    async with Client(stack.api_url, token=API_TOKEN) as client:
        with pytest.raises(ApiError) as info:
            await client.submit(sms_batch(recipients))
    assert info.value.status == 422
    assert sorted(e["index"] for e in info.value.problem["errors"]) == [ROWS_PER_INSERT + 5, 2 * ROWS_PER_INSERT - 1]
    store = stack.app[STATE].require_producer().store
    assert await _count(store, batches) == 0
    assert await _count(store, deliveries) == 0


async def test_a_repeated_idempotency_key_with_an_invalid_batch_is_still_refused(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        first = await client.submit(sms_batch(people(2)), idempotency_key="k")
        assert (await client.submit(sms_batch(people(2)), idempotency_key="k"))["id"] == first["id"]
        with pytest.raises(ApiError) as info:
            await client.submit(sms_batch([*people(2), "nope"]), idempotency_key="k")
    assert info.value.status == 422


async def test_too_many_streamed_recipients_are_refused_by_count(stack: LocalStack) -> None:
    stack.settings.api.max_recipients = 5
    status, body = await _post_raw(stack, json.dumps(sms_batch([*people(6), "bad"])))
    assert status == 422
    assert body["errors"] == [{"field": "recipients", "reason": "has 7 recipients; at most 5 per batch"}]


async def test_in_process_producer_takes_a_list(stack: LocalStack) -> None:
    producer = await Producer.open(stack.settings)
    try:
        submitted = await producer.submit(sms_batch(people(3)))
    finally:
        await producer.close()
    assert submitted.batch.total == 3


async def test_a_batch_is_stored_with_its_deadline(stack: LocalStack) -> None:
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    producer = await Producer.open(stack.settings)
    try:
        later = await producer.submit(sms_batch(people(1), send_at=send_at.isoformat(), validity_s=60), enqueue="none")
        now = await producer.submit(sms_batch(people(1), validity_s=90), enqueue="none")
    finally:
        await producer.close()
    assert later.batch.valid_until == send_at.timestamp() + 60
    assert now.batch.valid_until == pytest.approx(now.batch.created_at + 90, abs=1e-5)
