"""Deliveries read by id, by batch and by status, and the history kept for each."""

from __future__ import annotations

import pytest

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.ids import new_ids
from notifyq.store import Store

from .helpers import ACCOUNT, create_deliveries

NUMBERS = [f"+1415555{i:04d}" for i in range(5)]


async def test_deliveries_by_id(store: Store) -> None:
    ids = await create_deliveries(store, NUMBERS[:2], variables={"name": "Ann"})
    row = await store.get_delivery(ids[1])
    assert (row.id, row.seq, row.to_number, row.variables, row.status) == (
        ids[1],
        1,
        NUMBERS[1],
        {"name": "Ann"},
        "pending",
    )
    assert sorted(d.id for d in await store.get_deliveries([ids[0], new_ids(1)[0], ids[1]])) == sorted(ids)
    assert await store.get_deliveries([]) == []
    with pytest.raises(NotFound):
        await store.get_delivery(new_ids(1)[0])


async def test_a_batchs_deliveries_are_paged_by_id_and_filtered_by_status(store: Store) -> None:
    ids = sorted(await create_deliveries(store, NUMBERS))
    batch_id = (await store.get_delivery(ids[0])).batch_id
    await create_deliveries(store, NUMBERS[:1])  # another batch's delivery is never listed
    first = await store.list_deliveries(batch_id, limit=2)
    rest = await store.list_deliveries(batch_id, after=first[-1].id, limit=10)
    assert [d.id for d in first + rest] == ids
    await store.flush_send_writes(claim_ids=[(ids[3], ACCOUNT)], accepted=[], now=1.0)
    assert [d.id for d in await store.list_deliveries(batch_id, status=st.DISPATCHING)] == [ids[3]]


async def test_unsettled_deliveries_come_in_pages_of_the_statuses_and_batches_asked_for(store: Store) -> None:
    ids = await create_deliveries(store, NUMBERS)
    other = await create_deliveries(store, NUMBERS[:2])
    batch_id = (await store.get_delivery(ids[0])).batch_id
    await store.flush_send_writes(claim_ids=[(ids[0], ACCOUNT)], accepted=[], now=1.0)
    pages = [p async for p in store.iter_unsettled([st.PENDING], page=2, batch_ids=[batch_id])]
    assert [len(p) for p in pages] == [2, 2]
    assert sorted(d for p in pages for d, *_ in p) == sorted(ids[1:])
    assert all(b == batch_id and variables is None for p in pages for _, b, _, variables in p)
    every = [d async for c in store.iter_unsettled([st.PENDING, st.DISPATCHING]) for d, *_ in c]
    assert sorted(every) == sorted(ids + other)


async def test_a_deliverys_history_is_kept_oldest_first_and_counted_by_kind(store: Store) -> None:
    [did] = await create_deliveries(store, NUMBERS[:1])
    for at, kind in ((1.0, "lookup"), (2.0, "state"), (3.0, "lookup"), (4.0, "lookup")):
        await store.add_event({"delivery_id": did, "at": at, "kind": kind, "reason": f"at {at}"})
    assert [(e["at"], e["kind"], e["reason"]) for e in await store.events(did)] == [
        (1.0, "lookup", "at 1.0"), (2.0, "state", "at 2.0"), (3.0, "lookup", "at 3.0"), (4.0, "lookup", "at 4.0"),
    ]  # fmt: skip
    assert await store.count_events(did, kind="lookup", since=0.0) == 3
    assert await store.count_events(did, kind="lookup", since=3.0) == 2
    assert await store.count_events(did, kind="callback", since=0.0) == 0
