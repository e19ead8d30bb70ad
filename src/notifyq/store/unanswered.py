"""Unanswered attempts: found, taken over for a new attempt, failed, or canceled with their batch.

An attempt is unanswered when its delivery is left ``dispatching`` without a SID: the create got no
answer, or its worker died. Each update is guarded on the attempt's ``dispatched_at``, so exactly one
worker settles an attempt, and only after Twilio's list showed no message or call for it (invariant 2).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, insert, select, update

from notifyq import statuses as st
from notifyq.store.batches import batch_canceled
from notifyq.store.engine import Database
from notifyq.store.schema import deliveries, delivery_events

_DISPATCHING_RANK = st.MESSAGE_RANKS[st.DISPATCHING]


class UnansweredAttempts(Database):
    """Create attempts Twilio never answered."""

    async def unanswered(self, *, older_than: float, limit: int) -> list[tuple[str, str, int, dict[str, str] | None]]:
        """Deliveries left ``dispatching`` without a SID that have not changed since ``older_than``.

        Returns (id, batch_id, seq, variables), oldest first: what ``JobQueue.has_job`` and a new send job need.
        """
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.id, deliveries.c.batch_id, deliveries.c.seq, deliveries.c.variables)
                    .where(unanswered_since(older_than))
                    .order_by(deliveries.c.updated_at)
                    .limit(limit)
                )
            ).all()
        return [(r.id, r.batch_id, r.seq, r.variables) for r in rows]

    async def reclaim_ambiguous(self, delivery_id: str, dispatched_at: float, *, now: float | None = None) -> bool:
        """Take over a delivery left ``dispatching`` (worker died, or no answer) for a new attempt.

        Guarded on the old ``dispatched_at`` so exactly one worker wins; call it only after Twilio's
        list showed no message or call for the earlier attempt.
        """
        now = time.time() if now is None else now
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_in_attempt(delivery_id, dispatched_at), ~batch_canceled())
                .values(attempts=deliveries.c.attempts + 1, dispatched_at=now, updated_at=now)
            )
        return int(result.rowcount) == 1

    async def restamp_attempt(self, delivery_id: str, dispatched_at: float, now: float) -> bool:
        """Move the start of an attempt that is about to send to ``now``; False if it is no longer this one.

        A claimed send may wait for its turn at the pacer. Before one that waited long goes out, its
        ``dispatched_at`` moves to the request's start, so the look-up that settles an unanswered attempt
        (``callback_grace_s`` after it) cannot run while its request may still be in flight; False: another
        worker has taken the attempt over (or it was settled), and this one must not send.
        """
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_in_attempt(delivery_id, dispatched_at))
                .values(dispatched_at=now, updated_at=now)
            )
        return int(result.rowcount) == 1

    async def cancel_ambiguous(self, delivery_id: str, dispatched_at: float) -> bool:
        """Cancel an unanswered attempt that Twilio's list did not show, when its batch has been canceled."""
        now = time.time()
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_in_attempt(delivery_id, dispatched_at), batch_canceled())
                .values(status=st.CANCELED, status_rank=st.FINAL_RANK, final_at=now, updated_at=now)
            )
            done = int(result.rowcount) == 1
            if done:
                await conn.execute(
                    insert(delivery_events),
                    [
                        {
                            "delivery_id": delivery_id,
                            "at": now,
                            "kind": "state",
                            "status": st.CANCELED,
                            "reason": "batch canceled; the unanswered attempt was not found at Twilio",
                        }
                    ],
                )
        return done

    async def fail_unanswered(self, delivery_id: str, dispatched_at: float, reason: str) -> bool:
        """End an unanswered attempt ``failed`` with ``reason``, when no new attempt may follow it.

        Guarded as ``reclaim_ambiguous`` is (one worker wins; a delivery a callback or look-up has
        settled meanwhile is left as it is); a canceled batch's delivery is left to ``cancel_ambiguous``.
        """
        now = time.time()
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_in_attempt(delivery_id, dispatched_at), ~batch_canceled())
                .values(
                    status=st.FAILED,
                    status_rank=st.FINAL_RANK,
                    error_code=None,
                    error_message=reason,
                    final_at=now,
                    updated_at=now,
                )
            )
            done = int(result.rowcount) == 1
            if done:
                await conn.execute(
                    insert(delivery_events),
                    [{"delivery_id": delivery_id, "at": now, "kind": "state", "status": st.FAILED, "reason": reason}],
                )
        return done


def unanswered_since(older_than: float) -> Any:
    """SQL: left ``dispatching`` without a SID (an attempt never answered), unchanged since ``older_than``."""
    return and_(
        deliveries.c.status_rank == _DISPATCHING_RANK,
        deliveries.c.status == st.DISPATCHING,
        deliveries.c.twilio_sid.is_(None),
        deliveries.c.updated_at < older_than,
    )


def _in_attempt(delivery_id: str, dispatched_at: float) -> Any:
    """SQL: the delivery is still in the unanswered attempt that started at ``dispatched_at``."""
    return and_(
        deliveries.c.id == delivery_id,
        deliveries.c.status == st.DISPATCHING,
        deliveries.c.twilio_sid.is_(None),
        deliveries.c.dispatched_at == dispatched_at,
    )
