"""The pacing tests' Redis: ``rdb`` (the root conftest's scratch database), and more clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def connect(scratch_redis_url: str, rdb: Redis) -> AsyncIterator[Callable[[], Awaitable[Redis]]]:
    """More clients on their own connections (another worker process, as far as Redis can tell)."""
    opened: list[Redis] = []

    async def _open() -> Redis:
        client = Redis.from_url(scratch_redis_url)
        await client.ping()
        opened.append(client)
        return client

    yield _open
    for client in opened:
        await client.aclose()
