"""Rows as the producer hands them to the store: a batch's columns, and a batch of deliveries stored directly."""

from __future__ import annotations

from typing import Any

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
    """A batch with one pending delivery per number, written straight to the store (no job); their ids, in order."""
    ids = new_ids(len(numbers))
    recipients = [(d, n, variables) for d, n in zip(ids, numbers, strict=True)]
    await store.create_batch(batch_row(channel=channel), [recipients])
    return ids
