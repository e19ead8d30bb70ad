"""Batches: a batch row and its deliveries created in one transaction, looked up, counted, canceled.

A delivery row exists before its job: ``create_batch`` commits before anything is queued, and
``mark_enqueued`` notes when every job is in Redis (``unenqueued_batches`` finds those never finished).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.statuses import Channel
from notifyq.store.bulk_insert import Recipient, insert_deliveries
from notifyq.store.engine import Database
from notifyq.store.records import BatchRow
from notifyq.store.replays import ReplayLink, link_replayed
from notifyq.store.schema import batches, deliveries


class Batches(Database):
    """The batches table, and the deliveries a batch creates or cancels."""

    async def create_batch(
        self,
        batch: dict[str, Any],
        recipients: Iterable[Sequence[Recipient]],
        *,
        finish: Callable[[], Mapping[str, Any]] | None = None,
        replay: ReplayLink | None = None,
        admit: Callable[[int], Awaitable[None]] | None = None,
    ) -> BatchRow:
        """Insert a batch and one pending delivery per recipient, all in one transaction.

        ``recipients`` yields insert blocks of ``(id, to_number, variables or None)``; a delivery's ``seq``
        is its place in that sequence, and the batch's ``total`` is how many there were. Each block goes to
        the driver as one statement, and is written while the next block is made (the iterable may validate
        as it goes: whatever it raises rolls everything back). ``finish``, called after the last block,
        returns more batch columns to set before the commit; ``admit(total)``, awaited then, may refuse the
        batch by raising. ``replay`` links each delivery to the one it sends again, in the same transaction.
        """
        now = batch["created_at"]
        bid = batch["id"]
        fixed = (bid, batch["channel"], st.PENDING, st.MESSAGE_RANKS[st.PENDING], now, now, batch["valid_until"])
        async with self._write() as conn:
            await conn.execute(insert(batches), [batch])
            total = await insert_deliveries(conn, fixed, recipients)
            if admit is not None:
                await admit(total)
            values = {"total": total, **(finish() if finish is not None else {})}
            await conn.execute(update(batches).where(batches.c.id == bid).values(**values))
            if replay is not None:
                await link_replayed(conn, bid, replay)
        return await self.get_batch(bid)

    async def find_batch_by_key(self, idempotency_key: str) -> BatchRow | None:
        """The batch created earlier with this idempotency key."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(batches).where(batches.c.idempotency_key == idempotency_key))).first()
        return _batch(row._mapping) if row else None

    async def get_batch(self, batch_id: str) -> BatchRow:
        """One batch, or NotFound."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(batches).where(batches.c.id == batch_id))).first()
        if row is None:
            raise NotFound("batch", batch_id)
        return _batch(row._mapping)

    async def batch_counts(self, batch_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """Counts of the batch's deliveries by status and by Twilio error code."""
        async with self.engine.connect() as conn:
            by_status = {
                r.status: r.n
                for r in await conn.execute(
                    select(deliveries.c.status, func.count().label("n"))
                    .where(deliveries.c.batch_id == batch_id)
                    .group_by(deliveries.c.status)
                )
            }
            by_code = {
                str(r.error_code): r.n
                for r in await conn.execute(
                    select(deliveries.c.error_code, func.count().label("n"))
                    .where(deliveries.c.batch_id == batch_id, deliveries.c.error_code.is_not(None))
                    .group_by(deliveries.c.error_code)
                )
            }
        return by_status, by_code

    async def unenqueued_batches(self, *, created_before: float) -> list[str]:
        """Batches whose jobs were never all queued (the enqueue was interrupted), older than a moment."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(batches.c.id).where(
                    batches.c.enqueued_at.is_(None),
                    batches.c.canceled_at.is_(None),
                    batches.c.created_at < created_before,
                )
            )
            return [r.id for r in rows]

    async def mark_enqueued(self, batch_id: str) -> None:
        """Note that every job of the batch is in Redis."""
        async with self._write() as conn:
            await conn.execute(update(batches).where(batches.c.id == batch_id).values(enqueued_at=time.time()))

    async def cancel_batch(self, batch_id: str) -> int:
        """Cancel the batch: deliveries not yet claimed become ``canceled``; in-flight sends finish."""
        now = time.time()
        async with self._write() as conn:
            await conn.execute(
                update(batches).where(batches.c.id == batch_id, batches.c.canceled_at.is_(None)).values(canceled_at=now)
            )
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.batch_id == batch_id, deliveries.c.status.in_(st.CLAIMABLE))
                .values(status=st.CANCELED, status_rank=st.FINAL_RANK, final_at=now, updated_at=now)
            )
        return int(result.rowcount)


def batch_canceled() -> Any:
    """SQL: the delivery's batch has been canceled (for the guards of updates to a delivery in flight)."""
    return (
        select(batches.c.id).where(batches.c.id == deliveries.c.batch_id, batches.c.canceled_at.is_not(None)).exists()
    )


def _batch(m: Any) -> BatchRow:
    return BatchRow(**{**dict(m), "channel": Channel(m["channel"])})
