"""Replays: the deliveries a replay filter matches, with what the safety defaults need to know of each; the records.

``replay_candidates`` is one statement, streamed: each matching delivery comes with whether its recipient
is suppressed for the batch's account, whether the recipient was reached (a delivered delivery in a
batch the filter names, or with no batch named, in a batch holding a delivery it matches; or a delivered
replay of its original), how many replays of its original there were and whether one of them is still
under way. The original of a delivery a replay created is the delivery that replay sent again (links
always name the first one), so replays are counted per original however often they failed.
Deciding what to skip is the caller's (``notifyq.replay``).

Every replay is a ``replays`` row (who, when, the filter, what matched and was skipped), and every
delivery it creates is a ``delivery_replays`` row linking it to its original, written in the transaction
that stores the new batch (``link_replayed``): a batch is never stored without its links, so a replay cut
short is never sent twice by the next one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.store.engine import Database
from notifyq.store.schema import batches, deliveries, delivery_replays, replays, suppressions


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which final deliveries a replay looks at: every field given must match (empty: any).

    ``since`` and ``until`` (epoch seconds, ``until`` excluded) compare with the time the delivery became
    final; ``account`` is a batch's account name or SID; ``sender`` its From or Messaging Service SID.
    """

    statuses: tuple[str, ...] = (st.FAILED, st.UNDELIVERED)
    batch_ids: tuple[str, ...] = ()
    error_codes: tuple[int, ...] = ()
    account: str | None = None
    sender: str | None = None
    since: float | None = None
    until: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filter as stored and shown: lists, and times in ISO 8601 (UTC)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        for name, at in (("since", self.since), ("until", self.until)):
            out[name] = None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        return out


@dataclass(frozen=True, slots=True)
class ReplayCandidate:
    """A delivery a replay filter matched, and what the safety defaults read of it."""

    id: str
    batch_id: str
    to_number: str
    variables: dict[str, str] | None
    status: str
    error_code: int | None
    original_id: str  # the delivery it sends again: its own id, or for a replay's delivery, the one replayed
    suppressed: bool  # on the batch account's suppression list (opted out, or error 21610)
    reached: bool  # the recipient has a delivered delivery in a matched batch, or through a replay of this one
    replays: int  # replays of its original so far
    replay_live: bool  # one of them is not final yet


@dataclass(frozen=True, slots=True)
class ReplayLink:
    """What ``create_batch`` writes beside a replay's new batch: each new recipient's original and round."""

    replay_id: str
    originals: Mapping[str, tuple[str, int]]  # to_number -> (original delivery id, its replays so far)


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A stored replay, with what it has created so far."""

    id: str
    created_at: float
    ran_by: str
    filter: dict[str, Any]
    matched: int
    skipped: dict[str, int]
    finished_at: float | None
    replayed: int  # deliveries created
    batch_ids: tuple[str, ...]  # the new batches


class Replays(Database):
    """The replays and delivery_replays tables, and the search a replay runs."""

    async def replay_candidates(self, f: ReplayFilter) -> AsyncIterator[ReplayCandidate]:
        """Every final delivery matching ``f``, by batch then id, streamed; NotFound for a batch not there."""
        async with self.engine.connect() as conn:
            for batch_id in f.batch_ids:
                if (await conn.execute(select(batches.c.id).where(batches.c.id == batch_id))).first() is None:
                    raise NotFound("batch", batch_id)
            result = await conn.stream(_candidates(f))
            async for row in result:
                yield ReplayCandidate(
                    id=row.id,
                    batch_id=row.batch_id,
                    to_number=row.to_number,
                    variables=row.variables,
                    status=row.status,
                    error_code=row.error_code,
                    original_id=row.original_id,
                    suppressed=bool(row.suppressed),
                    reached=row.reached_number is not None or bool(row.replay_reached),
                    replays=int(row.replays),
                    replay_live=bool(row.replay_live),
                )

    async def start_replay(
        self, replay_id: str, *, ran_by: str, f: ReplayFilter, again: bool, matched: int, skipped: Mapping[str, int]
    ) -> None:
        """Record a replay before it stores anything."""
        row = {
            "id": replay_id,
            "created_at": time.time(),
            "ran_by": ran_by,
            "filter": f.as_dict() | {"again": again},
            "matched": matched,
            "skipped": dict(skipped),
        }
        async with self._write() as conn:
            await conn.execute(insert(replays), [row])

    async def finish_replay(self, replay_id: str) -> None:
        """Note that every new batch of the replay is stored."""
        async with self._write() as conn:
            await conn.execute(update(replays).where(replays.c.id == replay_id).values(finished_at=time.time()))

    async def get_replay(self, replay_id: str) -> ReplayRecord:
        """One replay with its new deliveries counted, or NotFound."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(replays).where(replays.c.id == replay_id))).first()
            if row is None:
                raise NotFound("replay", replay_id)
            made = (
                await conn.execute(
                    select(deliveries.c.batch_id, func.count().label("n"))
                    .join(delivery_replays, delivery_replays.c.delivery_id == deliveries.c.id)
                    .where(delivery_replays.c.replay_id == replay_id)
                    .group_by(deliveries.c.batch_id)
                    .order_by(deliveries.c.batch_id)
                )
            ).all()
        m = row._mapping
        return ReplayRecord(
            id=m["id"],
            created_at=m["created_at"],
            ran_by=m["ran_by"],
            filter=m["filter"],
            matched=m["matched"],
            skipped=m["skipped"],
            finished_at=m["finished_at"],
            replayed=sum(int(r.n) for r in made),
            batch_ids=tuple(r.batch_id for r in made),
        )


