"""The store: every write that the invariants depend on, as one guarded statement each.

* A delivery row exists before its job (``create_batch`` commits before anything is queued).
* A send is claimed with ``UPDATE ... WHERE status IN ('pending', 'retrying')``: two workers holding the
  same job cannot both send.
* Statuses move forward only: the rank guard is in the UPDATE's WHERE clause, so concurrent callbacks
  cannot race a final status backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.statuses import Channel
from notifyq.store import reports as reports_mod
from notifyq.store.db import SqliteWriter, create_engine, migrate, migrate_when_reachable
from notifyq.store.records import Applied, BatchRow, Claim, DeliveryRow, ReconcileBacklog, StatusReport
from notifyq.store.schema import batches, deliveries, delivery_events, inbound_messages, suppressions

INSERT_CHUNK = 2000
_PENDING_RANK = st.MESSAGE_RANKS[st.PENDING]
_DISPATCHING_RANK = st.MESSAGE_RANKS[st.DISPATCHING]


class Store:
    """Batches, deliveries and their events in SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time; pooled connections that collide wait in SQLite's busy handler,
        # which sleeps in steps of up to 100 ms. One in-process lock makes them queue without sleeping.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._writer = SqliteWriter.for_engine(engine)  # the send path's group commits, one hop each

    def _serialised(self) -> contextlib.AbstractAsyncContextManager[object]:
        """The process' turn to write: SQLite's write lock, nothing on PostgreSQL."""
        return self._write_lock or contextlib.nullcontext()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (serialised within the process on SQLite)."""
        async with self._serialised(), self.engine.begin() as conn:
            yield conn

    @classmethod
    async def open(cls, url: str, *, wait: bool = False) -> Store:
        """Connect and migrate to the newest schema.

        ``wait``: for a service (API, worker, applier), keep trying while the database cannot be reached
        yet (``db.migrate_when_reachable``); a one-shot command fails at once.
        """
        engine = create_engine(url)
        try:
            await (migrate_when_reachable(engine) if wait else migrate(engine))
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        """Release every connection."""
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()

    # ---- batches -------------------------------------------------------------------------------

    async def create_batch(
        self,
        batch: dict[str, Any],
        recipients: Iterable[Sequence[tuple[str, str, Mapping[str, str] | None]]],
        *,
        finish: Callable[[], Mapping[str, Any]] | None = None,
    ) -> BatchRow:
        """Insert a batch and one pending delivery per recipient, all in one transaction.

        ``recipients`` yields chunks of ``(id, to_number, variables or None)``; a delivery's ``seq`` is its
        place in that sequence, and the batch's ``total`` is how many there were. Each chunk goes to the
        driver as one statement, and is written while the next chunk is made (the iterable may validate
        as it goes: whatever it raises rolls everything back). ``finish``, called after the last chunk,
        returns more batch columns to set before the commit.
        """
        now = batch["created_at"]
        bid = batch["id"]
        fixed = (bid, batch["channel"], st.PENDING, _PENDING_RANK, now, now, batch["valid_until"])
        write = _chunk_writer(self.engine.dialect.paramstyle, fixed)
        seq = 0
        async with self._write() as conn:
            await conn.execute(insert(batches), [batch])
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:  # pragma: no cover - an async engine always has one
                raise RuntimeError("no driver connection")
            # one chunk in flight on the driver (aiosqlite's thread, or asyncpg's socket) while the next is
            # made here. On SQLite a chunk is one INSERT ... SELECT over json_each, so the driver's thread
            # holds the GIL only to bind 9 parameters, not for every row (with executemany the two threads
            # traded the GIL row by row, and overlapping them was slower than writing one after the other)
            in_flight: asyncio.Task[Any] | None = None
            try:
                for chunk in recipients:
                    if not chunk:
                        continue
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.ensure_future(write(driver, seq, chunk))
                    seq += len(chunk)
                    await asyncio.sleep(0)  # let the write reach the driver before the next chunk is made
                if in_flight is not None:
                    await in_flight
            finally:
                if in_flight is not None:
                    # when the recipients raised, the write still running finishes before the rollback
                    await asyncio.wait([in_flight])
                    if not in_flight.cancelled():
                        in_flight.exception()  # retrieved: the recipients' exception is the one raised
            values = {"total": seq, **(finish() if finish is not None else {})}
            await conn.execute(update(batches).where(batches.c.id == bid).values(**values))
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

    # ---- deliveries ----------------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> DeliveryRow:
        """One delivery, or NotFound."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise NotFound("delivery", delivery_id)
        return _delivery(row._mapping)

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

    async def events(self, delivery_id: str) -> list[dict[str, Any]]:
        """The delivery's history, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(delivery_events)
                .where(delivery_events.c.delivery_id == delivery_id)
                .order_by(delivery_events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    async def claim(self, delivery_id: str, *, now: float | None = None) -> Claim | None:
        """Take the delivery for one create attempt; None when it is not claimable (someone else has it)."""
        claims, _ = await self.flush_send_writes(
            claim_ids=[(delivery_id, "")], accepted=[], now=time.time() if now is None else now
        )
        return claims.get(delivery_id)

    async def cancel_ambiguous(self, delivery_id: str, dispatched_at: float) -> bool:
        """Cancel an unanswered attempt that Twilio's list did not show, when its batch has been canceled."""
        now = time.time()
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_unanswered(delivery_id, dispatched_at), _batch_canceled())
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
                .where(_unanswered(delivery_id, dispatched_at), ~_batch_canceled())
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

    async def reclaim_ambiguous(self, delivery_id: str, dispatched_at: float, *, now: float | None = None) -> bool:
        """Take over a delivery left ``dispatching`` (worker died, or no answer) for a new attempt.

        Guarded on the old ``dispatched_at`` so exactly one worker wins; call it only after Twilio's
        list showed no message or call for the earlier attempt.
        """
        now = time.time() if now is None else now
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(_unanswered(delivery_id, dispatched_at), ~_batch_canceled())
                .values(attempts=deliveries.c.attempts + 1, dispatched_at=now, updated_at=now)
            )
        return int(result.rowcount) == 1

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
    ) -> bool:
        """Move a claimed delivery to ``status`` (retrying, failed, expired, suppressed...) with its reason."""
        now = event["at"]
        new_rank = st.rank(channel, status)
        final = new_rank is not None and new_rank >= st.FINAL_RANK
        values: dict[str, Any] = {"status": status, "status_rank": new_rank, "final_at": now if final else None}
        if status == st.RETRYING:
            # the batch may have been canceled while this send was in flight: then it is not tried again
            canceled = _batch_canceled()
            values = {
                "status": case((canceled, st.CANCELED), else_=st.RETRYING),
                "status_rank": case((canceled, st.FINAL_RANK), else_=new_rank),
                "final_at": case((canceled, now), else_=None),
            }
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.status.in_(only_from))
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

    async def apply_reports(self, reports: Sequence[StatusReport]) -> list[Applied]:
        """Apply status reports in one transaction; each is kept as an event, applied or not."""
        async with self._write() as conn:
            return await reports_mod.apply_reports(conn, reports)

    async def iter_unsettled(
        self, statuses: Sequence[str], *, chunk: int = 1000, batch_ids: Sequence[str] | None = None
    ) -> AsyncIterator[list[tuple[str, str, int, dict[str, str] | None]]]:
        """Deliveries in ``statuses`` (of ``batch_ids``, if given) as (id, batch_id, seq, variables), in chunks."""
        last = ""
        while True:
            query = select(deliveries.c.id, deliveries.c.batch_id, deliveries.c.seq, deliveries.c.variables).where(
                deliveries.c.status.in_(statuses), deliveries.c.id > last
            )
            if batch_ids is not None:
                query = query.where(deliveries.c.batch_id.in_(batch_ids))
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(deliveries.c.id).limit(chunk))).all()
            if not rows:
                return
            yield [(r.id, r.batch_id, r.seq, r.variables) for r in rows]
            last = rows[-1].id

    async def record_inbound(self, **row: Any) -> None:
        """Keep an inbound message (STOP, START, HELP or anything else)."""
        async with self._write() as conn:
            await conn.execute(insert(inbound_messages), [row])

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

    async def unanswered(self, *, older_than: float, limit: int) -> list[tuple[str, str, int, dict[str, str] | None]]:
        """Deliveries left ``dispatching`` without a SID that have not changed since ``older_than``.

        Returns (id, batch_id, seq, variables), oldest first: what ``JobQueue.has_job`` and a new send job need.
        """
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.id, deliveries.c.batch_id, deliveries.c.seq, deliveries.c.variables)
                    .where(_unanswered_since(older_than))
                    .order_by(deliveries.c.updated_at)
                    .limit(limit)
                )
            ).all()
        return [(r.id, r.batch_id, r.seq, r.variables) for r in rows]

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
            unanswered = await conn.scalar(select(func.count()).where(_unanswered_since(now - unanswered_after_s)))
        return ReconcileBacklog(
            stale=int(stale or 0),
            oldest_stale_s=round(now - oldest, 3) if oldest is not None else 0.0,
            unanswered=int(unanswered or 0),
        )

    async def touch_stale(self, delivery_id: str, event: dict[str, Any]) -> None:
        """Put a stale delivery at the back of the reconciler's order (it is asked again after its deadline).

        For a fetch Twilio refused for good: asked at the head of every pass, it would spend the budget of
        the deliveries behind it. ``event`` says why, in the delivery's history.
        """
        async with self._write() as conn:
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(updated_at=event["at"]))
            await conn.execute(insert(delivery_events), [{"delivery_id": delivery_id, **event}])

    async def inbound_actions(self, from_number: str) -> list[str]:
        """What the inbound messages from a number asked for, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(inbound_messages.c.action)
                .where(inbound_messages.c.from_number == from_number)
                .order_by(inbound_messages.c.id)
            )
            return [r.action for r in rows]

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


def _unanswered_since(older_than: float) -> Any:
    """SQL: left ``dispatching`` without a SID (an attempt never answered), unchanged since ``older_than``."""
    return and_(
        deliveries.c.status_rank == _DISPATCHING_RANK,
        deliveries.c.status == st.DISPATCHING,
        deliveries.c.twilio_sid.is_(None),
        deliveries.c.updated_at < older_than,
    )


def _unanswered(delivery_id: str, dispatched_at: float) -> Any:
    """SQL: the delivery is still in the unanswered attempt that started at ``dispatched_at``."""
    return and_(
        deliveries.c.id == delivery_id,
        deliveries.c.status == st.DISPATCHING,
        deliveries.c.twilio_sid.is_(None),
        deliveries.c.dispatched_at == dispatched_at,
    )


def _batch_canceled() -> Any:
    """SQL: the delivery's batch has been canceled (for guards on the rare paths)."""
    return (
        select(batches.c.id).where(batches.c.id == deliveries.c.batch_id, batches.c.canceled_at.is_not(None)).exists()
    )


