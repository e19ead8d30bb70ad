"""Batch intake: recipients validated and stored as they are read, and the batch still stored or refused whole."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import hypothesis
import pytest
from hypothesis import strategies as st
from sqlalchemy import Text, func, select, text

from helpers import people, sms_batch
from notifyq.api.app import STATE
from notifyq.batch import MALFORMED_JSON, BatchIntake, RecipientsNotLast, decode_json, load_request
from notifyq.client import ApiError, Client
from notifyq.errors import ValidationFailed
from notifyq.ids import new_ids
from notifyq.ops.stack import API_TOKEN, LocalStack
from notifyq.producer import Producer
from notifyq.queue.jobs import chunk_job_id, deserialize
from notifyq.store.repo import INSERT_CHUNK, Store
from notifyq.store.schema import batches, deliveries


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


async def test_a_large_batch_is_stored_in_chunks_with_seq_segments_and_chunk_jobs(stack: LocalStack) -> None:
    n = 2 * INSERT_CHUNK + 7
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
    for seq in (0, 49, 50, INSERT_CHUNK, n - 1):
        payload = deserialize(await redis.get("arq:job:" + chunk_job_id(body["id"], seq)))
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
    text = json.dumps(sms_batch(people(INSERT_CHUNK + 10)))
    broken = text.replace('"P2005"', '"P2005" oops', 1)
    assert broken != text
    status, body = await _post_raw(stack, broken)
    assert status == 400
    assert body["title"] == "Malformed JSON"
    store = stack.app[STATE].require_producer().store
    assert await _count(store, batches) == 0
    assert await _count(store, deliveries) == 0


async def test_a_bad_recipient_after_the_first_chunk_refuses_the_batch_whole(stack: LocalStack) -> None:
    recipients: list[Any] = people(INSERT_CHUNK * 2)
    recipients[INSERT_CHUNK + 5] = "+1555"
    recipients[-1] = {"to": "+14155550100"}  # misses the variables the body uses
    async with Client(stack.api_url, token=API_TOKEN) as client:
        with pytest.raises(ApiError) as info:
            await client.submit(sms_batch(recipients))
    assert info.value.status == 422
    assert sorted(e["index"] for e in info.value.problem["errors"]) == [INSERT_CHUNK + 5, 2 * INSERT_CHUNK - 1]
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


async def test_create_batch_rolls_back_when_the_recipients_raise(store: Store) -> None:
    def chunks() -> Iterator[list[tuple[str, str, dict[str, str] | None]]]:
        ids = new_ids(3 * INSERT_CHUNK)
        for k in range(3):
            yield [(did, "+14155550100", None) for did in ids[k * INSERT_CHUNK : (k + 1) * INSERT_CHUNK]]
        raise ValidationFailed([])

    batch = {
        "id": new_ids(1)[0], "created_at": 1.0, "idempotency_key": None, "channel": "sms", "account": "main",
        "account_sid": "AC" + "0" * 32, "sender": "+15005550006", "messaging_service_sid": None,
        "priority": "bulk", "content": {}, "send_at": None, "valid_until": 2.0, "total": 0,
        "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    with pytest.raises(ValidationFailed):
        await store.create_batch(batch, chunks())
    assert await _count(store, batches) == 0
    assert await _count(store, deliveries) == 0
    row = await store.create_batch(batch, [[(new_ids(1)[0], "+14155550100", {"a": "b"})]], finish=dict)
    assert (row.total, row.duplicates_dropped) == (1, 0)


def test_streamed_and_listed_recipients_are_validated_alike() -> None:
    recipients: list[Any] = [*people(3), "+1555", "+14155552000", {"to": "+14155550109"}, 7]
    for extra, accepted, indexes in (({}, [0, 1, 2], [3, 5, 6]), ({"priority": "nope"}, [], [None, 3, 5, 6])):
        payload = {**extra, **sms_batch(recipients)}  # recipients last, as load_request reads them lazily
        problems = []
        for intake in (BatchIntake(payload), BatchIntake(load_request(json.dumps(payload)))):
            # accepted recipients are handed out until the first problem (the writer stops there)
            assert [r.index for r in intake.recipients()] == accepted
            with pytest.raises(ValidationFailed) as info:
                intake.finish()
            problems.append(info.value.problems)
        assert problems[0] == problems[1]
        assert [p.index for p in problems[0]] == indexes
    empty = BatchIntake(load_request(json.dumps(sms_batch([]))))
    assert list(empty.recipients()) == []
    with pytest.raises(ValidationFailed) as info:
        empty.finish()
    assert [p.reason for p in info.value.problems] == ["needs at least one recipient"]


async def test_in_process_producer_takes_a_list(stack: LocalStack) -> None:
    producer = await Producer.open(stack.settings)
    try:
        submitted = await producer.submit(sms_batch(people(3)))
    finally:
        await producer.close()
    assert submitted.batch.total == 3


async def test_create_batch_stores_each_delivery_as_given(store: Store) -> None:
    tricky = ["plain", "é ü ß", "emoji 😀 and 🇫🇷", 'quote " backslash \\ slash /', "tab\tnew\nline\x01", "%s {x}", ""]
    recipients = [
        (did, f"+1415555{i:04d}", None if i % 5 == 0 else {"name": tricky[i % len(tricky)], "n": str(i)})
        for i, did in enumerate(new_ids(INSERT_CHUNK + 7))
    ]
    chunks = [recipients[:INSERT_CHUNK], [], recipients[INSERT_CHUNK:]]
    batch = {
        "id": new_ids(1)[0], "created_at": 1.5, "idempotency_key": None, "channel": "sms", "account": "main",
        "account_sid": "AC" + "0" * 32, "sender": "+15005550006", "messaging_service_sid": None,
        "priority": "bulk", "content": {}, "send_at": None, "valid_until": 2.5, "total": 0,
        "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    row = await store.create_batch(batch, chunks, finish=lambda: {"duplicates_dropped": 3})
    assert (row.total, row.duplicates_dropped) == (len(recipients), 3)
    c = deliveries.c
    query = select(
        c.id, c.batch_id, c.seq, c.channel, c.to_number, func.cast(c.variables, Text), c.status, c.status_rank,
        c.created_at, c.updated_at, c.valid_until, c.attempts,
    ).order_by(c.seq)  # fmt: skip
    async with store.engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(query)]
    compact = json.JSONEncoder(separators=(",", ":")).encode
    assert rows == [
        (did, batch["id"], seq, "sms", to, None if v is None else compact(v), "pending", 0, 1.5, 1.5, 2.5, 0)
        for seq, (did, to, v) in enumerate(recipients)
    ]
    if store.engine.dialect.name == "sqlite":
        async with store.engine.connect() as conn:
            kinds = await conn.execute(
                text("SELECT DISTINCT typeof(seq), typeof(status_rank), typeof(created_at), typeof(valid_until) "
                     "FROM deliveries")
            )  # fmt: skip
            assert [tuple(k) for k in kinds] == [("integer", "integer", "real", "real")]
    assert [d.variables for d in await store.list_deliveries(batch["id"], limit=10)] == [
        v for _, _, v in sorted(recipients)[:10]
    ]


@pytest.mark.parametrize(
    "array",
    [
        '["+14155550100", "+14155550101"]',
        '["+14155550100","+14155550101",{"to":"+14155550102"}]',
        '[ "+14155550100" ,\n  "+14155550101",\t"+14155550102" , \r\n "+14155550103"\n]',
        "[]",
        '["+14155550100", ]',
        '["+14155550100",, "+14155550101"]',
        '["+14155550100" "+14155550101"]',
        '["+14155550100", ',
        '["+14155550100",',
    ],
)
def test_the_lazy_recipients_array_reads_as_json_loads_does(array: str) -> None:
    text = '{"channel": "sms", "recipients": ' + array + "}"
    try:
        expected: Any = json.loads(text)["recipients"]
    except json.JSONDecodeError as e:
        expected = ("error", e.msg, e.pos)
    try:
        got: Any = list(load_request(text)["recipients"])
    except json.JSONDecodeError as e:
        got = ("error", e.msg, e.pos)
    assert got == expected


DEEP = "[" * 100_000 + "]" * 100_000
LONG = "1" * 5000


@pytest.mark.parametrize(
    "text",
    [
        '{"channel": "sms", "recipients": ["+14155550100", ' + DEEP + "]}",
        '{"channel": "sms", "recipients": ["+14155550100", ' + LONG + "]}",
        '{"channel": "sms", "recipients": [' + LONG + ', "+14155550100"]}',
        '{"metadata": ' + DEEP + ', "recipients": ["+14155550100"]}',
        '{"timeout": ' + LONG + ', "recipients": ["+14155550100"]}',
        '{"recipients": ["+14155550100"], "metadata": ' + DEEP + "}",
        '{"recipients": ["+14155550100"], "timeout": -' + LONG + "}",
        DEEP,
        LONG,
    ],
)
def test_json_nobody_can_read_is_one_kind_of_error_wherever_it_is(text: str) -> None:
    with pytest.raises(MALFORMED_JSON) as info:
        _read_as_the_api_does(text)
    assert "set_int_max_str_digits" not in str(info.value)


def _read_as_the_api_does(text: str) -> list[tuple[str, dict[str, str] | None]] | None:
    """What POST /v1/batches does with a request's text before the store: read it, validate every recipient.

    The accepted recipients (None when the text is not an object); raises what the API answers 4xx for.
    """
    payload = load_request(text)
    if not isinstance(payload, dict):
        return None
    try:
        intake = BatchIntake(payload, accounts=["main"])
        accepted = [(to, variables) for to, variables, _, _ in intake.accepted()]
    except RecipientsNotLast:
        intake = BatchIntake(decode_json(text), accounts=["main"])
        accepted = [(to, variables) for to, variables, _, _ in intake.accepted()]
    intake.finish()
    if intake.spec is None:  # pragma: no cover - finish() raised
        raise AssertionError
    # accepted: every piece of text in it can be encoded, so the worker can send it
    spec = [getattr(intake.spec, f.name) for f in dataclasses.fields(intake.spec) if not f.name.startswith("_")]
    json.dumps([spec, accepted], default=str, ensure_ascii=False).encode()
    return accepted


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=()), max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
# batch requests with every kind of JSON value in their fields, text with lone surrogates and controls included
BATCH_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["sms", "mms", "call"]) | _JSON_VALUES,
        "from": st.just("+15005550006") | _JSON_VALUES,
        "body": st.text(st.characters(exclude_categories=()), max_size=12) | _JSON_VALUES,
        "media_url": st.lists(st.just("https://example.com/a.png") | _JSON_VALUES, max_size=2) | _JSON_VALUES,
        "metadata": st.dictionaries(st.text(max_size=3), _JSON_VALUES, max_size=3) | _JSON_VALUES,
        "idempotency_key": st.text(st.characters(exclude_categories=()), max_size=6) | _JSON_VALUES,
        "recipients": st.lists(
            st.just("+14155550100")
            | st.fixed_dictionaries({"to": st.just("+14155550101")}, optional={"vars": _JSON_VALUES})
            | _JSON_VALUES,
            max_size=3,
        )
        | _JSON_VALUES,
    },
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(BATCH_REQUESTS, st.integers(min_value=0, max_value=200), st.text(max_size=3))
def test_any_json_text_is_read_or_refused_as_bad_input(fields: dict[str, Any], cut: int, noise: str) -> None:
    """Whatever JSON (or almost-JSON) arrives, reading it ends in a batch, MALFORMED_JSON or ValidationFailed."""
    text = json.dumps(fields).replace("\\\\u", "\\u")  # let escapes through: lone surrogates reach the parser
    for candidate in (text, text[:cut] + noise + text[cut:]):
        with contextlib.suppress(*MALFORMED_JSON, ValidationFailed):
            _read_as_the_api_does(candidate)
