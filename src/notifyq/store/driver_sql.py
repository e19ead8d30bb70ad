"""Statements that go to the driver as SQL compiled once: the seam of the store's executemany fast paths.

``Connection.execute`` runs each row's parameters through SQLAlchemy's bind processing, one by one.
For the send path's executemanys that is most of a flush's CPU, so their statements are compiled once
per dialect and run with ``exec_driver_sql``. No bind processors run there: each value must already be
what the driver takes (JSON as text, from ``COMPACT_JSON``). The tests write through these statements
and read the rows back through Core, field by field, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection

# JSON text for the driver (events' data, deliveries' variables, insert blocks): compact, one encoder
COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))


class DriverSql:
    """A Core statement compiled for one dialect, to run as driver SQL (``exec_driver_sql``).

    A row is a tuple in placeholder order (a dict for named paramstyles).
    """

    def __init__(self, sql: str, order: tuple[str, ...] | None) -> None:
        self.sql = sql
        self.order = order

    @classmethod
    def compile(cls, stmt: Any, conn: Connection, keys: Sequence[str] | None = None) -> DriverSql:
        """``stmt`` compiled for ``conn``'s dialect, with the parameters ``keys`` (every column if None)."""
        compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
        order = compiled.positiontup
        return cls(compiled.string, None if order is None else tuple(order))

    def rows(self, values: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Parameter rows (by name) as the driver takes them for this statement."""
        order = self.order
        if order is None:
            return list(values)
        return [tuple(v[k] for k in order) for v in values]


_COMPILED: dict[tuple[int, str], DriverSql] = {}


def driver_sql(conn: Connection, stmt: Any, keys: Sequence[str] | None = None) -> DriverSql:
    """``stmt`` (a module constant) compiled for ``conn``'s dialect, driver and paramstyle, once."""
    dialect = conn.dialect
    key = (id(stmt), f"{dialect.name}+{dialect.driver}:{dialect.paramstyle}")
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = DriverSql.compile(stmt, conn, keys)
    return found