_CLAIM_COLUMNS = (
    deliveries.c.id,
    deliveries.c.batch_id,
    deliveries.c.channel,
    deliveries.c.to_number,
    deliveries.c.variables,
    deliveries.c.attempts,
    deliveries.c.valid_until,
)

# ``statuses.should_apply`` in SQL, for a 201 (which carries no sequence number): a higher rank, and from a
# final status only a move of ``FINAL_MOVES`` (``b_after_final``: the final status ``b_status`` may follow).
# Every value is a parameter or a literal: the statement runs as driver SQL (``_DriverSql``)
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


def accepted_send(delivery_id: str, *, channel: Channel, sid: str, status: str, segments: int | None) -> dict[str, Any]:
    """What ``flush_send_writes`` takes for one 201: the delivery, its SID, initial status and segments."""
    return {"delivery_id": delivery_id, "channel": channel, "sid": sid, "status": status, "segments": segments}


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
_EVENT_COLUMNS: Final = (
    "delivery_id", "at", "kind", "status", "error_code", "http_status", "duration_ms", "applied", "reason", "data",
)  # fmt: skip
# JSON text for the driver (events' data, deliveries' variables, intake chunks): compact, one encoder
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
# an attempt event's INSERT; inline: no RETURNING (a single-row INSERT on PostgreSQL would fetch the new id)
_EVENT_INSERT = insert(delivery_events).inline()


