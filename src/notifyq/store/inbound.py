"""Inbound messages: what recipients wrote to a sender (STOP, START, HELP or anything else), kept as rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from notifyq.store.engine import Database
from notifyq.store.schema import inbound_messages


class InboundMessages(Database):
    """The inbound_messages table."""

    async def record_inbound(self, **row: Any) -> None:
        """Keep an inbound message (STOP, START, HELP or anything else)."""
        async with self._write() as conn:
            await conn.execute(insert(inbound_messages), [row])

    async def inbound_actions(self, from_number: str) -> list[str]:
        """What the inbound messages from a number asked for, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(inbound_messages.c.action)
                .where(inbound_messages.c.from_number == from_number)
                .order_by(inbound_messages.c.id)
            )
            return [r.action for r in rows]
