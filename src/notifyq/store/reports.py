"""Applying status reports (callbacks, reconciler fetches) set-at-a-time.

Reports applied together cost three statements however many there are: read the deliveries it names (row
locks on PostgreSQL, the single writer on SQLite), decide each report in Python with the one rule in
``statuses.should_apply`` (several reports for one delivery are taken in arrival order), then write
the new states (each UPDATE still guarded by the state that was read) and one event per report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from notifyq import statuses as st
from notifyq.statuses import Channel
from notifyq.store.engine import Database
from notifyq.store.records import Applied, StatusReport
from notifyq.store.schema import deliveries, delivery_events


@dataclass
class _State:
    channel: Channel
    status: str
    rank: int
    call_seq: int | None
    sid: str | None
    read_status: str  # what the row said when read: the UPDATE's guard
    error_code: int | None = None
    error_message: str | None = None
    final_at: float | None = None
    updated_at: float = 0.0
    changed: bool = False


_UPDATE = (
    update(deliveries)
    .where(and_(deliveries.c.id == bindparam("b_id"), deliveries.c.status == bindparam("b_read_status")))
    .values(
        status=bindparam("b_status"),
        status_rank=bindparam("b_rank"),
        call_seq=bindparam("b_call_seq"),
        twilio_sid=func.coalesce(deliveries.c.twilio_sid, bindparam("b_sid")),
        error_code=case((bindparam("b_has_error") == 1, bindparam("b_code")), else_=deliveries.c.error_code),
        error_message=case((bindparam("b_has_error") == 1, bindparam("b_msg")), else_=deliveries.c.error_message),
        final_at=func.coalesce(deliveries.c.final_at, bindparam("b_final_at")),
        updated_at=bindparam("b_updated_at"),
    )
)


class StatusReports(Database):
    """Status reports applied to the deliveries table, each kept in delivery_events."""

    async def apply_reports(self, reports: Sequence[StatusReport]) -> list[Applied]:
        """Apply status reports in one transaction; each is kept as an event, applied or not."""
        async with self._write() as conn:
            return await _apply(conn, reports)


async def _apply(conn: AsyncConnection, reports: Sequence[StatusReport]) -> list[Applied]:
    """Apply ``reports`` inside the caller's transaction; returns one result per report, in order."""
    if not reports:
        return []
    ids = sorted({r.delivery_id for r in reports})  # sorted: row locks always taken in one order
    query = select(
        deliveries.c.id,
        deliveries.c.channel,
        deliveries.c.status,
        deliveries.c.status_rank,
        deliveries.c.call_seq,
        deliveries.c.twilio_sid,
    ).where(deliveries.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    states = {
        r.id: _State(Channel(r.channel), r.status, r.status_rank, r.call_seq, r.twilio_sid, r.status)
        for r in await conn.execute(query)
    }
    results: list[Applied] = []
    events: list[dict[str, Any]] = []
    for report in reports:
        state = states.get(report.delivery_id)
        applied, reason = _decide(state, report)
        results.append(Applied(applied=applied, reason=reason, status=state.status if state else None))
        events.append(
            {
                "delivery_id": report.delivery_id,
                "at": report.at,
                "kind": report.source,
                "status": report.status,
                "error_code": report.error_code,
                "http_status": None,
                "duration_ms": None,
                "applied": applied,
                "reason": reason,
                "data": report.raw,
            }
        )
    updates = [_params(did, s) for did, s in states.items() if s.changed]
    if updates:
        await conn.execute(_UPDATE, updates)
    await conn.execute(insert(delivery_events), events)
    return results


def _decide(state: _State | None, report: StatusReport) -> tuple[bool, str]:
    if report.invalid is not None:
        return False, report.invalid
    if state is None:
        return False, "no such delivery"
    if state.sid is not None and state.sid != report.sid:
        return False, f"sid {report.sid} is not this delivery's {state.sid}"
    ok, reason = st.should_apply(
        state.channel, state.status, report.status, current_seq=state.call_seq, new_seq=report.sequence
    )
    if not ok:
        return False, reason
    new_rank = st.rank(state.channel, report.status)
    if new_rank is None:  # pragma: no cover - should_apply refuses unknown statuses
        return False, f"unknown status {report.status!r}"
    state.status, state.rank, state.sid, state.changed = report.status, new_rank, report.sid, True
    if report.sequence is not None:
        state.call_seq = report.sequence
    if report.error_code is not None:
        state.error_code, state.error_message = report.error_code, report.error_message
    if new_rank >= st.FINAL_RANK and state.final_at is None:
        state.final_at = report.at
    state.updated_at = max(state.updated_at, report.at)
    return True, reason


def _params(delivery_id: str, s: _State) -> dict[str, Any]:
    return {
        "b_id": delivery_id,
        "b_read_status": s.read_status,
        "b_status": s.status,
        "b_rank": s.rank,
        "b_call_seq": s.call_seq,
        "b_sid": s.sid,
        "b_has_error": 1 if s.error_code is not None else 0,
        "b_code": s.error_code,
        "b_msg": s.error_message,
        "b_final_at": s.final_at,
        "b_updated_at": s.updated_at,
    }
