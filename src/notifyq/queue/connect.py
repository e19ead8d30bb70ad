"""Redis clients for every notifyq process: redis-py's asyncio client, packing commands with hiredis.

redis-py's synchronous client packs commands with hiredis when it is installed; its asyncio client
(5.x) always uses its Python packer, which encodes and joins each argument on its own. The pacer's
Lua calls carry a few dozen to a few hundred arguments: packing one of 192 arguments took 117 µs
in Python and 15 µs with ``hiredis.pack_command`` on the reference machine. Here the asyncio
connections pack the way the synchronous client does (hiredis is a dependency: ``redis[hiredis]``).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, overload

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifyq.queue.sentinel import sentinel_client
from notifyq.sentinel_url import SCHEME as SENTINEL_SCHEME

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # hiredis older than 3.0, or missing: redis-py's own packer stays
    _hiredis_pack = None  # type: ignore[assignment]

R = TypeVar("R", bound=Redis)
# what a lost Redis looks like (refused, reset, timed out, still loading its data after a restart)
REDIS_LOST: Final = (RedisConnectionError, RedisTimeoutError, OSError)


class _HiredisPacking:
    """``pack_command`` as redis-py's ``HiredisRespSerializer`` does it (a command name with spaces is split)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str):
            args = (*name.encode().split(), *args[1:])
        elif b" " in name:
            args = (*name.split(), *args[1:])
        try:
            return [_hiredis_pack(args)]
        except TypeError as exc:  # bool, None, other types: what redis-py's encoder refuses too
            raise DataError(str(exc)) from exc


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packing(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    found = _PACKING.get(cls)
    if found is None:
        found = _PACKING[cls] = type(cls.__name__, (_HiredisPacking, cls), {"__module__": __name__})
    return found


def hiredis_packing(pool: ConnectionPool) -> ConnectionPool:
    """Make the connections ``pool`` opens from now on pack with hiredis (plain, TLS or Unix socket alike)."""
    if _hiredis_pack is not None and not issubclass(pool.connection_class, _HiredisPacking):
        pool.connection_class = _packing(pool.connection_class)
    return pool


@overload
def redis_from_url(url: str, **kwargs: Any) -> Redis: ...
@overload
def redis_from_url(url: str, cls: type[R], **kwargs: Any) -> R: ...
def redis_from_url(url: str, cls: type[Redis] = Redis, **kwargs: Any) -> Redis:
    """``cls.from_url(url, **kwargs)`` (a ``Redis`` by default) whose connections pack commands with hiredis.

    Every notifyq process builds its Redis clients here. A ``redis+sentinel://`` URL gives a client of
    the master its sentinels name, which follows a failover (``queue/sentinel.py``).
    """
    client: Redis = (
        sentinel_client(url, cls, **kwargs) if url.startswith(SENTINEL_SCHEME) else cls.from_url(url, **kwargs)
    )
    hiredis_packing(client.connection_pool)
    return client
