"""A service that starts before its database waits for it; a wrong setting still fails at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from notifyq.ops.stack import free_port
from notifyq.store import db
from notifyq.store.db import unreachable
from notifyq.store.repo import Store


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("exc", "worth_waiting"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (socket.gaierror(-2, "Name or service not known"), True),  # the database's host name is not in DNS yet
        (TimeoutError(), True),
        (_dbapi(_DriverError("57P03")), True),  # the server is starting up
        (_dbapi(_DriverError("53300")), True),  # no connection slot free
        (_dbapi(ConnectionResetError()), True),
        (_dbapi(_DriverError("08006"), invalidated=True), True),
        (_dbapi(_DriverError("28P01")), False),  # wrong password
        (_dbapi(_DriverError("3D000")), False),  # no such database
        (ValueError("bad URL"), False),
    ],
)
def test_what_is_worth_waiting_for(exc: BaseException, worth_waiting: bool) -> None:
    assert unreachable(exc) is worth_waiting


async def test_a_one_shot_open_fails_at_once_when_nothing_listens() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await asyncio.wait_for(Store.open(url), 10)


@contextlib.asynccontextmanager
async def _proxy(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Forward 127.0.0.1:``port`` to ``target`` (the database server, opened late)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        open_writers.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in open_writers:
            writer.close()
        await server.wait_closed()


@pytest.mark.postgres
async def test_a_service_waits_for_a_database_that_comes_up_later(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "WAIT_RETRY_S", (0.05, 0.2))
    real = make_url(postgres_database)
    port = free_port()
    late = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    opening = asyncio.create_task(Store.open(late, wait=True))
    await asyncio.sleep(0.6)  # several tries against a closed port
    assert not opening.done()
    async with _proxy(port, (real.host or "127.0.0.1", real.port or 5432)):
        store = await asyncio.wait_for(opening, 20)
        try:
            assert await store.unenqueued_batches(created_before=0.0) == []  # migrated, and answering
        finally:
            await store.close()
