"""Redis for the queue tests: db 15 of the local server, flushed per test.

``NOTIFYQ_TEST_QUEUE_REDIS_URL`` overrides the URL; when nothing answers there, db 15 of the session's
Redis (the root conftest's, embedded when no URL is set) is used instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.asyncio import Redis

QUEUE_REDIS_URL = os.environ.get("NOTIFYQ_TEST_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/15")


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def queue_redis_url(request: pytest.FixtureRequest) -> str:
    if _answers(QUEUE_REDIS_URL):
        return QUEUE_REDIS_URL
    base = urlsplit(request.getfixturevalue("redis_server"))
    return urlunsplit(base._replace(path="/15"))


@pytest.fixture
async def rdb(queue_redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(queue_redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def connect(queue_redis_url: str, rdb: Redis) -> AsyncIterator[Callable[[], Awaitable[Redis]]]:
    """More clients on their own connections (another worker process, as far as Redis can tell)."""
    opened: list[Redis] = []

    async def _open() -> Redis:
        client = Redis.from_url(queue_redis_url)
        await client.ping()
        opened.append(client)
        return client

    yield _open
    for client in opened:
        await client.aclose()
