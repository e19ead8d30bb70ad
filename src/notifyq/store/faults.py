"""What a database error means: not reachable yet (wait for it), an outage (try the same again), or a refusal."""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# PostgreSQL's "not yet": the server is starting up (57P03), or has no connection slot free (53300)
_NOT_YET_SQLSTATES: Final = frozenset({"57P03", "53300"})
# PostgreSQL's SQLSTATE classes that say nothing can be written now, whatever it is: a lost connection,
# a read-only server (a standby after a failover), a serialization failure or deadlock, no resources
# left, a lock not available, a shutdown or cancel, an I/O error
_UNAVAILABLE_SQLSTATE_CLASSES: Final = frozenset({"08", "25", "40", "53", "55", "57", "58"})
# SQLite's primary result codes of the same kind: busy, locked, out of memory, read-only, I/O error,
# disk full, cannot open, lock protocol
_UNAVAILABLE_SQLITE_CODES: Final = frozenset({5, 6, 7, 8, 10, 13, 14, 15})


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached yet (worth waiting for), not that a setting is wrong.

    Refused, reset, timed out, a host name not resolvable yet, a server starting up or out of
    connection slots: yes. A wrong password, a missing database, a file that cannot be opened: no.
    """
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return (
            exc.connection_invalidated
            or isinstance(orig, OSError)
            or getattr(orig, "sqlstate", None) in _NOT_YET_SQLSTATES
        )
    return False


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot take any write now (an outage), not that a value was refused.

    ``unreachable`` errors, a full pool, and the database's own "not now" answers (busy, locked,
    read-only, disk full, deadlock, shutting down) are outages: the same write is worth trying again
    as it is. Anything else (a value out of range or too long, a constraint, a driver refusing a
    parameter) may be the fault of one row among many.
    """
    if unreachable(exc) or isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _UNAVAILABLE_SQLITE_CODES


def describe(exc: BaseException, limit: int = 500) -> str:
    """An error as one line of at most ``limit`` characters.

    When SQLAlchemy wraps a driver's error, the driver's own, without the statement and its parameters.
    """
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None)
    lines = str(orig).strip().splitlines()
    text = f"{type(orig).__name__}{f' ({code})' if code else ''}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
