"""What the store's tests share: a batch row as the producer hands it over, and a batch in the store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from notifyq.ids import new_ids
from notifyq.store import Store

ACCOUNT = "AC" + "0" * 32


def batch_row(*, created_at: float = 1.0, valid_until: float = 4e9, channel: str = "sms") -> dict[str, Any]:
    """A new batch's columns (``total`` is set by ``create_batch``)."""
    return {
        "id": new_ids(1)[0], "created_at": created_at, "idempotency_key": None, "channel": channel, "account": "main",
        "account_sid": ACCOUNT, "sender": "+15005550006", "messaging_service_sid": None,
        "priority": "bulk", "content": {}, "send_at": None, "valid_until": valid_until, "total": 0,
        "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip


async def create_deliveries(
    store: Store, numbers: list[str], variables: dict[str, str] | None = None, *, channel: str = "sms"
) -> list[str]:
    """A batch with one pending delivery per number; their ids, in order."""
    ids = new_ids(len(numbers))
    await store.create_batch(
        batch_row(channel=channel), [[(d, n, variables) for d, n in zip(ids, numbers, strict=True)]]
    )
    return ids


async def count_rows(store: Store, table: Any) -> int:
    """How many rows ``table`` holds."""
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