class _DriverSql:
    """A Core statement compiled once for a dialect, to run as driver SQL (``exec_driver_sql``).

    For the send path's executemanys: through ``Connection.execute`` each row's parameters are
    processed one by one. Measured on SQLite, flushes of 25 claims and 25 results: 150 µs of CPU per
    send when every statement went through ``execute`` (built anew each flush), 84 µs with the claim
    built once and the results as driver SQL. Here a row is a tuple in placeholder order (a dict for
    named paramstyles). No bind processors run: the values must be what the driver takes (JSON
    already serialised).
    """

    def __init__(self, sql: str, order: tuple[str, ...] | None) -> None:
        self.sql = sql
        self.order = order

    @classmethod
    def compile(cls, stmt: Any, conn: Connection, keys: Sequence[str] | None = None) -> _DriverSql:
        compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
        order = compiled.positiontup
        return cls(compiled.string, None if order is None else tuple(order))

    def rows(self, values: Iterable[Mapping[str, Any]]) -> list[Any]:
        order = self.order
        if order is None:
            return list(values)
        return [tuple(v[k] for k in order) for v in values]


_DRIVER_SQL: dict[tuple[int, str], _DriverSql] = {}


def _driver_sql(conn: Connection, stmt: Any, keys: Sequence[str] | None = None) -> _DriverSql:
    """``stmt`` (a module constant) compiled for ``conn``'s dialect, driver and paramstyle, once."""
    dialect = conn.dialect
    key = (id(stmt), f"{dialect.name}+{dialect.driver}:{dialect.paramstyle}")
    found = _DRIVER_SQL.get(key)
    if found is None:
        found = _DRIVER_SQL[key] = _DriverSql.compile(stmt, conn, keys)
    return found


