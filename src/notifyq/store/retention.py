"""Retention: finished batches, their deliveries and the deliveries' events, deleted once they are old.

A batch is finished before a time when every one of its deliveries was final before it (a batch with
no delivery counts by its creation). Only finished batches go, and each goes whole: its deliveries and
their events in chunks, each chunk one short transaction, then the batch row. A batch with a live
delivery (not final, or final only since the bound) is never touched, so status counts of a batch
never change under an operator, and nothing the workers, the receiver or the reconciler may still
write is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Exists, delete, exists, func, or_, select

from notifyq import statuses as st
from notifyq.store.engine import Database
from notifyq.store.schema import batches, deliveries, delivery_events, delivery_replays

BATCHES_PER_PASS = 100  # finished batches looked up at a time


@dataclass(frozen=True)
class Purged:
    """What a purge deleted (or, dry, would delete)."""

    batches: int = 0
    deliveries: int = 0
    events: int = 0


def _live_before(before: float) -> Exists:
    """SQL: the batch has a delivery that is not final, or became final (or moved) at or after ``before``."""
    return exists().where(
        deliveries.c.batch_id == batches.c.id,
        or_(deliveries.c.status_rank < st.FINAL_RANK, deliveries.c.updated_at >= before),
    )


class Retention(Database):
    """Finished batches older than a bound, counted or deleted."""

    async def finished_batches(self, before: float, *, limit: int = BATCHES_PER_PASS) -> list[str]:
        """Batches created before ``before`` whose every delivery was final before it, oldest first."""
        query = (
            select(batches.c.id)
            .where(batches.c.created_at < before, ~_live_before(before))
            .order_by(batches.c.created_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.scalars(query)).all())

    async def count_finished(self, before: float) -> Purged:
        """What ``purge_finished`` would delete now."""
        finished = select(batches.c.id).where(batches.c.created_at < before, ~_live_before(before))
        gone = select(deliveries.c.id).where(deliveries.c.batch_id.in_(finished))
        async with self.engine.connect() as conn:
            n_batches = await conn.scalar(select(func.count()).select_from(finished.subquery()))
            n_deliveries = await conn.scalar(select(func.count()).select_from(gone.subquery()))
            n_events = await conn.scalar(
                select(func.count()).select_from(delivery_events).where(delivery_events.c.delivery_id.in_(gone))
            )
        return Purged(int(n_batches or 0), int(n_deliveries or 0), int(n_events or 0))

    async def purge_batch(self, batch_id: str, *, chunk: int) -> Purged:
        """Delete one finished batch: its final deliveries and their events ``chunk`` at a time, then the batch.

        The batch row stays if a delivery of it is left (one that is not final: none, for a batch
        ``finished_batches`` named).
        """
        n_deliveries = n_events = 0
        while True:
            async with self._write() as conn:
                ids = list(
                    (
                        await conn.scalars(
                            select(deliveries.c.id)
                            .where(deliveries.c.batch_id == batch_id, deliveries.c.status_rank >= st.FINAL_RANK)
                            .limit(chunk)
                        )
                    ).all()
                )
                if not ids:
                    break
                events = await conn.execute(delete(delivery_events).where(delivery_events.c.delivery_id.in_(ids)))
                # a replay's links to or from these deliveries go with them: a link names two deliveries
                await conn.execute(
                    delete(delivery_replays).where(
                        or_(delivery_replays.c.delivery_id.in_(ids), delivery_replays.c.original_id.in_(ids))
                    )
                )
                rows = await conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
            n_events += int(events.rowcount or 0)
            n_deliveries += int(rows.rowcount or 0)
        async with self._write() as conn:
            left = await conn.scalar(select(exists().where(deliveries.c.batch_id == batch_id)))
            gone = (
                0 if left else int((await conn.execute(delete(batches).where(batches.c.id == batch_id))).rowcount or 0)
            )
        return Purged(gone, n_deliveries, n_events)
