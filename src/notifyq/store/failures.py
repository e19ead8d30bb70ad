"""What failed and why: failed and undelivered deliveries grouped by Twilio error code, with a few examples.

Two statements whatever the number of failures. One GROUP BY over (error code, batch) counts each code's
deliveries and batches and keeps each code's largest batches; one window over the same rows keeps each
code's latest few deliveries as examples. Both are bounded by the number of codes, never by the number of
deliveries, and run alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.store.engine import Database
from notifyq.store.records import FailureExample, FailureGroup
from notifyq.store.schema import batches, deliveries


class FailureReports(Database):
    """Failed and undelivered deliveries, grouped by error code."""

    async def failures_by_code(
        self,
        *,
        batch_id: str | None = None,
        since: float | None = None,
        account: str | None = None,
        error_codes: Sequence[int] = (),
        examples: int = 3,
        batches_per_code: int = 5,
    ) -> list[FailureGroup]:
        """The failures matching every filter given, one group per error code (None: no code), most first.

        ``since`` compares with the time the delivery became final; ``account`` is a batch's account name
        or SID. An unknown batch or account raises NotFound. Each group holds up to ``examples`` of its
        latest deliveries and its ``batches_per_code`` batches with the most of them.
        """
        where = _filters(batch_id, since, account, error_codes)
        async with self.engine.connect() as conn:
            if batch_id is not None and await conn.scalar(select(exists().where(batches.c.id == batch_id))) is not True:
                raise NotFound("batch", batch_id)
            if account is not None:
                known = or_(batches.c.account == account, batches.c.account_sid == account)
                if await conn.scalar(select(exists().where(known))) is not True:
                    raise NotFound("account", account)
            per_batch = (await conn.execute(_per_batch(where, batches_per_code))).all()
            latest = (await conn.execute(_latest(where, examples))).all() if examples > 0 else []
        groups: dict[int | None, dict[str, Any]] = {}
        for row in per_batch:
            group = groups.setdefault(
                row.error_code,
                {"count": int(row.code_total), "batch_count": int(row.code_batches), "batch_ids": [], "examples": []},
            )
            group["batch_ids"].append(row.batch_id)
        for row in latest:
            groups[row.error_code]["examples"].append(
                FailureExample(row.id, row.batch_id, row.to_number, row.status, row.error_message, row.updated_at)
            )
        found = [
            FailureGroup(
                error_code=code,
                count=g["count"],
                batch_count=g["batch_count"],
                batch_ids=tuple(g["batch_ids"]),
                examples=tuple(g["examples"]),
            )
            for code, g in groups.items()
        ]
        # most first; among equals by code, deliveries without one last
        return sorted(found, key=lambda g: (-g.count, g.error_code is None, g.error_code or 0))


def _filters(
    batch_id: str | None, since: float | None, account: str | None, error_codes: Sequence[int]
) -> list[ColumnElement[bool]]:
    # the final rank first: with updated_at it is the index ix_deliveries_status_rank_updated
    where: list[ColumnElement[bool]] = [
        deliveries.c.status_rank == st.FINAL_RANK,
        deliveries.c.status.in_(st.FAILURES),
    ]
    if since is not None:
        # a final delivery's row changes no more (only delivered → read, not a failure), so its updated_at
        # is when it failed
        where.append(deliveries.c.updated_at >= since)
    if batch_id is not None:
        where.append(deliveries.c.batch_id == batch_id)
    if account is not None:
        where.append(
            select(batches.c.id)
            .where(
                batches.c.id == deliveries.c.batch_id,
                or_(batches.c.account == account, batches.c.account_sid == account),
            )
            .exists()
        )
    if error_codes:
        where.append(deliveries.c.error_code.in_(list(error_codes)))
    return where


def _per_batch(where: list[ColumnElement[bool]], keep: int) -> Any:
    """Per (code, batch): its count, its code's total and number of batches, and its place among them."""
    n = func.count()
    by_code = (deliveries.c.error_code,)
    grouped = (
        select(
            deliveries.c.error_code,
            deliveries.c.batch_id,
            func.sum(n).over(partition_by=by_code).label("code_total"),
            func.count().over(partition_by=by_code).label("code_batches"),
            func.row_number().over(partition_by=by_code, order_by=(n.desc(), deliveries.c.batch_id)).label("place"),
        )
        .where(and_(*where))
        .group_by(deliveries.c.error_code, deliveries.c.batch_id)
        .subquery()
    )
    return select(grouped).where(grouped.c.place <= keep).order_by(grouped.c.error_code, grouped.c.place)


def _latest(where: list[ColumnElement[bool]], keep: int) -> Any:
    """Each code's ``keep`` latest deliveries."""
    ranked = (
        select(
            deliveries.c.id,
            deliveries.c.batch_id,
            deliveries.c.to_number,
            deliveries.c.status,
            deliveries.c.error_code,
            deliveries.c.error_message,
            deliveries.c.updated_at,
            func.row_number()
            .over(partition_by=(deliveries.c.error_code,), order_by=(deliveries.c.updated_at.desc(), deliveries.c.id))
            .label("place"),
        )
        .where(and_(*where))
        .subquery()
    )
    return select(ranked).where(ranked.c.place <= keep).order_by(ranked.c.error_code, ranked.c.place)