def _flush_send_writes(
    conn: Connection,
    claim_ids: Sequence[tuple[str, str]],
    accepted: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    now: float,
) -> tuple[dict[str, Claim], set[tuple[str, str]]]:
    """``Store.flush_send_writes`` inside its transaction (synchronous: it runs in the writer thread)."""
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
        accept = _driver_sql(conn, _ACCEPT)
        conn.exec_driver_sql(accept.sql, accept.rows(_accept_params(p) for p, _ in accepted))
        event = _driver_sql(conn, _EVENT_INSERT, _EVENT_COLUMNS)
        conn.exec_driver_sql(event.sql, event.rows(_event_row(p["delivery_id"], e) for p, e in accepted))
    return claims, suppressed


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
        "data": None if data is None else _COMPACT_JSON.encode(data),
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


def _batch(m: Any) -> BatchRow:
    return BatchRow(**{**dict(m), "channel": Channel(m["channel"])})


def _delivery(m: Any) -> DeliveryRow:
    return DeliveryRow(**{**dict(m), "channel": Channel(m["channel"])})


_DELIVERY_COLUMNS: Final = (
    "id", "batch_id", "seq", "channel", "to_number", "variables", "status", "status_rank", "created_at",
    "updated_at", "valid_until",
)  # fmt: skip


def _chunk_writer(
    paramstyle: str, fixed: tuple[Any, ...]
) -> Callable[[Any, int, Sequence[tuple[str, str, Mapping[str, str] | None]]], Awaitable[Any]]:
    """How one chunk of deliveries is written through the driver connection, for its paramstyle.

    ``fixed`` is what every delivery of the batch shares: (batch id, channel, status, status_rank,
    created_at, updated_at, valid_until). Variables are stored as compact JSON text either way.
    """
    bid, channel, status, rank, created, updated, valid_until = fixed
    columns = ", ".join(_DELIVERY_COLUMNS)
    if paramstyle == "qmark":  # SQLite: the chunk as one JSON array of [id, to, variables], one statement
        sql = (
            f"INSERT INTO deliveries ({columns}) "  # noqa: S608 - fixed names
            "SELECT json_extract(value, '$[0]'), ?, ? + key, ?, json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]'), ?, ?, ?, ?, ? FROM json_each(?) ORDER BY key"
        )
        encode = _COMPACT_JSON.encode

        async def write_sqlite(driver: Any, seq: int, chunk: Sequence[tuple[str, str, Any]]) -> None:
            params = (bid, seq, channel, status, rank, created, updated, valid_until, encode(chunk))
            await (await driver.execute(sql, params)).close()

        return write_sqlite
    if paramstyle == "numeric_dollar":  # PostgreSQL (asyncpg): executemany, pipelined by the driver
        marks = ", ".join(f"${i}" for i in range(1, len(_DELIVERY_COLUMNS) + 1))
        sql = f"INSERT INTO deliveries ({columns}) VALUES ({marks})"  # noqa: S608 - fixed names
        dumps = _COMPACT_JSON.encode

        async def write_pg(driver: Any, seq: int, chunk: Sequence[tuple[str, str, Any]]) -> None:
            rows = [
                (did, bid, seq + i, channel, to, None if v is None else dumps(v), status, rank, created, updated,
                 valid_until)
                for i, (did, to, v) in enumerate(chunk)
            ]  # fmt: skip
            await driver.executemany(sql, rows)

        return write_pg
    raise NotImplementedError(f"no INSERT for paramstyle {paramstyle}")
