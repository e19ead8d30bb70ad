"""Engine creation and migrations for PostgreSQL (asyncpg) or a SQLite file (aiosqlite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")
log = structlog.get_logger("notifyq.store")
# a service that starts before its database tries again after this pause, doubled each time up to the cap
WAIT_RETRY_S: Final = (0.5, 30.0)
# PostgreSQL's "not yet": the server is starting up (57P03), or has no connection slot free (53300)
_NOT_YET_SQLSTATES: Final = frozenset({"57P03", "53300"})
# the PostgreSQL advisory lock every notifyq migrator takes (a fixed 63-bit number: b"notifyq\x01")
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"notifyq\x01", "big") >> 1


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets the API read while a worker writes; NORMAL is durable across process crashes in WAL mode.
    # The busy timeout comes first: switching a new file to WAL takes a lock another process may hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url``; SQLite files get WAL and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


P = ParamSpec("P")
T = TypeVar("T")


class SqliteWriter:
    """A thread of its own, with its own connection to the SQLite file, for multi-statement write transactions.

    Through aiosqlite every statement, fetch and commit is a hop to its thread and back, and each way
    back waits for a turn of the event loop: on a busy worker a turn takes 10-30 ms, so a group commit
    of five statements took 50-150 ms. Here the whole transaction is one hop. The caller serialises
    writers of the process (``Store``'s write lock); SQLite's file lock does the rest.
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


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent, and safe for processes that start together).

    Replicas started at once (an API and its workers on a fresh database) all migrate. Each takes the
    database's migration lock first, in the transaction that upgrades, so one migrates while the others
    wait, then find the schema at head and change nothing. PostgreSQL: a transaction-level advisory
    lock (released by the commit; DDL is transactional there). SQLite: the write lock, taken by
    ``BEGIN IMMEDIATE`` before the version is read (its driver would otherwise run each DDL statement
    in a transaction of its own, and two migrators would both create the tables).
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        await conn.run_sync(_upgrade)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_revision)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached yet (worth waiting for), not that a setting is wrong.

    Refused, reset, timed out, a host name not resolvable yet, a server starting up or out of
    connection slots: yes. A wrong password, a missing database, a file that cannot be opened: no.
    """
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return (
            exc.connection_invalidated
            or isinstance(orig, OSError)
            or getattr(orig, "sqlstate", None) in _NOT_YET_SQLSTATES
        )
    return False


# PostgreSQL's SQLSTATE classes that say nothing can be written now, whatever it is: a lost connection,
# a read-only server (a standby after a failover), a serialization failure or deadlock, no resources
# left, a lock not available, a shutdown or cancel, an I/O error
_UNAVAILABLE_SQLSTATE_CLASSES: Final = frozenset({"08", "25", "40", "53", "55", "57", "58"})
# SQLite's primary result codes of the same kind: busy, locked, out of memory, read-only, I/O error,
# disk full, cannot open, lock protocol
_UNAVAILABLE_SQLITE_CODES: Final = frozenset({5, 6, 7, 8, 10, 13, 14, 15})


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot take any write now (an outage), not that a value was refused.

    ``unreachable`` errors, a full pool, and the database's own "not now" answers (busy, locked,
    read-only, disk full, deadlock, shutting down) are outages: the same write is worth trying again
    as it is. Anything else (a value out of range or too long, a constraint, a driver refusing a
    parameter) may be the fault of one row among many.
    """
    if unreachable(exc) or isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _UNAVAILABLE_SQLITE_CODES


def describe(exc: BaseException, limit: int = 500) -> str:
    """An error as one line of at most ``limit`` characters.

    When SQLAlchemy wraps a driver's error, the driver's own, without the statement and its parameters.
    """
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None)
    lines = str(orig).strip().splitlines()
    text = f"{type(orig).__name__}{f' ({code})' if code else ''}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def migrate_when_reachable(engine: AsyncEngine) -> None:
    """``migrate``, once the database answers: a service may start before its database does.

    Each failed try is logged (with the URL, its password hidden); an error that is not about reaching
    the database is raised at once.
    """
    low, high = WAIT_RETRY_S
    pause = low
    while True:
        try:
            await migrate(engine)
        except Exception as exc:
            if not unreachable(exc):
                raise
            where = engine.url.render_as_string(hide_password=True)
            log.warning("database unavailable; trying again", url=where, retry_in_s=pause, error=str(exc))
            await asyncio.sleep(pause)
            pause = min(2 * pause, high)
        else:
            return
