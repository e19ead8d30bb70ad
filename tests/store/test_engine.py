"""The engine: SQLite's writer thread runs each write transaction whole, in its own thread, one at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from helpers import SqliteLock
from notifyq import statuses as st
from notifyq.settings import Settings
from notifyq.store import PoolSize, Store
from notifyq.store import engine as engine_module
from notifyq.store.engine import SqliteWriter
from notifyq.store.faults import unavailable
from notifyq.store.schema import deliveries, delivery_events

from .helpers import ACCOUNT, create_deliveries


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


async def test_writes_queued_behind_one_that_found_the_file_locked_fail_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock: the first write waits out the busy timeout and fails; the
    writes that queued behind it fail with it at once, not each after a busy timeout of its own (a send job
    whose writes queued behind others' outlived its own deadline that way, and was dropped unrecorded)."""
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 400)
    url = f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"
    store = await Store.open(url)
    lock = SqliteLock(url)
    try:
        ids = await create_deliveries(store, [f"+1415555010{n}" for n in range(5)])
        await lock.cut()

        async def claim(delivery_id: str) -> float:
            with pytest.raises(DBAPIError) as raised:
                await store.flush_send_writes(claim_ids=[(delivery_id, ACCOUNT)], accepted=[], now=time.time())
            assert unavailable(raised.value)
            return time.monotonic()

        started = time.monotonic()
        failed_at = await asyncio.gather(*(claim(d) for d in ids))
        first, last = min(failed_at) - started, max(failed_at) - started
        assert last < 2 * first  # one busy timeout for all, not five in a row
        await lock.restore()
        # the lock gone, the same writes succeed
        claimed, _ = await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=time.time())
        assert list(claimed) == [ids[0]]
    finally:
        await lock.restore()
        await store.close()


async def test_the_postgresql_pool_is_sized_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYQ_DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("NOTIFYQ_DATABASE__MAX_OVERFLOW", "2")
    monkeypatch.setenv("NOTIFYQ_DATABASE__POOL_TIMEOUT_S", "4.5")
    pool = PoolSize(**Settings().database.model_dump())
    engine = engine_module.create_engine("postgresql+asyncpg://u@127.0.0.1:1/db", pool=pool)  # opens nothing yet
    try:
        queue = engine.sync_engine.pool
        assert (queue.size(), queue._max_overflow, queue._timeout) == (3, 2, 4.5)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def _write_elsewhere(path: Path, delivery_id: str) -> str:
    """Another process' write to the delivery, waiting at most 0.2 s for the file's write lock."""
    import sqlite3  # noqa: PLC0415

    other = sqlite3.connect(path, timeout=0.2)
    try:
        other.execute("UPDATE deliveries SET status = 'queued' WHERE id = ?", (delivery_id,))
        other.commit()
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        other.close()
    return "written"


@pytest.mark.parametrize("through", ["engine", "writer"])
async def test_a_sqlite_write_transaction_holds_the_file_from_its_first_read(tmp_path: Path, through: str) -> None:
    """What a write transaction reads stays true until it commits: no other process writes in between.

    The driver began the transaction only at its first INSERT or UPDATE, so a status read first and
    an UPDATE guarded on it could miss another process' commit in between, and match nothing.
    """
    path = tmp_path / "notifyq.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        [delivery_id] = await create_deliveries(store, ["+14155550100"])
        if through == "engine":
            async with store._write() as conn:
                read = await conn.scalar(select(deliveries.c.status).where(deliveries.c.id == delivery_id))
                meanwhile = await asyncio.to_thread(_write_elsewhere, path, delivery_id)
        else:
            assert store._writer is not None

            def read_then_wait(conn: Connection) -> tuple[str | None, str]:
                status = conn.scalar(select(deliveries.c.status).where(deliveries.c.id == delivery_id))
                return status, _write_elsewhere(path, delivery_id)

            read, meanwhile = await store._writer.run(read_then_wait)
        assert read == st.PENDING
        assert meanwhile == "database is locked"
        assert (await store.get_delivery(delivery_id)).status == st.PENDING
    finally:
        await store.close()
