"""Migrations: the schema brought to the newest revision, one migrator at a time, once the database answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import structlog
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from notifyq.store.faults import unreachable

MIGRATIONS = Path(__file__).with_name("migrations")
log = structlog.get_logger("notifyq.store")
# a service that starts before its database tries again after this pause, doubled each time up to the cap
WAIT_RETRY_S: Final = (0.5, 30.0)
# the PostgreSQL advisory lock every notifyq migrator takes (a fixed 63-bit number: b"notifyq\x01")
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"notifyq\x01", "big") >> 1


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
