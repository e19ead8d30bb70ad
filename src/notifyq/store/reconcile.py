"""What the reconciler reads and writes: deliveries whose status at Twilio has gone stale, and its backlog.

A delivery is stale when Twilio holds it (it has a SID) and its status has not moved for longer than
that status' deadline; the reconciler fetches it from Twilio and applies the answer as a status report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, false, func, insert, or_, select, update

from notifyq import statuses as st
from notifyq.store.engine import Database
from notifyq.store.records import ReconcileBacklog
from notifyq.store.schema import batches, deliveries, delivery_events
from notifyq.store.unanswered import unanswered_since

_DISPATCHING_RANK = st.MESSAGE_RANKS[st.DISPATCHING]


class Reconciliation(Database):
    """Stale deliveries, in the order the reconciler asks Twilio about them."""

    async def stale(
        self, *, older_than: dict[str, float], now: float, limit: int, account_sid: str | None = None
    ) -> list[tuple[str, str, str, str]]:
        """Deliveries Twilio holds whose status has not moved for longer than its deadline.

        Only those of ``account_sid``'s batches, when it is given. Returns (id, batch_id, channel,
        twilio_sid), oldest first.
        """
        query = select(deliveries.c.id, deliveries.c.batch_id, deliveries.c.channel, deliveries.c.twilio_sid).where(
            _stale(older_than, now)
        )
        if account_sid is not None:
            query = query.where(
                deliveries.c.batch_id.in_(select(batches.c.id).where(batches.c.account_sid == account_sid))
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(deliveries.c.updated_at).limit(limit))).all()
        return [(r.id, r.batch_id, r.channel, r.twilio_sid) for r in rows]

    async def touch_stale(self, delivery_id: str, event: dict[str, Any]) -> None:
        """Put a stale delivery at the back of the reconciler's order (it is asked again after its deadline).

        For a fetch Twilio refused for good: asked at the head of every pass, it would spend the budget of
        the deliveries behind it. ``event`` says why, in the delivery's history.
        """
        async with self._write() as conn:
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(updated_at=event["at"]))
            await conn.execute(insert(delivery_events), [{"delivery_id": delivery_id, **event}])

    async def reconcile_backlog(
        self, *, older_than: dict[str, float], unanswered_after_s: float, now: float
    ) -> ReconcileBacklog:
        """How far behind the reconciler is: the stale deliveries, the oldest's age, the unanswered attempts."""
        async with self.engine.connect() as conn:
            stale, oldest = (
                await conn.execute(
                    select(func.count(), func.min(deliveries.c.updated_at)).where(_stale(older_than, now))
                )
            ).one()
            unanswered = await conn.scalar(select(func.count()).where(unanswered_since(now - unanswered_after_s)))
        return ReconcileBacklog(
            stale=int(stale or 0),
            oldest_stale_s=round(now - oldest, 3) if oldest is not None else 0.0,
            unanswered=int(unanswered or 0),
        )


def _stale(older_than: Mapping[str, float], now: float) -> Any:
    """SQL: Twilio holds the delivery (it has a SID), and its status has not moved for longer than its deadline."""
    conds = [
        and_(deliveries.c.status == status, deliveries.c.updated_at < now - age) for status, age in older_than.items()
    ]
    # the rank bounds let the (status_rank, updated_at) index skip the final deliveries
    return and_(
        deliveries.c.status_rank > _DISPATCHING_RANK,
        deliveries.c.status_rank < st.FINAL_RANK,
        deliveries.c.twilio_sid.is_not(None),
        or_(*conds) if conds else false(),
    )
