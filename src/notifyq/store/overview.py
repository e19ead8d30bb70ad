"""What the ops page lists: the latest batches with their progress, and the deliveries behind a failure code.

Both read a bounded number of rows: the latest batches by id (ids sort by creation time, so the
primary key orders them) and their counts by status through ``ix_deliveries_batch_status``; failed
deliveries a page at a time through ``ix_deliveries_status_rank_updated``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select

from notifyq import statuses as st
from notifyq.store.batches import _batch
from notifyq.store.deliveries import _delivery
from notifyq.store.engine import Database
from notifyq.store.records import BatchRow, DeliveryRow
from notifyq.store.schema import batches, deliveries


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch and how many of its deliveries are in each status."""

    batch: BatchRow
    by_status: dict[str, int]


class Overview(Database):
    """The ops page's lists."""

    async def recent_batches(self, *, limit: int = 10) -> list[BatchProgress]:
        """The ``limit`` latest batches, newest first, each with its counts by status."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(batches).order_by(batches.c.id.desc()).limit(limit))).all()
            ids = [r.id for r in rows]
            counts: dict[str, dict[str, int]] = {bid: {} for bid in ids}
            if ids:
                grouped = await conn.execute(
                    select(deliveries.c.batch_id, deliveries.c.status, func.count().label("n"))
                    .where(deliveries.c.batch_id.in_(ids))
                    .group_by(deliveries.c.batch_id, deliveries.c.status)
                )
                for g in grouped:
                    counts[g.batch_id][g.status] = int(g.n)
        return [BatchProgress(_batch(r._mapping), counts[r.id]) for r in rows]

    async def failed_deliveries(
        self,
        *,
        error_code: int | None,
        batch_id: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """Failed and undelivered deliveries with one error code (None: those without a code), latest first.

        ``before`` is the (updated_at, id) of the last row of the previous page.
        """
        where: list[ColumnElement[bool]] = [
            deliveries.c.status_rank == st.FINAL_RANK,
            deliveries.c.status.in_(st.FAILURES),
            deliveries.c.error_code.is_(None) if error_code is None else deliveries.c.error_code == error_code,
        ]
        if batch_id is not None:
            where.append(deliveries.c.batch_id == batch_id)
        if since is not None:
            where.append(deliveries.c.updated_at >= since)
        if before is not None:
            at, last = before
            where.append(or_(deliveries.c.updated_at < at, and_(deliveries.c.updated_at == at, deliveries.c.id > last)))
        query = (
            select(deliveries)
            .where(and_(*where))
            .order_by(deliveries.c.updated_at.desc(), deliveries.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_delivery(r._mapping) for r in await conn.execute(query)]
