"""The send path's writes: claims, Twilio's answers, and each attempt's outcome.

* A send is claimed with ``UPDATE ... WHERE status IN ('pending', 'retrying')``: two workers holding the
  same job cannot both send (invariant 2).
* A 201's status is taken only when its rank is higher than the stored one: a callback that arrived
  first keeps its status (invariant 3); the SID is kept either way.

Claims and 201s of many jobs share one transaction (``flush_send_writes``, fed by ``coalesce``): one
guarded ``UPDATE ... WHERE id IN (...) RETURNING``, one suppression look-up, and the 201s with their
attempt events as executemanys of driver SQL (``driver_sql``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, and_, bindparam, case, func, insert, literal_column, or_, select, true, update

from notifyq import statuses as st
from notifyq.statuses import Channel
from notifyq.store.batches import batch_canceled
from notifyq.store.driver_sql import COMPACT_JSON, driver_sql
from notifyq.store.engine import Database
from notifyq.store.records import Claim
from notifyq.store.schema import deliveries, delivery_events, suppressions

_DISPATCHING_RANK = st.MESSAGE_RANKS[st.DISPATCHING]


class Sends(Database):
    """A delivery's create attempts: claimed, answered, and settled."""

    async def claim(self, delivery_id: str, *, now: float | None = None) -> Claim | None:
        """Take the delivery for one create attempt; None when it is not claimable (someone else has it)."""
        claims, _ = await self.flush_send_writes(
            claim_ids=[(delivery_id, "")], accepted=[], now=time.time() if now is None else now
        )
        return claims.get(delivery_id)

    async def flush_send_writes(
        self,
        *,
        claim_ids: Sequence[tuple[str, str]],
        accepted: Sequence[tuple[dict[str, Any], dict[str, Any]]],
        now: float,
    ) -> tuple[dict[str, Claim], set[tuple[str, str]]]:
        """One transaction for many jobs' writes (see ``coalesce``).

        ``claim_ids`` are (delivery id, account SID): each is claimed with the same guard as ``claim``;
        returns the claims made and the (account SID, number) pairs among them that are suppressed.
        ``accepted`` are (params, event) pairs as ``record_accepted`` takes them.
        """
        if self._writer is not None:  # one hop to the writer thread for the whole transaction
            async with self._serialised():
                return await self._writer.run(_flush_send_writes, claim_ids, accepted, now)
        async with self._write() as conn:
            return await conn.run_sync(_flush_send_writes, claim_ids, accepted, now)

    async def record_accepted(
        self,
        delivery_id: str,
        *,
        channel: Channel,
        sid: str,
        status: str,
        segments: int | None,
        event: dict[str, Any],
    ) -> None:
        """Store the SID and initial status Twilio answered with, plus the attempt event.

        A callback may already have moved the status further; the SID is kept either way.
        """
        params = accepted_send(delivery_id, channel=channel, sid=sid, status=status, segments=segments)
        await self.flush_send_writes(claim_ids=[], accepted=[(params, event)], now=time.time())

    async def record_outcome(
        self,
        delivery_id: str,
        *,
        channel: Channel,
        status: str,
        error_code: int | None,
        error_message: str | None,
        event: dict[str, Any],
        only_from: Sequence[str] = (st.DISPATCHING,),
        refund_attempt: bool = False,
        attempt_at: float | None = None,
    ) -> bool:
        """Move a claimed delivery to ``status`` (retrying, failed, expired, suppressed...) with its reason.

        ``attempt_at``: only while the delivery is still in the attempt that started then (its
        ``dispatched_at``), so a worker that held a claim too long cannot undo another's take-over.
        """
        now = event["at"]
        new_rank = st.rank(channel, status)
        final = new_rank is not None and new_rank >= st.FINAL_RANK
        values: dict[str, Any] = {"status": status, "status_rank": new_rank, "final_at": now if final else None}
        if status == st.RETRYING:
            # the batch may have been canceled while this send was in flight: then it is not tried again
            canceled = batch_canceled()
            values = {
                "status": case((canceled, st.CANCELED), else_=st.RETRYING),
                "status_rank": case((canceled, st.FINAL_RANK), else_=new_rank),
                "final_at": case((canceled, now), else_=None),
            }
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.status.in_(only_from),
                    true() if attempt_at is None else deliveries.c.dispatched_at == attempt_at,
                )
                .values(
                    **values,
                    error_code=error_code,
                    error_message=error_message,
                    updated_at=now,
                    # an account pause is not the recipient's fault: it must not use up their attempts
                    attempts=deliveries.c.attempts - (1 if refund_attempt else 0),
                )
            )
            await conn.execute(
                insert(delivery_events),
                [{"delivery_id": delivery_id, "kind": "state", "status": status, "error_code": error_code, **event}],
            )
        return int(result.rowcount) == 1


def accepted_send(delivery_id: str, *, channel: Channel, sid: str, status: str, segments: int | None) -> dict[str, Any]:
    """What ``flush_send_writes`` takes for one 201: the delivery, its SID, initial status and segments."""
    return {"delivery_id": delivery_id, "channel": channel, "sid": sid, "status": status, "segments": segments}


