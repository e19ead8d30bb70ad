"""The intake's bulk insert: a batch and its deliveries written block by block, stored whole or not at all.

Each insert block goes to the driver as one statement (SQLite: ``INSERT ... SELECT`` over ``json_each``;
PostgreSQL: asyncpg's executemany), bypassing SQLAlchemy's type processing: the rows are read back
through Core and compared field by field, types included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Text, func, select, text

from notifyq.errors import ValidationFailed
from notifyq.ids import new_ids
from notifyq.store import Store
from notifyq.store.bulk_insert import ROWS_PER_INSERT
from notifyq.store.schema import batches, deliveries

from .helpers import batch_row, count_rows


async def test_create_batch_rolls_back_when_the_recipients_raise(store: Store) -> None:
    def blocks() -> Iterator[list[tuple[str, str, dict[str, str] | None]]]:
        ids = new_ids(3 * ROWS_PER_INSERT)
        for k in range(3):
            yield [(did, "+14155550100", None) for did in ids[k * ROWS_PER_INSERT : (k + 1) * ROWS_PER_INSERT]]
        raise ValidationFailed([])

    batch = batch_row(created_at=1.0, valid_until=2.0)
    with pytest.raises(ValidationFailed):
        await store.create_batch(batch, blocks())
    assert await count_rows(store, batches) == 0
    assert await count_rows(store, deliveries) == 0
    row = await store.create_batch(batch, [[(new_ids(1)[0], "+14155550100", {"a": "b"})]], finish=dict)
    assert (row.total, row.duplicates_dropped) == (1, 0)


async def test_create_batch_stores_each_delivery_as_given(store: Store) -> None:
    tricky = ["plain", "é ü ß", "emoji 😀 and 🇫🇷", 'quote " backslash \\ slash /', "tab\tnew\nline\x01", "%s {x}", ""]
    recipients = [
        (did, f"+1415555{i:04d}", None if i % 5 == 0 else {"name": tricky[i % len(tricky)], "n": str(i)})
        for i, did in enumerate(new_ids(ROWS_PER_INSERT + 7))
    ]
    blocks = [recipients[:ROWS_PER_INSERT], [], recipients[ROWS_PER_INSERT:]]
    batch = batch_row(created_at=1.5, valid_until=2.5)
    row = await store.create_batch(batch, blocks, finish=lambda: {"duplicates_dropped": 3})
    assert (row.total, row.duplicates_dropped) == (len(recipients), 3)
    c = deliveries.c
    query = select(
        c.id, c.batch_id, c.seq, c.channel, c.to_number, func.cast(c.variables, Text), c.status, c.status_rank,
        c.created_at, c.updated_at, c.valid_until, c.attempts,
    ).order_by(c.seq)  # fmt: skip
    async with store.engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(query)]
    compact = json.JSONEncoder(separators=(",", ":")).encode
    assert rows == [
        (did, batch["id"], seq, "sms", to, None if v is None else compact(v), "pending", 0, 1.5, 1.5, 2.5, 0)
        for seq, (did, to, v) in enumerate(recipients)
    ]
    if store.engine.dialect.name == "sqlite":
        async with store.engine.connect() as conn:
            kinds = await conn.execute(
                text("SELECT DISTINCT typeof(seq), typeof(status_rank), typeof(created_at), typeof(valid_until) "
                     "FROM deliveries")
            )  # fmt: skip
            assert [tuple(k) for k in kinds] == [("integer", "integer", "real", "real")]
    assert [d.variables for d in await store.list_deliveries(batch["id"], limit=10)] == [
        v for _, _, v in sorted(recipients)[:10]
    ]
