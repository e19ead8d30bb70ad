"""What the store's tests share: the shared rows (``helpers.rows``), and counting a table's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from helpers.rows import ACCOUNT, batch_row, create_deliveries
from notifyq.store import Store

__all__ = ["ACCOUNT", "batch_row", "count_rows", "create_deliveries"]


async def count_rows(store: Store, table: Any) -> int:
    """How many rows ``table`` holds."""
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