async def link_replayed(conn: AsyncConnection, batch_id: str, link: ReplayLink) -> None:
    """Link each delivery of the freshly inserted ``batch_id`` to its original (inside its transaction).

    A recipient without an original, or an original left without its delivery, raises: the batch is
    rolled back rather than stored unlinked. Two replays taking one original at once break the unique
    (original, round) and the later one rolls back.
    """
    rows = (
        await conn.execute(select(deliveries.c.id, deliveries.c.to_number).where(deliveries.c.batch_id == batch_id))
    ).all()
    if len(rows) != len(link.originals) or any(r.to_number not in link.originals for r in rows):
        raise ValueError(f"replay batch {batch_id} does not hold exactly the recipients it replays")
    await conn.execute(
        insert(delivery_replays),
        [
            {
                "delivery_id": r.id,
                "original_id": link.originals[r.to_number][0],
                "replay_id": link.replay_id,
                "round": link.originals[r.to_number][1],
            }
            for r in rows
        ],
    )


def _where(d: Any, b: Any, f: ReplayFilter) -> list[ColumnElement[bool]]:
    """The filter over a deliveries alias ``d`` joined to its batch ``b``."""
    # the final rank first: with updated_at it is the index ix_deliveries_status_rank_updated
    where: list[ColumnElement[bool]] = [d.c.status_rank >= st.FINAL_RANK, d.c.status.in_(f.statuses)]
    if f.batch_ids:
        where.append(d.c.batch_id.in_(f.batch_ids))
    if f.error_codes:
        where.append(d.c.error_code.in_(f.error_codes))
    # a final delivery that did not reach its recipient changes no more, so updated_at is when it became final
    if f.since is not None:
        where.append(d.c.updated_at >= f.since)
    if f.until is not None:
        where.append(d.c.updated_at < f.until)
    if f.account is not None:
        where.append(or_(b.c.account == f.account, b.c.account_sid == f.account))
    if f.sender is not None:
        where.append(or_(b.c.sender == f.sender, b.c.messaging_service_sid == f.sender))
    return where


def _candidates(f: ReplayFilter) -> Any:
    d, b = deliveries.alias("d"), batches.alias("b")
    d2, b2 = deliveries.alias("d2"), batches.alias("b2")
    # the batches the filter names, or else those holding a delivery it matches
    matched_batches: Any = (
        list(f.batch_ids)
        if f.batch_ids
        else select(d2.c.batch_id).join(b2, b2.c.id == d2.c.batch_id).where(and_(*_where(d2, b2, f)))
    )
    d3 = deliveries.alias("d3")
    # the recipients reached in the matched batches, once each: one join for the whole search
    reached = (
        select(d3.c.to_number)
        .where(d3.c.batch_id.in_(matched_batches), d3.c.status.in_(st.REACHED))
        .distinct()
        .subquery("reached")
    )
    # a delivery a replay created stands for the delivery it replays: links always name that first one
    own = delivery_replays.alias("own")
    original = func.coalesce(own.c.original_id, d.c.id)
    r, n = delivery_replays.alias("r"), deliveries.alias("n")
    earlier = select(func.count()).select_from(r).where(r.c.original_id == original).scalar_subquery()
    replay_live = (
        select(literal(1))
        .select_from(r.join(n, n.c.id == r.c.delivery_id))
        .where(r.c.original_id == original, n.c.status_rank < st.FINAL_RANK)
        .exists()
    )
    replay_reached = (
        select(literal(1))
        .select_from(r.join(n, n.c.id == r.c.delivery_id))
        .where(r.c.original_id == original, n.c.status.in_(st.REACHED))
        .exists()
    )
    suppressed = (
        select(literal(1))
        .where(suppressions.c.account_sid == b.c.account_sid, suppressions.c.number == d.c.to_number)
        .exists()
    )
    return (
        select(
            d.c.id,
            d.c.batch_id,
            d.c.to_number,
            d.c.variables,
            d.c.status,
            d.c.error_code,
            original.label("original_id"),
            suppressed.label("suppressed"),
            reached.c.to_number.label("reached_number"),
            replay_reached.label("replay_reached"),
            earlier.label("replays"),
            replay_live.label("replay_live"),
        )
        .select_from(
            d.join(b, b.c.id == d.c.batch_id)
            .outerjoin(own, own.c.delivery_id == d.c.id)
            .outerjoin(reached, reached.c.to_number == d.c.to_number)
        )
        .where(and_(*_where(d, b, f)))
        .order_by(d.c.batch_id, d.c.id)
    )
