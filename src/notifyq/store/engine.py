"""The connection to PostgreSQL (asyncpg) or a SQLite file (aiosqlite), and the process' turn to write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from notifyq.store.faults import unavailable

# how long a SQLite write waits for another process' write lock before it fails as "database is locked"
BUSY_TIMEOUT_MS = 10_000
# A SQLite write transaction takes the file's write lock before its first statement. The driver
# (sqlite3) would begin it only at the first INSERT or UPDATE, so the reads before that would see the
# file outside the transaction, and another process' commit in between would go unseen: an UPDATE
# guarded on what was read would then match nothing, silently.
BEGIN_WRITE = "BEGIN IMMEDIATE"


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets the API read while a worker writes; NORMAL is durable across process crashes in WAL mode.
    # The busy timeout comes first: switching a new file to WAL takes a lock another process may hold.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass(frozen=True)
class PoolSize:
    """A process' PostgreSQL connections (SQLite ignores them).

    ``pool_size`` stay open, ``max_overflow`` more are opened under load and closed after, and a query
    waits ``pool_timeout_s`` for one of them before it fails. The fields are those of
    ``Settings.database``: ``PoolSize(**settings.database.model_dump())``.
    """

    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_s: float = 30.0


def create_engine(url: str, *, pool: PoolSize | None = None) -> AsyncEngine:
    """An async engine for ``url``; SQLite files get WAL and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    pool = pool or PoolSize()
    return create_async_engine(
        url,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout_s,
        pool_pre_ping=True,
    )


P = ParamSpec("P")
T = TypeVar("T")


class SqliteWriter:
    """A thread of its own, with its own connection to the SQLite file, for multi-statement write transactions.

    Through aiosqlite every statement, fetch and commit is a hop to its thread and back, and each way
    back waits for a turn of the event loop, which is long on a busy worker. Here the whole transaction
    is one hop. The caller serialises writers of the process (``Database``'s write lock); SQLite's file
    lock does the rest.
    """

    def __init__(self, path: str) -> None:
        self.engine = create_sync_engine(f"sqlite+pysqlite:///{path}", poolclass=StaticPool)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="notifyq-sqlite-writer")

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> SqliteWriter | None:
        """A writer on the same file as ``engine``; None unless it is a SQLite file."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(str(url.database))

    async def run(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, *args)`` in one transaction, committed when it returns (rolled back if it raises)."""

        def work() -> T:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(BEGIN_WRITE)
                return fn(conn, *args, **kwargs)

        done = asyncio.get_running_loop().run_in_executor(self._thread, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # the thread goes on to its commit or rollback: the caller keeps its turn to write until then
            await asyncio.wait({done})
            raise

    async def close(self) -> None:
        """Close the connection (in its thread) and stop the thread."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=True)


class Database:
    """The engine every query of the store runs on, and the process' turn to write.

    Each part of the store (batches, deliveries, sends, ...) is a subclass holding its own queries;
    ``Store`` combines them over one ``Database``.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time; pooled connections that collide wait in SQLite's busy handler,
        # which sleeps in steps of up to 100 ms. One in-process lock makes them queue without sleeping.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._writer = SqliteWriter.for_engine(engine)  # the send path's group commits, one hop each
        self._outages = 0  # writes that found the database unavailable, and the last one's error
        self._outage: BaseException | None = None

    @asynccontextmanager
    async def _serialised(self) -> AsyncIterator[None]:
        """The process' turn to write: SQLite's write lock, nothing on PostgreSQL.

        A write that waited for its turn while the write before it found the file unavailable (locked
        by another process past the busy timeout, read-only, disk full) fails with that error at once:
        trying would only wait out the busy timeout again, and writes queued one behind another would
        hold their callers for a multiple of it.
        """
        if self._write_lock is None:
            yield
            return
        seen = self._outages
        async with self._write_lock:
            if self._outages != seen and self._outage is not None:
                raise self._outage
            try:
                yield
            except Exception as exc:
                if unavailable(exc):
                    self._outages += 1
                    self._outage = exc
                raise

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (serialised within the process on SQLite; holding the file's write lock)."""
        async with self._serialised(), self.engine.begin() as conn:
            if self._write_lock is not None:
                await conn.exec_driver_sql(BEGIN_WRITE)
            yield conn

    async def close(self) -> None:
        """Release every connection."""
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()
