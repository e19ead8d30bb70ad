"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL; a service that starts
before its database waits for it; a wrong setting still fails at once; replicas that start together on a
fresh database all start."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from helpers import PostgresOutage, holds_sync
from notifyq.store import Store
from notifyq.store.migrate import alembic_config
from notifyq.store.schema import metadata
from notifyq.testing import free_port


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migrations_match_the_declared_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        tables = await conn.run_sync(_tables)
    assert {"batches", "deliveries", "delivery_events", "suppressions", "inbound_messages"} <= tables


async def test_migrating_twice_changes_nothing(database_url: str) -> None:
    first = await Store.open(database_url)
    await first.close()
    second = await Store.open(database_url)
    async with second.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    await second.close()


async def test_a_one_shot_open_fails_at_once_when_nothing_listens() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await asyncio.wait_for(Store.open(url), 10)


@pytest.mark.postgres
async def test_a_service_waits_for_a_database_that_comes_up_later(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("notifyq.store.migrate.WAIT_RETRY_S", (0.05, 0.2))
    outage = await PostgresOutage(postgres_database).start()
    await outage.cut()  # nothing listens on the database's port yet
    try:
        opening = asyncio.create_task(Store.open(outage.url, wait=True))
        await asyncio.sleep(0.6)  # the scenario: several tries (every 0.05-0.2 s) meet a closed port
        assert not opening.done()
        await outage.restore()
        store = await asyncio.wait_for(opening, 20)
        try:
            assert await store.unenqueued_batches(created_before=0.0) == []  # migrated, and answering
        finally:
            await store.close()
    finally:
        await outage.close()


# ---- replicas that start together migrate one at a time -------------------------------------------

MIGRATORS = 6

# each process opens the store when all are ready, so their migrations overlap
_OPEN_TOGETHER = """
import asyncio, sys, time
from pathlib import Path
from notifyq.store import Store

url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)

async def main():
    store = await Store.open(url)
    await store.close()

asyncio.run(main())
"""


def _schema(conn: Connection) -> tuple[list[str], list[object]]:
    versions = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    return versions, list(compare_metadata(MigrationContext.configure(conn), metadata))


async def _assert_at_head_once(url: str) -> None:
    store = await Store.open(url)
    try:
        async with store.engine.connect() as conn:
            versions, diff = await conn.run_sync(_schema)
    finally:
        await store.close()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert versions == [head]
    assert diff == []


def test_processes_that_open_a_fresh_sqlite_file_together_all_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _OPEN_TOGETHER, url, str(tmp_path / f"ready-{n}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(MIGRATORS)
    ]
    try:
        # the migrators go together once all are ready; one that failed to start is reported below
        holds_sync(lambda: len(list(tmp_path.glob("ready-*"))) == MIGRATORS, timeout_s=30)
        go.touch()
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    failures = [err for proc, (_out, err) in zip(procs, results, strict=True) if proc.returncode != 0]
    assert failures == []
    asyncio.run(_assert_at_head_once(url))


@pytest.mark.postgres
async def test_stores_that_open_a_fresh_postgres_database_together_all_start(postgres_database: str) -> None:
    admin = create_async_engine(postgres_database, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await admin.dispose()
    # each store has an engine of its own: as many connections as replicas
    stores = await asyncio.wait_for(asyncio.gather(*(Store.open(postgres_database) for _ in range(MIGRATORS))), 60)
    for store in stores:
        await store.close()
    await _assert_at_head_once(postgres_database)
