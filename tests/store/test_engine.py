"""The engine: SQLite's writer thread runs each write transaction whole, in its own thread, one at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from notifyq import statuses as st
from notifyq.store import Store
from notifyq.store.engine import SqliteWriter
from notifyq.store.schema import deliveries, delivery_events

from .helpers import create_deliveries


async def test_sqlite_writer_runs_each_transaction_on_its_own_thread(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}")
    writer = SqliteWriter(str(tmp_path / "notifyq.db"))
    try:
        ids = await create_deliveries(store, ["+14155550100"])

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
        ids = await create_deliveries(store, ["+14155550100"])

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
