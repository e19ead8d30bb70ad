"""Deliveries and their history: the rows read by id, by batch or by status, and the events kept for each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import func, insert, select

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.statuses import Channel
from notifyq.store.engine import Database
from notifyq.store.records import DeliveryRow
from notifyq.store.schema import batches, deliveries, delivery_events


class Deliveries(Database):
    """The deliveries table read, and the delivery_events table (a delivery's history)."""

    async def working_by_lane(self) -> dict[str, dict[str, int]]:
        """Per lane (the batch's priority), the deliveries ``dispatching`` (a create in flight) and ``retrying``.

        Lanes without any are left out. Only ranks 1 and 2 are read, so the (status_rank, updated_at)
        index keeps this from scanning the settled deliveries.
        """
        ranks = (st.MESSAGE_RANKS[st.RETRYING], st.MESSAGE_RANKS[st.DISPATCHING])
        query = (
            select(batches.c.priority, deliveries.c.status, func.count())
            .select_from(deliveries.join(batches, batches.c.id == deliveries.c.batch_id))
            .where(deliveries.c.status_rank.between(*ranks), deliveries.c.status.in_([st.RETRYING, st.DISPATCHING]))
            .group_by(batches.c.priority, deliveries.c.status)
        )
        out: dict[str, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            for lane, status, n in await conn.execute(query):
                out.setdefault(lane, {})[status] = int(n)
        return out

    async def get_delivery(self, delivery_id: str) -> DeliveryRow:
        """One delivery, or NotFound."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise NotFound("delivery", delivery_id)
        return _delivery(row._mapping)

    async def delivery_id_by_sid(self, twilio_sid: str) -> str | None:
        """The delivery whose message or call has this Twilio SID (a unique column: one index look-up), or None."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(deliveries.c.id).where(deliveries.c.twilio_sid == twilio_sid))
        return None if found is None else str(found)

    async def get_deliveries(self, delivery_ids: Sequence[str]) -> list[DeliveryRow]:
        """The deliveries that exist among ``delivery_ids`` (in no particular order)."""
        if not delivery_ids:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(deliveries).where(deliveries.c.id.in_(list(delivery_ids))))
            return [_delivery(r._mapping) for r in rows]

    async def list_deliveries(
        self, batch_id: str, *, status: str | None = None, after: str = "", limit: int = 100
    ) -> list[DeliveryRow]:
        """A page of the batch's deliveries (optionally in one status), by id after ``after``."""
        query = select(deliveries).where(deliveries.c.batch_id == batch_id, deliveries.c.id > after)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(deliveries.c.id).limit(limit))
            return [_delivery(r._mapping) for r in rows]

    async def iter_unsettled(
        self, statuses: Sequence[str], *, page: int = 1000, batch_ids: Sequence[str] | None = None
    ) -> AsyncIterator[list[tuple[str, str, int, dict[str, str] | None]]]:
        """Deliveries in ``statuses`` (of ``batch_ids``, if given) as (id, batch_id, seq, variables), by pages."""
        last = ""
        while True:
            query = select(deliveries.c.id, deliveries.c.batch_id, deliveries.c.seq, deliveries.c.variables).where(
                deliveries.c.status.in_(statuses), deliveries.c.id > last
            )
            if batch_ids is not None:
                query = query.where(deliveries.c.batch_id.in_(batch_ids))
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(deliveries.c.id).limit(page))).all()
            if not rows:
                return
            yield [(r.id, r.batch_id, r.seq, r.variables) for r in rows]
            last = rows[-1].id

    async def events(self, delivery_id: str) -> list[dict[str, Any]]:
        """The delivery's history, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(delivery_events)
                .where(delivery_events.c.delivery_id == delivery_id)
                .order_by(delivery_events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    async def add_event(self, event: dict[str, Any]) -> None:
        """Keep one event in a delivery's history."""
        async with self._write() as conn:
            await conn.execute(insert(delivery_events), [event])

    async def count_events(self, delivery_id: str, *, kind: str, since: float) -> int:
        """How many events of ``kind`` the delivery's history holds from ``since`` on."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count()).where(
                    delivery_events.c.delivery_id == delivery_id,
                    delivery_events.c.kind == kind,
                    delivery_events.c.at >= since,
                )
            )
        return int(found or 0)


def _delivery(m: Any) -> DeliveryRow:
    return DeliveryRow(**{**dict(m), "channel": Channel(m["channel"])})
