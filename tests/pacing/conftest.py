"""Redis for the pacing tests: db 15 of the session's Redis, flushed per test.

That is the root conftest's Redis (embedded and private to this session unless
``NOTIFYQ_TEST_REDIS_URL`` is set), so concurrent test runs never flush each other's data.
``NOTIFYQ_TEST_PACING_REDIS_URL`` points these tests at another server instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.asyncio import Redis

PACING_REDIS_URL = os.environ.get("NOTIFYQ_TEST_PACING_REDIS_URL")


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def pacing_redis_url(request: pytest.FixtureRequest) -> str:
    if PACING_REDIS_URL and _answers(PACING_REDIS_URL):
        return PACING_REDIS_URL
    base = urlsplit(request.getfixturevalue("redis_server"))
    return urlunsplit(base._replace(path="/15"))


@pytest.fixture
async def rdb(pacing_redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(pacing_redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def connect(pacing_redis_url: str, rdb: Redis) -> AsyncIterator[Callable[[], Awaitable[Redis]]]:
    """More clients on their own connections (another worker process, as far as Redis can tell)."""
    opened: list[Redis] = []

    async def _open() -> Redis:
        client = Redis.from_url(pacing_redis_url)
        await client.ping()
        opened.append(client)
        return client

    yield _open
    for client in opened:
        await client.aclose()
