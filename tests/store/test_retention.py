"""Retention: only finished batches past the bound go, whole, with their deliveries' events, in chunks."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update

from notifyq import statuses as st
from notifyq.cli.purge import purge
from notifyq.ids import new_ids
from notifyq.store import Purged, Store
from notifyq.store.schema import batches, deliveries, delivery_events, delivery_replays, replays

from .helpers import batch_row, count_rows

BOUND = 1_000.0  # purge what was finished before this time
OLD, NEW = 100.0, 2_000.0  # a time before the bound, and one after it


async def _batch(store: Store, outcomes: list[tuple[str, float]], *, created_at: float = 50.0) -> str:
    """A batch whose deliveries end as ``outcomes`` (status, when it last moved), each with two events."""
    ids = new_ids(len(outcomes))
    row = {**batch_row(created_at=created_at)}
    await store.create_batch(row, [[(d, f"+1415555{i:04d}", None) for i, d in enumerate(ids)]])
    async with store.engine.begin() as conn:
        for delivery_id, (status, at) in zip(ids, outcomes, strict=True):
            rank = st.rank("sms", status)
            assert rank is not None
            final = rank >= st.FINAL_RANK
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status=status, status_rank=rank, updated_at=at, final_at=at if final else None)
            )
            await conn.execute(
                insert(delivery_events),
                [
                    {"delivery_id": delivery_id, "at": at, "kind": kind, "status": status}
                    for kind in ("attempt", "callback")
                ],
            )
    return str(row["id"])


async def _batch_ids(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return set((await conn.scalars(select(batches.c.id))).all())


@pytest.fixture
async def seeded(store: Store) -> dict[str, str]:
    return {
        "old": await _batch(store, [("delivered", OLD), (st.FAILED, OLD), (st.CANCELED, OLD)]),
        "big": await _batch(store, [("delivered", OLD)] * 7),
        "live": await _batch(store, [("delivered", OLD), ("sent", OLD)]),  # one delivery not final
        "recent": await _batch(store, [("delivered", OLD), ("delivered", NEW)]),  # one final after the bound
        "pending": await _batch(store, [(st.PENDING, OLD)]),
        "young": await _batch(store, [("delivered", NEW)], created_at=NEW),
    }


async def test_a_dry_run_counts_what_would_go_and_deletes_nothing(store: Store, seeded: dict[str, str]) -> None:
    assert await purge(store, BOUND, chunk=2, dry_run=True) == Purged(batches=2, deliveries=10, events=20)
    assert await _batch_ids(store) == set(seeded.values())
    assert await count_rows(store, deliveries) == 3 + 7 + 2 + 2 + 1 + 1


async def test_only_finished_batches_past_the_bound_go_whole(store: Store, seeded: dict[str, str]) -> None:
    before = await count_rows(store, delivery_events)
    assert await purge(store, BOUND, chunk=2) == Purged(batches=2, deliveries=10, events=20)
    kept = {seeded[name] for name in ("live", "recent", "pending", "young")}
    assert await _batch_ids(store) == kept
    async with store.engine.connect() as conn:
        left = set((await conn.scalars(select(deliveries.c.batch_id))).all())
        orphans = await conn.scalar(
            select(delivery_events.c.id).where(delivery_events.c.delivery_id.not_in(select(deliveries.c.id))).limit(1)
        )
    assert left == kept  # every delivery of a kept batch is kept, final or not
    assert orphans is None
    assert await count_rows(store, delivery_events) == before - 20
    # nothing more is finished before the bound: a second run deletes nothing
    assert await purge(store, BOUND, chunk=2) == Purged()


async def test_a_batch_finished_later_goes_once_the_bound_passes_it(store: Store, seeded: dict[str, str]) -> None:
    await purge(store, BOUND, chunk=1000)
    assert await purge(store, NEW + 1, chunk=1000) == Purged(batches=2, deliveries=3, events=6)
    assert await _batch_ids(store) == {seeded["live"], seeded["pending"]}


async def test_a_replayed_delivery_goes_with_its_links(store: Store) -> None:
    """A replay links its new delivery to the original; purging either batch takes the link with it."""
    original = await _batch(store, [(st.FAILED, OLD)])
    again = await _batch(store, [("delivered", OLD)])
    async with store.engine.begin() as conn:
        (first,) = (await conn.scalars(select(deliveries.c.id).where(deliveries.c.batch_id == original))).all()
        (second,) = (await conn.scalars(select(deliveries.c.id).where(deliveries.c.batch_id == again))).all()
        await conn.execute(
            insert(replays),
            [{"id": "r" * 26, "created_at": OLD, "ran_by": "cli:test", "filter": {}, "matched": 1, "skipped": {}}],
        )
        await conn.execute(
            insert(delivery_replays), [{"delivery_id": second, "original_id": first, "replay_id": "r" * 26, "round": 0}]
        )
    done = await purge(store, BOUND, chunk=10)
    assert (done.batches, done.deliveries) == (2, 2)
    assert await _batch_ids(store) == set()
    assert await count_rows(store, delivery_replays) == 0
