"""Every process' Redis client packs commands with hiredis, and says the same bytes redis-py would."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from notifyq.queue.connect import _HiredisPacking, redis_from_url

COMMANDS = [
    ("SET", "k", "v"),
    ("SET", b"k", b"\x00\xff bytes"),
    ("ZADD", "z", 1700000000123, "member"),
    ("EVALSHA", "a" * 40, 2, "key:1", "key:2", "", "é ünicode", -5, 10**20, memoryview(b"view")),
    ("CONFIG GET", "maxmemory"),  # a command name with a space is two arguments
    (b"CONFIG GET", "maxmemory"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_hiredis_packs_the_bytes_redis_py_packs(args: tuple[object, ...]) -> None:
    ours = redis_from_url("redis://127.0.0.1:6379/0").connection_pool.make_connection()
    plain = Connection()
    assert isinstance(ours, _HiredisPacking)
    assert b"".join(ours.pack_command(*args)) == b"".join(plain.pack_command(*args))  # type: ignore[arg-type]


def test_what_redis_py_refuses_is_refused() -> None:
    conn = redis_from_url("redis://127.0.0.1:6379/0").connection_pool.make_connection()
    for bad in (True, None, {"a": 1}):
        with pytest.raises(DataError):
            conn.pack_command("SET", "k", bad)  # type: ignore[arg-type]


def test_tls_and_unix_socket_urls_keep_their_connection_kind() -> None:
    tls = redis_from_url("rediss://127.0.0.1:6380/0").connection_pool.connection_class
    unix = redis_from_url("unix:///tmp/redis.sock").connection_pool.connection_class
    arq = redis_from_url("redis://127.0.0.1:6379/0", ArqRedis)
    assert issubclass(tls, SSLConnection)
    assert issubclass(tls, _HiredisPacking)
    assert issubclass(unix, UnixDomainSocketConnection)
    assert issubclass(unix, _HiredisPacking)
    assert isinstance(arq, ArqRedis)
    assert issubclass(arq.connection_pool.connection_class, _HiredisPacking)


async def test_commands_scripts_and_pipelines_round_trip(redis_url: str) -> None:
    redis: Redis = redis_from_url(redis_url)
    try:
        await redis.set("k", "välue")
        assert await redis.get("k") == "välue".encode()
        script = redis.register_script("return {ARGV[1], ARGV[2], ARGV[3], #KEYS}")
        assert await script(keys=["a", "b"], args=[1.5, 7, b"\x00x"]) == [b"1.5", b"7", b"\x00x", 2]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zadd("z", {"m1": 1, "m2": 2.5})
            pipe.zrange("z", 0, -1, withscores=True)
            added, members = await pipe.execute()
        assert added == 2
        assert members == [(b"m1", 1.0), (b"m2", 2.5)]
    finally:
        await redis.aclose()
