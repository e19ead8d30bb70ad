"""A service that starts before its database waits for it; a wrong setting still fails at once."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy.exc import DBAPIError

from helpers import PostgresOutage
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


@pytest.mark.postgres
async def test_a_service_waits_for_a_database_that_comes_up_later(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "WAIT_RETRY_S", (0.05, 0.2))
    outage = await PostgresOutage(postgres_database).start()
    await outage.cut()  # nothing listens on the database's port yet
    try:
        opening = asyncio.create_task(Store.open(outage.url, wait=True))
        await asyncio.sleep(0.6)  # the scenario: several tries (every 0.05-0.2 s) meet a closed port
        assert not opening.done()
        await outage.restore()
        store = await asyncio.wait_for(opening, 20)
        try:
            assert await store.unenqueued_batches(created_before=0.0) == []  # migrated, and answering
        finally:
            await store.close()
    finally:
        await outage.close()
