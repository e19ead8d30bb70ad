"""Shared fixtures: a real Redis, both SQL engines, and the whole stack over loopback.

Redis: ``NOTIFYQ_TEST_REDIS_URL`` when set, else an embedded redis-server started for the session.
PostgreSQL: ``NOTIFYQ_TEST_POSTGRES_URL`` (CI sets it, and sets ``NOTIFYQ_REQUIRE_POSTGRES=1`` so the
PostgreSQL cases fail rather than skip when it is missing).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from helpers import Outage, PostgresOutage, SqliteLock
from notifyq.queue.redis_server import EmbeddedRedis
from notifyq.simulator import SimulatorConfig
from notifyq.store import Store
from notifyq.testing import LocalStack, local_stack

POSTGRES_ENV = "NOTIFYQ_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The Redis every test uses (flushed per test)."""
    url = os.environ.get("NOTIFYQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    embedded = EmbeddedRedis()
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def scratch_redis_url(redis_server: str) -> str:
    """Database 15 of the session's Redis: for tests that drive Redis directly (pacer scripts, arq's jobs).

    ``NOTIFYQ_TEST_SCRATCH_REDIS_URL`` points them at another server instead.
    """
    other = os.environ.get("NOTIFYQ_TEST_SCRATCH_REDIS_URL")
    if other:
        return other
    return urlunsplit(urlsplit(redis_server)._replace(path="/15"))


@pytest.fixture
async def rdb(scratch_redis_url: str) -> AsyncIterator[Redis]:
    """A flushed client on the scratch database."""
    client = Redis.from_url(scratch_redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    """A flushed Redis for this test."""
    client = Redis.from_url(redis_server)
    await client.flushdb()
    await client.aclose()
    return redis_server


def _postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("NOTIFYQ_REQUIRE_POSTGRES"):
        pytest.fail(f"{POSTGRES_ENV} is required here (NOTIFYQ_REQUIRE_POSTGRES is set)")
    pytest.skip(f"PostgreSQL case: set {POSTGRES_ENV}=postgresql+asyncpg://USER@HOST/DB to run it")
    raise AssertionError  # pragma: no cover - skip raises


async def _admin(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own on the server (so concurrent runs never collide)."""
    server = _postgres_server_url()
    name = f"notifyq_test_{os.getpid()}_{secrets.token_hex(3)}"
    _run_aside(_admin(server, f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    _run_aside(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_aside(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code that may itself be inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"
    url: str = request.getfixturevalue("postgres_database")
    await _admin(url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated, empty store."""
    s = await Store.open(database_url)
    yield s
    await s.close()


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Simulator settings for this test (change them before the stack starts)."""
    return SimulatorConfig(accounts={}, callback_delay_s=0.01, seed=1)


STACK_SETTINGS: dict[str, Any] = {
    "pacing": {"senders": {"+15005550006": 10_000.0}},
    "calls_per_second": 1000.0,
    "worker": {"callback_grace_s": 0.3, "backoff_base_s": 0.05, "backoff_cap_s": 0.2, "poll_delay_s": 0.01},
}


@pytest.fixture
async def stack(
    tmp_path: Path, redis_url: str, database_url: str, sim_config: SimulatorConfig
) -> AsyncIterator[LocalStack]:
    """Simulator + API/receiver + worker app (no worker running: tests run burst workers)."""
    async with local_stack(
        data_dir=tmp_path,
        redis_url=redis_url,
        database_url=database_url,
        sim_config=sim_config,
        run_worker=False,
        **STACK_SETTINGS,
    ) as s:
        yield s


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    """The test's database behind something the test can cut (``helpers.outage``): on PostgreSQL a TCP
    proxy, on SQLite a write lock held by a connection of the test's own."""
    made = await (
        PostgresOutage(database_url) if database_url.startswith("postgresql") else SqliteLock(database_url)
    ).start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def outage_stack(
    tmp_path: Path, redis_url: str, outage: Outage, sim_config: SimulatorConfig
) -> AsyncIterator[LocalStack]:
    """``stack``, connected to its database through ``outage``."""
    async with local_stack(
        data_dir=tmp_path,
        redis_url=redis_url,
        database_url=outage.url,
        sim_config=sim_config,
        run_worker=False,
        **STACK_SETTINGS,
    ) as s:
        yield s


@pytest.fixture
def require_tool() -> Callable[[str, str], str]:
    """A command-line tool's path; the test skips, saying which package brings it, when it is not installed.

    CI installs the tools (``.ci/tools``) and sets ``NOTIFYQ_REQUIRE_TOOLS=1``: there a missing tool fails.
    """

    def find(command: str, package: str) -> str:
        path = shutil.which(command)
        if path is not None:
            return path
        why = f"{command} is not installed (Debian package {package})"
        if os.environ.get("NOTIFYQ_REQUIRE_TOOLS"):
            pytest.fail(f"{why}; NOTIFYQ_REQUIRE_TOOLS is set")
        pytest.skip(why)
        raise AssertionError  # pragma: no cover - skip raises

    return find