_CLAIM_COLUMNS = (
    deliveries.c.id,
    deliveries.c.batch_id,
    deliveries.c.channel,
    deliveries.c.to_number,
    deliveries.c.variables,
    deliveries.c.attempts,
    deliveries.c.valid_until,
)
# built once: the id lists are expanding parameters
_CLAIM_MANY = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("ids", expanding=True)), deliveries.c.status.in_(st.CLAIMABLE))
    .values(
        status=st.DISPATCHING,
        status_rank=_DISPATCHING_RANK,
        attempts=deliveries.c.attempts + 1,
        dispatched_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(*_CLAIM_COLUMNS)
)
_SUPPRESSED_AMONG = select(suppressions.c.account_sid, suppressions.c.number).where(
    suppressions.c.number.in_(bindparam("numbers", expanding=True)),
    suppressions.c.account_sid.in_(bindparam("accounts", expanding=True)),
)

# ``statuses.should_apply`` in SQL, for a 201 (which carries no sequence number): a higher rank, and from a
# final status only a move of ``FINAL_MOVES`` (``b_after_final``: the final status ``b_status`` may follow).
# Every value is a parameter or a literal: the statement runs as driver SQL (``driver_sql``)
_ACCEPT_FORWARD = and_(
    deliveries.c.status_rank < bindparam("b_rank"),
    or_(
        deliveries.c.status_rank < literal_column(str(st.FINAL_RANK)),
        deliveries.c.status == bindparam("b_after_final"),
    ),
)
_ACCEPT = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        twilio_sid=func.coalesce(deliveries.c.twilio_sid, bindparam("b_sid")),
        segments=bindparam("b_segments"),
        status=case((_ACCEPT_FORWARD, bindparam("b_status")), else_=deliveries.c.status),
        status_rank=case((_ACCEPT_FORWARD, bindparam("b_rank")), else_=deliveries.c.status_rank),
        # a retry's error is cleared only when this answer moves the status; a callback that already
        # arrived (with its own ErrorCode) keeps what it set
        error_code=case((_ACCEPT_FORWARD, None), else_=deliveries.c.error_code),
        error_message=case((_ACCEPT_FORWARD, None), else_=deliveries.c.error_message),
        updated_at=bindparam("b_now"),
    )
)
_FINAL_BEFORE: Final = {new: old for old, new in st.FINAL_MOVES}
_EVENT_COLUMNS: Final = (
    "delivery_id", "at", "kind", "status", "error_code", "http_status", "duration_ms", "applied", "reason", "data",
)  # fmt: skip
# an attempt event's INSERT; inline: no RETURNING (a single-row INSERT on PostgreSQL would fetch the new id)
_EVENT_INSERT = insert(delivery_events).inline()


def _flush_send_writes(
    conn: Connection,
    claim_ids: Sequence[tuple[str, str]],
    accepted: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    now: float,
) -> tuple[dict[str, Claim], set[tuple[str, str]]]:
    """``Sends.flush_send_writes`` inside its transaction (synchronous: it runs in the writer thread)."""
    claims: dict[str, Claim] = {}
    suppressed: set[tuple[str, str]] = set()
    if claim_ids:
        for r in conn.execute(_CLAIM_MANY, {"ids": [d for d, _ in claim_ids], "now": now}):
            claim = _claim(r, now)
            claims[claim.id] = claim
        if claims:
            found = conn.execute(
                _SUPPRESSED_AMONG,
                {"numbers": list({c.to_number for c in claims.values()}), "accounts": list({a for _, a in claim_ids})},
            )
            suppressed = {(r.account_sid, r.number) for r in found}
    if accepted:
        accept = driver_sql(conn, _ACCEPT)
        conn.exec_driver_sql(accept.sql, accept.rows(_accept_params(p) for p, _ in accepted))
        event = driver_sql(conn, _EVENT_INSERT, _EVENT_COLUMNS)
        conn.exec_driver_sql(event.sql, event.rows(_event_row(p["delivery_id"], e) for p, e in accepted))
    return claims, suppressed


def _accept_params(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "b_id": p["delivery_id"],
        "b_sid": p["sid"],
        "b_segments": p["segments"],
        "b_status": p["status"],
        "b_rank": st.rank(p["channel"], p["status"]) or st.MESSAGE_RANKS["queued"],
        "b_after_final": _FINAL_BEFORE.get(p["status"]),
        "b_now": time.time(),
    }


def _event_row(delivery_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """An ``attempt`` event as driver parameters: every column, ``data`` as JSON text."""
    data = event.get("data")
    return {
        "delivery_id": delivery_id,
        "at": event["at"],
        "kind": event.get("kind", "attempt"),
        "status": event.get("status"),
        "error_code": event.get("error_code"),
        "http_status": event.get("http_status"),
        "duration_ms": event.get("duration_ms"),
        "applied": event.get("applied"),
        "reason": event.get("reason"),
        "data": None if data is None else COMPACT_JSON.encode(data),
    }


_CHANNELS: Final = {c.value: c for c in Channel}


def _claim(r: Any, now: float) -> Claim:
    delivery_id, batch_id, channel, to_number, variables, attempts, valid_until = r  # _CLAIM_COLUMNS
    return Claim(
        id=delivery_id,
        batch_id=batch_id,
        channel=_CHANNELS[channel],
        to_number=to_number,
        variables=variables,
        attempts=attempts,
        valid_until=valid_until,
        dispatched_at=now,
    )
