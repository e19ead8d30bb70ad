"""Redis behind Sentinel: a client of the master a ``redis+sentinel://`` URL names, which follows a failover.

The URL's form is in ``notifyq/sentinel_url.py``. The client asks a sentinel for the master's address
when it opens a connection, and at most once a second as it hands one out (``_SentinelPool``). After
a failover the old master is gone (connections fail), a replica (it answers READONLY, and redis-py
turns that into a ``ConnectionError``), or still a master the pool has left: either way a command in
flight fails as a lost Redis does, every part retries it as it retries an outage, and the next
connection goes to the new master. Scripts run with EVALSHA through redis-py's ``Script``, which
loads a script the new master does not know (NOSCRIPT) and runs it again.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Final, TypeVar

from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from notifyq.sentinel_url import SentinelUrl

MASTER_CHECK_S: Final = 1.0  # how often a pool asks the sentinels where the master is, at most
# a sentinel that does not answer within this is skipped for the next: a lost host must not hold every command
SENTINEL_TIMEOUT_S: Final = 2.0
R = TypeVar("R", bound=Redis)


class _SentinelPool(SentinelConnectionPool):
    """The master's connections, which leave an old master within ``MASTER_CHECK_S`` of a failover.

    redis-py asks the sentinels only when it opens a connection, and the old master takes writes until
    the sentinels make it a replica (at their next periodic look at it): every write in between is
    lost when it resyncs. Here the pool asks at most once per ``MASTER_CHECK_S`` as it hands
    out a connection, and a connection to any other address is closed before it is used again.
    Closing the pool for good (the client's ``aclose``) closes the sentinels' connections too.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._checked_at = -math.inf

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= MASTER_CHECK_S:
            self._checked_at = now
            with contextlib.suppress(MasterNotFoundError):  # no sentinel answers: the master may still
                await self.get_master_address()  # type: ignore[no-untyped-call]
        return await super().get_connection(*args, **kwargs)

    async def ensure_connection(self, connection: Any) -> None:
        where = self.master_address
        if where is not None and connection.is_connected and (connection.host, connection.port) != where:
            await connection.disconnect()  # opened to the master before a failover
        await super().ensure_connection(connection)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # a failover drops only idle connections: the sentinels stay open then
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.connection_pool.disconnect()


def sentinel_client(url: str, cls: type[R], **kwargs: Any) -> R:
    """A ``cls`` client of the master the sentinels of ``url`` name, with ``kwargs`` for its connections."""
    where = SentinelUrl.parse(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        **{
            key: kwargs[key]
            for key in ("socket_timeout", "socket_connect_timeout", "socket_keepalive")
            if key in kwargs
        },
    }
    if where.sentinel_password is not None:
        sentinel_kwargs["password"] = where.sentinel_password
    connection: dict[str, Any] = {"db": where.db, **kwargs}
    if where.password is not None:
        connection["password"] = where.password
    if where.username is not None:
        connection["username"] = where.username
    sentinel = Sentinel(list(where.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: R = sentinel.master_for(where.master, redis_class=cls, connection_pool_class=_SentinelPool, **connection)
    return client
