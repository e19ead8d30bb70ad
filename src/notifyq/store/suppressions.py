"""Suppressions: the numbers an account must not send to (STOP, error 21610, an operator)."""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select

from notifyq.store.engine import Database
from notifyq.store.schema import suppressions


class Suppressions(Database):
    """The suppressions table, one row per (account SID, number).

    The send path's claim reads it in the same flush (``Sends.flush_send_writes``).
    """

    async def suppress(self, account_sid: str, number: str, *, source: str, sender: str | None = None) -> bool:
        """Put a number on the account's suppression list; False when it was there already."""
        async with self._write() as conn:
            exists = (
                await conn.execute(
                    select(suppressions.c.number).where(
                        suppressions.c.account_sid == account_sid, suppressions.c.number == number
                    )
                )
            ).first()
            if exists:
                return False
            await conn.execute(
                insert(suppressions),
                [
                    {
                        "account_sid": account_sid,
                        "number": number,
                        "created_at": time.time(),
                        "source": source,
                        "sender": sender,
                    }
                ],
            )
        return True

    async def unsuppress(self, account_sid: str, number: str) -> bool:
        """Take a number off the account's suppression list."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(suppressions).where(suppressions.c.account_sid == account_sid, suppressions.c.number == number)
            )
        return int(result.rowcount) == 1

    async def is_suppressed(self, account_sid: str, number: str) -> bool:
        """Whether the recipient opted out of this account's messages."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(suppressions.c.number).where(
                        suppressions.c.account_sid == account_sid, suppressions.c.number == number
                    )
                )
            ).first()
        return row is not None
