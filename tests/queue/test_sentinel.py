"""The ``redis+sentinel://`` URL, and a client that follows its master through a failover."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from helpers import wait_until
from helpers.sentinel import SentinelGroup
from notifyq.queue.connect import redis_from_url
from notifyq.redact import mask_url
from notifyq.sentinel_url import SentinelUrl
from notifyq.settings import Settings


def test_a_url_names_the_sentinels_the_master_and_the_database() -> None:
    where = SentinelUrl.parse("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:5000/mymaster/2")
    assert where.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 5000))
    assert (where.master, where.db, where.password, where.username) == ("mymaster", 2, "s3cret", None)
    assert "s3cret" not in repr(where)
    plain = SentinelUrl.parse("redis+sentinel://u:p@h:1/m?sentinel_password=q")
    assert (plain.db, plain.username, plain.password, plain.sentinel_password) == (0, "u", "p", "q")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:1", "names the master"),
        ("redis+sentinel://h:1/", "names the master"),
        ("redis+sentinel://h:1/m/x", "is a number"),
        ("redis+sentinel://h:1/m/0/extra", "names the master"),
        ("redis+sentinel://h:x/m", "host:port"),
        ("redis+sentinel://h:1/m?ssl=true", "only sentinel_password"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SentinelUrl.parse(url)


def test_settings_refuse_a_bad_sentinel_url_without_showing_its_password() -> None:
    with pytest.raises(ValidationError, match="names the master") as refused:
        Settings(redis_url="redis+sentinel://:hunter2pw@h:1")
    assert "hunter2pw" not in str(refused.value)


def test_settings_take_a_sentinel_url_and_logs_hide_its_passwords() -> None:
    url = "redis+sentinel://:pw1@h:1,h:2/m?sentinel_password=pw2"
    assert Settings(redis_url=url).redis_url == url
    shown = mask_url(url)
    assert "pw1" not in shown
    assert "pw2" not in shown
    assert shown.startswith("redis+sentinel://:***@h:1,h:2/m")


async def test_a_client_writes_to_the_master_before_and_after_a_failover(tmp_path: Path) -> None:
    async with SentinelGroup(tmp_path) as group:
        client = redis_from_url(group.url, ArqRedis, decode_responses=False)
        try:
            script = client.register_script("return redis.call('INCR', KEYS[1])")
            assert await script(keys=["n"]) == 1
            new = await group.failover()
            assert new == group.ports["b"]
            # the first command after the failover meets the old master (now a replica, which closed the
            # client's connection) and fails as an outage does; every caller retries those, and so does this
            # test, a bounded number of times
            for _ in range(50):
                try:
                    value = await script(keys=["n"])  # the new master has no script: NOSCRIPT, loaded, run
                    break
                except RedisConnectionError:
                    continue
            else:
                pytest.fail("the client never reached the new master")
            assert value == 2
            assert client.connection_pool.master_address == ("127.0.0.1", new)
        finally:
            await client.aclose()


async def test_a_client_reaches_the_new_master_after_the_old_one_is_killed(tmp_path: Path) -> None:
    async with SentinelGroup(tmp_path) as group:
        client = redis_from_url(group.url, decode_responses=True)
        try:
            await client.set("before", "1")
            assert await client.wait(1, 60_000) == 1  # the replica has it (WAIT: the bound is a safety net)
            new = await group.kill_master()  # the sentinels see it down, agree, and promote the replica
            for _ in range(50):  # the connection to the dead master fails once: an outage, retried
                try:
                    await client.set("after", "2")
                    break
                except RedisConnectionError:
                    continue
            else:
                pytest.fail("the client never reached the new master")
            assert client.connection_pool.master_address == ("127.0.0.1", new)
            assert await client.mget("before", "after") == ["1", "2"]
        finally:
            await client.aclose()


async def test_a_client_leaves_the_old_master_before_the_sentinels_demote_it(tmp_path: Path) -> None:
    """The old master takes writes until the sentinels make it a replica, and loses them then: the
    client must not wait for that, but follow the sentinels as soon as they name the new master."""
    async with SentinelGroup(tmp_path, stubborn_master=True) as group:
        client = redis_from_url(group.url, decode_responses=True)
        try:
            await client.set("before", "1")
            new = await group.promote()  # the old master stays a master: nothing closes the client's connections

            async def on_the_new_master() -> bool:
                with contextlib.suppress(RedisConnectionError):  # an outage, to a caller: retried
                    await client.set("after", "2")
                return client.connection_pool.master_address == ("127.0.0.1", new)

            await wait_until(on_the_new_master, "the client to follow the sentinels")
            await client.set("after", "3")
            async with Redis(host="127.0.0.1", port=new, decode_responses=True) as direct:
                assert await direct.get("after") == "3"
        finally:
            await client.aclose()
