"""The send path's group commit (``Store.flush_send_writes``) on SQLite and PostgreSQL, and SQLite's writer thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from notifyq import statuses as st
from notifyq.ids import new_ids
from notifyq.statuses import Channel
from notifyq.store.coalesce import WriteCoalescer
from notifyq.store.db import SqliteWriter
from notifyq.store.repo import Store, accepted_send
from notifyq.store.schema import deliveries, delivery_events

ACCOUNT = "AC" + "0" * 32


async def _batch(store: Store, numbers: list[str], variables: dict[str, str] | None = None) -> list[str]:
    ids = new_ids(len(numbers))
    batch = {
        "id": new_ids(1)[0], "created_at": 1.0, "idempotency_key": None, "channel": "sms", "account": "main",
        "account_sid": ACCOUNT, "sender": "+15005550006", "messaging_service_sid": None,
        "priority": "bulk", "content": {}, "send_at": None, "valid_until": 4e9, "total": 0,
        "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    await store.create_batch(batch, [[(d, n, variables) for d, n in zip(ids, numbers, strict=True)]])
    return ids


async def test_claims_accepts_and_suppressions_in_one_flush(store: Store) -> None:
    ids = await _batch(store, ["+14155550100", "+14155550101", "+14155550102"])
    await store.suppress(ACCOUNT, "+14155550101", source="test")
    claimed, suppressed = await store.flush_send_writes(claim_ids=[(d, ACCOUNT) for d in ids], accepted=[], now=100.0)
    assert sorted(claimed) == sorted(ids)
    assert all(c.attempts == 1 and c.dispatched_at == 100.0 for c in claimed.values())
    assert suppressed == {(ACCOUNT, "+14155550101")}
    # a second claim of the same deliveries (the job ran twice) claims nothing; the first one's 201 is
    # recorded in the same transaction
    params = accepted_send(ids[0], channel=Channel.SMS, sid="SM" + "a" * 32, status="queued", segments=1)
    again, _ = await store.flush_send_writes(
        claim_ids=[(d, ACCOUNT) for d in ids],
        accepted=[(params, {"at": 101.0, "status": "queued", "http_status": 201, "reason": "created"})],
        now=101.0,
    )
    assert again == {}
    row = await store.get_delivery(ids[0])
    assert (row.status, row.twilio_sid, row.segments, row.attempts) == ("queued", "SM" + "a" * 32, 1, 1)
    assert [(e["kind"], e["status"], e["http_status"]) for e in await store.events(ids[0])] == [
        ("attempt", "queued", 201)
    ]
    assert (await store.get_delivery(ids[1])).status == st.DISPATCHING


async def test_a_flush_keeps_every_field_of_the_claim_and_the_attempt_event(store: Store) -> None:
    """The accept and event rows go to the driver as compiled SQL: their values must arrive as Core would write them."""
    ids = await _batch(store, ["+14155550100"], variables={"name": "Zoë", "code": "0042"})
    claimed, _ = await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=100.0)
    claim = claimed[ids[0]]
    variables = {"name": "Zoë", "code": "0042"}
    assert (claim.channel, claim.to_number, claim.variables) == (Channel.SMS, "+14155550100", variables)
    sent = {"params": [["To", "+14155550100"], ["Body", "Hi Zoë, «0042»"]], "attempt": 1}
    event = {
        "at": 101.5, "status": "queued", "http_status": 201, "duration_ms": 12.25, "applied": True,
        "reason": "created SM1", "data": sent,
    }  # fmt: skip
    params = accepted_send(ids[0], channel=Channel.SMS, sid="SM" + "c" * 32, status="queued", segments=2)
    await store.flush_send_writes(claim_ids=[], accepted=[(params, event)], now=101.5)
    [stored] = await store.events(ids[0])
    assert {k: stored[k] for k in event} == event
    assert (stored["kind"], stored["error_code"]) == ("attempt", None)
    row = await store.get_delivery(ids[0])
    assert (row.status, row.status_rank, row.segments, row.error_code) == (
        "queued", st.rank(Channel.SMS, "queued"), 2, None,
    )  # fmt: skip


async def test_two_claims_of_one_delivery_in_one_flush_give_it_to_one_of_them(store: Store) -> None:
    """A job that runs twice at once asks for the same deliveries twice; the group commit may put both
    requests in one flush. The guarded UPDATE claims each row once: one requester gets it, not both."""
    ids = await _batch(store, ["+14155550100", "+14155550101"])
    writes = WriteCoalescer(store)
    try:
        first, second = await asyncio.gather(writes.claim_many(ids, ACCOUNT), writes.claim_many(ids, ACCOUNT))
    finally:
        await writes.close()
    assert writes.flushes == 1  # both requests in one flush
    for got in zip(first, second, strict=True):
        assert sum(claim is not None for claim in got) == 1, got


async def test_a_failed_flush_writes_nothing(store: Store) -> None:
    ids = await _batch(store, ["+14155550100", "+14155550101", "+14155550102"])
    sid = "SM" + "b" * 32

    def accept(delivery_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return accepted_send(delivery_id, channel=Channel.SMS, sid=sid, status="queued", segments=1), {"at": 1.0}

    await store.flush_send_writes(claim_ids=[(ids[1], ACCOUNT), (ids[2], ACCOUNT)], accepted=[], now=1.0)
    await store.flush_send_writes(claim_ids=[], accepted=[accept(ids[1])], now=2.0)
    with pytest.raises(IntegrityError):  # a SID is unique: the second 201 with it fails, after the claim
        await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[accept(ids[2])], now=3.0)
    assert (await store.get_delivery(ids[0])).status == st.PENDING  # the claim was rolled back with it
    assert (await store.get_delivery(ids[2])).twilio_sid is None
    assert await store.events(ids[2]) == []
    claimed, _ = await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=4.0)
    assert list(claimed) == [ids[0]]


async def test_sqlite_writer_runs_each_transaction_on_its_own_thread(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}")
    writer = SqliteWriter(str(tmp_path / "notifyq.db"))
    try:
        ids = await _batch(store, ["+14155550100"])

        def claim_then_fail(conn: Connection) -> None:
            conn.execute(deliveries.update().where(deliveries.c.id == ids[0]).values(status=st.DISPATCHING))
            raise RuntimeError("after the update")

        def where_and_how_many(conn: Connection) -> tuple[str, int]:
            count = conn.execute(select(func.count()).where(deliveries.c.status == st.PENDING)).scalar_one()
            return threading.current_thread().name, count

        with pytest.raises(RuntimeError):
            await writer.run(claim_then_fail)
        name, pending = await writer.run(where_and_how_many)
        assert name.startswith("notifyq-sqlite-writer")
        assert name != threading.current_thread().name
        assert pending == 1  # rolled back
        # many transactions queue on the one thread; each sees the ones before it
        await asyncio.gather(*(writer.run(_insert_event, ids[0], n) for n in range(20)))
        assert len(await store.events(ids[0])) == 20
    finally:
        await writer.close()
        await store.close()


def _insert_event(conn: Connection, delivery_id: str, n: int) -> None:
    conn.execute(insert(delivery_events).values(delivery_id=delivery_id, at=float(n), kind="state"))


async def test_a_cancelled_caller_waits_for_the_writer_thread_to_finish(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}")
    writer = SqliteWriter(str(tmp_path / "notifyq.db"))
    started = threading.Event()
    try:
        ids = await _batch(store, ["+14155550100"])

        def slow_insert(conn: Connection) -> None:
            started.set()
            time.sleep(0.2)
            _insert_event(conn, ids[0], 1)

        task = asyncio.create_task(writer.run(slow_insert))
        assert await asyncio.to_thread(started.wait, 5.0)  # the thread is inside the transaction
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the cancellation reached the caller only once the thread had committed: the process' writes
        # stay one at a time (the caller held its turn to write until then)
        assert len(await store.events(ids[0])) == 1
    finally:
        await writer.close()
        await store.close()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "postgresql+asyncpg://nobody@127.0.0.1:1/none"])
async def test_only_a_sqlite_file_gets_a_writer_thread(url: str) -> None:
    engine = create_async_engine(url)
    try:
        assert SqliteWriter.for_engine(engine) is None
    finally:
        await engine.dispose()
