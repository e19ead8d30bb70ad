"""The intake's bulk insert: a batch's deliveries written in blocks, one driver statement per block.

A block (up to ``ROWS_PER_INSERT`` recipients) goes to the driver connection as one statement, written
while the caller makes the next block (it validates recipients as it goes). On SQLite the statement is
one ``INSERT ... SELECT`` over ``json_each`` of the block encoded as a JSON array, so aiosqlite's thread
takes the GIL to bind nine parameters, not once per row (with executemany the two threads would trade
the GIL row by row, and overlapping them would cost more than writing one block after the other). On
PostgreSQL it is asyncpg's executemany, pipelined by the driver. Every value goes to the driver as it is stored (the
variables as compact JSON text); the tests read the rows back through Core and compare each field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from notifyq.store.driver_sql import COMPACT_JSON

ROWS_PER_INSERT: Final = 2000  # recipients per insert block: one driver statement

# (id, to_number, variables or None): one recipient as the intake hands it over
Recipient = tuple[str, str, Mapping[str, str] | None]
BlockWriter = Callable[[Any, int, Sequence[Recipient]], Awaitable[Any]]

_DELIVERY_COLUMNS: Final = (
    "id", "batch_id", "seq", "channel", "to_number", "variables", "status", "status_rank", "created_at",
    "updated_at", "valid_until",
)  # fmt: skip


async def insert_deliveries(
    conn: AsyncConnection, fixed: tuple[Any, ...], blocks: Iterable[Sequence[Recipient]]
) -> int:
    """Write every block's deliveries inside the caller's transaction; returns how many there were.

    ``fixed`` is what every delivery of the batch shares (see ``block_writer``); a delivery's ``seq``
    is its place in ``blocks``. Whatever ``blocks`` raises is raised here, once the write in flight
    has finished, so the caller's rollback undoes everything.
    """
    write = block_writer(conn.dialect.paramstyle, fixed)
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:  # pragma: no cover - an async engine always has one
        raise RuntimeError("no driver connection")
    seq = 0
    # one block in flight on the driver (aiosqlite's thread, or asyncpg's socket) while the next is made here
    in_flight: asyncio.Task[Any] | None = None
    try:
        for block in blocks:
            if not block:
                continue
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.ensure_future(write(driver, seq, block))
            seq += len(block)
            await asyncio.sleep(0)  # let the write reach the driver before the next block is made
        if in_flight is not None:
            await in_flight
    finally:
        if in_flight is not None:
            # when the blocks raised, the write still running finishes before the rollback
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved: the blocks' exception is the one raised
    return seq


def block_writer(paramstyle: str, fixed: tuple[Any, ...]) -> BlockWriter:
    """How one block of deliveries is written through the driver connection, for its paramstyle.

    ``fixed`` is what every delivery of the batch shares: (batch id, channel, status, status_rank,
    created_at, updated_at, valid_until). Variables are stored as compact JSON text either way.
    """
    bid, channel, status, rank, created, updated, valid_until = fixed
    columns = ", ".join(_DELIVERY_COLUMNS)
    encode = COMPACT_JSON.encode
    if paramstyle == "qmark":  # SQLite: the block as one JSON array of [id, to, variables], one statement
        sql = (
            f"INSERT INTO deliveries ({columns}) "  # noqa: S608 - fixed names
            "SELECT json_extract(value, '$[0]'), ?, ? + key, ?, json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]'), ?, ?, ?, ?, ? FROM json_each(?) ORDER BY key"
        )

        async def write_sqlite(driver: Any, seq: int, block: Sequence[Recipient]) -> None:
            params = (bid, seq, channel, status, rank, created, updated, valid_until, encode(block))
            await (await driver.execute(sql, params)).close()

        return write_sqlite
    if paramstyle == "numeric_dollar":  # PostgreSQL (asyncpg): executemany, pipelined by the driver
        marks = ", ".join(f"${i}" for i in range(1, len(_DELIVERY_COLUMNS) + 1))
        sql = f"INSERT INTO deliveries ({columns}) VALUES ({marks})"  # noqa: S608 - fixed names

        async def write_pg(driver: Any, seq: int, block: Sequence[Recipient]) -> None:
            rows = [
                (did, bid, seq + i, channel, to, None if v is None else encode(v), status, rank, created, updated,
                 valid_until)
                for i, (did, to, v) in enumerate(block)
            ]  # fmt: skip
            await driver.executemany(sql, rows)

        return write_pg
    raise NotImplementedError(f"no INSERT for paramstyle {paramstyle}")
