"""What a database error means: not reachable yet (a service waits for it), an outage (wait, try the same
again), or a refusal that may be one entry's fault (isolate it)."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from notifyq.store import describe, unavailable, unreachable


class _PgError(Exception):
    def __init__(self, sqlstate: str, text: str = "x") -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


def _sqlite(code: int, text: str = "x") -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code
    return exc


def _wrapped(orig: BaseException, cls: type[DBAPIError] = DBAPIError, *, invalidated: bool = False) -> DBAPIError:
    return cls("INSERT INTO delivery_events ...", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("exc", "worth_waiting"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (socket.gaierror(-2, "Name or service not known"), True),  # the database's host name is not in DNS yet
        (TimeoutError(), True),
        (_wrapped(_PgError("57P03")), True),  # the server is starting up
        (_wrapped(_PgError("53300")), True),  # no connection slot free
        (_wrapped(ConnectionResetError()), True),
        (_wrapped(_PgError("08006"), invalidated=True), True),
        (_wrapped(_PgError("28P01")), False),  # wrong password
        (_wrapped(_PgError("3D000")), False),  # no such database
        (ValueError("bad URL"), False),
    ],
)
def test_what_is_worth_waiting_for(exc: BaseException, worth_waiting: bool) -> None:
    assert unreachable(exc) is worth_waiting


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        TimeoutError(),
        PoolTimeoutError("QueuePool limit reached"),
        _wrapped(ValueError("gone"), invalidated=True),
        _wrapped(_PgError("08006")),  # connection failure
        _wrapped(_PgError("25006")),  # read-only transaction: a standby after a failover
        _wrapped(_PgError("40001")),  # serialization failure
        _wrapped(_PgError("40P01")),  # deadlock
        _wrapped(_PgError("53100")),  # disk full
        _wrapped(_PgError("55P03")),  # lock not available
        _wrapped(_PgError("57P01")),  # admin shutdown
        _wrapped(_PgError("58030")),  # I/O error
        _wrapped(_sqlite(5), OperationalError),  # SQLITE_BUSY
        _wrapped(_sqlite(6), OperationalError),  # SQLITE_LOCKED
        _wrapped(_sqlite(261), OperationalError),  # SQLITE_BUSY_RECOVERY: the primary code is in the low byte
        _wrapped(_sqlite(8), OperationalError),  # SQLITE_READONLY
        _wrapped(_sqlite(13), OperationalError),  # SQLITE_FULL
        _wrapped(_sqlite(10), OperationalError),  # SQLITE_IOERR
    ],
)
def test_outages(exc: BaseException) -> None:
    assert unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        ValueError("bad"),
        TypeError("bad"),
        _wrapped(_PgError("22000", "invalid input for query argument $5 (value out of int32 range)"), DataError),
        _wrapped(_PgError("22001", "value too long for type character varying(24)"), DataError),
        _wrapped(_PgError("23505"), IntegrityError),
        _wrapped(_PgError("54000")),  # program limit exceeded: a value too big for an index
        _wrapped(_PgError("XX000")),
        _wrapped(_sqlite(19), IntegrityError),  # SQLITE_CONSTRAINT
        _wrapped(_sqlite(18)),  # SQLITE_TOOBIG
        _wrapped(_sqlite(1), OperationalError),  # SQLITE_ERROR, e.g. too many SQL variables: smaller batches do
        StatementError("bind failed", "INSERT ...", {}, TypeError("not serializable")),
    ],
)
def test_not_outages(exc: BaseException) -> None:
    assert not unavailable(exc)


def test_an_error_is_described_in_one_bounded_line_without_the_sql() -> None:
    exc = _wrapped(_PgError("22001", "value too long for type character varying(24)\nDETAIL: x"), DataError)
    assert describe(exc) == "_PgError (22001): value too long for type character varying(24)"
    assert describe(OverflowError("too large")) == "OverflowError: too large"
    assert len(describe(ValueError("x" * 10_000))) == 500
    assert describe(KeyError()) == "KeyError: "
