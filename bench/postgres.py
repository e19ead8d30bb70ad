"""PostgreSQL for the benchmarks: a scratch database per run on a server, created and dropped here.

The server is NOTIFYQ_BENCH_POSTGRES_URL (any database on it the role may connect to; the default is
the local server's ``postgres`` database with trust auth). Each run gets a database of its own, named
``notifyq_bench_<pid>_<random>``, so it starts empty, migrates like a fresh deployment and cannot touch
anyone else's tables; it is dropped (``WITH (FORCE)``, so a process left connected cannot keep it) when
the ``with`` block ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from notifyq.settings import async_database_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 3.0
# the benchmarks whose figures depend on the store, and so run on PostgreSQL as well
STORE_BOUND = ("dispatch", "callbacks")


def server_url() -> str:
    return os.environ.get("NOTIFYQ_BENCH_POSTGRES_URL") or DEFAULT_URL


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _libpq(url: str) -> str:
    """The URL for asyncpg itself, which knows no SQLAlchemy driver suffix (nor ``sslmode``'s other name)."""
    parts = urlsplit(async_database_url(url))
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def masked(url: str) -> str:
    """``url`` without its password (the bench prints and records where PostgreSQL is)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def _connect(url: str) -> Any:
    return await asyncpg.connect(_libpq(url), timeout=CONNECT_TIMEOUT_S)


async def probe(url: str | None = None) -> tuple[str | None, str]:
    """The server's version when it answers, else None; and what happened, in words."""
    url = url or server_url()
    try:
        conn = await _connect(url)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return None, f"no PostgreSQL at {masked(url)}: {exc.__class__.__name__}: {exc}"
    try:
        version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    return version, f"PostgreSQL {version} at {masked(url)}"


@contextlib.asynccontextmanager
async def scratch_database(url: str | None = None) -> AsyncIterator[str]:
    """A new, empty database on the server at ``url``; its SQLAlchemy URL (asyncpg driver)."""
    url = url or server_url()
    name = f"notifyq_bench_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await _connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield async_database_url(_with_database(url, name))
    finally:
        conn = await _connect(url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def backend_pids(url: str) -> list[int]:
    """The server processes serving ``url``'s database, but for the one asking."""
    conn = await _connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


@dataclass
class ConnectionSampler:
    """The most connections the processes held open, and the most busy at once, in ``url``'s database
    while it runs: what their pools had to hold (sampled; the sampler's own connection not counted)."""

    url: str
    interval_s: float = 0.1
    peak_open: int = 0
    peak_active: int = 0
    samples: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn = await _connect(self.url)
        try:
            while not stop.is_set():
                row = await conn.fetchrow(
                    "SELECT count(*) AS open, count(*) FILTER (WHERE state <> 'idle') AS active FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                self.peak_open = max(self.peak_open, int(row["open"]))
                self.peak_active = max(self.peak_active, int(row["active"]))
                self.samples += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            await conn.close()

    def figures(self) -> dict[str, int]:
        return {"peak_open": self.peak_open, "peak_active": self.peak_active, "samples": self.samples}


@contextlib.asynccontextmanager
async def connections_sampled(url: str | None) -> AsyncIterator[ConnectionSampler | None]:
    """A ``ConnectionSampler`` running over the block (None when the store is not PostgreSQL)."""
    if url is None:
        yield None
        return
    sampler, stop = ConnectionSampler(url), asyncio.Event()
    task = asyncio.create_task(sampler.run(stop))
    try:
        yield sampler
    finally:
        stop.set()
        await task


def qualified(results: dict[str, Any], database: str) -> dict[str, Any]:
    """``dispatch.x`` as ``dispatch.<database>.x``: the PostgreSQL figures beside the SQLite ones."""
    out = {}
    for key, value in results.items():
        name, _, rest = key.partition(".")
        out[f"{name}.{database}.{rest}"] = value
    return out
