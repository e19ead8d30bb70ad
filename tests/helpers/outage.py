"""Real database outages for tests: a TCP proxy in front of PostgreSQL that the test cuts, a lock on SQLite.

PostgreSQL: ``TcpProxy`` listens on 127.0.0.1 and forwards every connection to the server. ``cut()``
aborts every connection it carries (the client sees a reset, the server a closed socket, so an open
transaction is rolled back there) and stops listening, so new connections are refused; ``restore()``
listens again on the same port. The shared server is never stopped.

SQLite has no connection to cut: an outage there is a file that takes no writes. ``SqliteLock`` holds a
write lock from a connection of its own (``BEGIN EXCLUSIVE``, which in WAL mode keeps out every other
writer and lets readers read); a writer waits SQLite's busy timeout, then gets ``database is locked``
(SQLITE_BUSY). Permissions cannot do it: the tests run as root, and an open file stays writable anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import Protocol

from sqlalchemy import make_url


class Outage(Protocol):
    """A database the test can take away and give back; ``url`` is where the system under test connects."""

    url: str

    async def cut(self) -> None: ...

    async def restore(self) -> None: ...

    async def close(self) -> None: ...


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0  # connections taken since the start, cut or not
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> int:
        """Listen (on a free port the first time, on the same port after a cut); returns the port."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        """Stop listening (connecting is refused) and reset every connection carried now."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in list(self._transports):
            transport.abort()  # type: ignore[attr-defined]
        if self._links:
            await asyncio.wait(set(self._links))
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self.accepted += 1
        self._transports.add(client_writer.transport)
        try:
            if self._server is None:  # accepted just as the cut came
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._transports.add(up_writer.transport)
            try:
                await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
            finally:
                self._transports.discard(up_writer.transport)
                up_writer.transport.abort()
        finally:
            self._transports.discard(client_writer.transport)
            client_writer.transport.abort()
            self._links.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        writer.write_eof()


class PostgresOutage:
    """A PostgreSQL database reached through a ``TcpProxy``."""

    def __init__(self, database_url: str) -> None:
        self._real = make_url(database_url)
        self.proxy = TcpProxy(self._real.host or "127.0.0.1", self._real.port or 5432)
        self.url = ""

    async def start(self) -> PostgresOutage:
        port = await self.proxy.start()
        self.url = self._real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        return self

    async def cut(self) -> None:
        await self.proxy.cut()

    async def restore(self) -> None:
        await self.proxy.restore()

    async def close(self) -> None:
        await self.proxy.close()


class SqliteLock:
    """A SQLite file whose write lock another connection holds while the outage lasts."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.path = make_url(database_url).database or ""
        self._release: threading.Event | None = None
        self._holder: asyncio.Future[None] | None = None

    async def start(self) -> SqliteLock:
        return self

    async def cut(self) -> None:
        """Take the write lock (waiting for a writer that has it now) and hold it until ``restore()``."""
        if self._holder is not None:
            return
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                conn.execute("BEGIN EXCLUSIVE")
                taken.set()
                release.wait()
                conn.execute("ROLLBACK")
            finally:
                taken.set()
                conn.close()

        self._release = release
        self._holder = asyncio.get_running_loop().run_in_executor(None, hold)
        await asyncio.get_running_loop().run_in_executor(None, taken.wait)
        if self._holder.done():
            self._holder.result()  # the lock could not be taken: say why

    async def restore(self) -> None:
        if self._holder is None or self._release is None:
            return
        self._release.set()
        await self._holder
        self._holder = self._release = None

    async def close(self) -> None:
        await self.restore()
