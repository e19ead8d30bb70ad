"""What failed and why: failed and undelivered deliveries grouped by error code, filtered, with bounded examples."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import update

from notifyq import statuses as st
from notifyq.errors import NotFound
from notifyq.ids import new_ids
from notifyq.store import FailureGroup, Store
from notifyq.store.schema import deliveries

from .helpers import ACCOUNT, batch_row

OTHER_ACCOUNT = "AC" + "7" * 32
Outcome = tuple[str, int | None, float]  # status, error code, time it became final


@dataclass(frozen=True)
class Seeded:
    """Three batches (two on the main account, one on another) and what each delivery became."""

    first: str  # main account
    second: str  # main account
    other: str  # the other account
    ids: dict[str, list[str]]  # batch id -> delivery ids, in seeding order


# what each batch's deliveries end as
FIRST = [
    (st.UNDELIVERED, 30003, 100.0),
    (st.UNDELIVERED, 30003, 200.0),
    (st.UNDELIVERED, 30003, 300.0),
    (st.FAILED, 21211, 150.0),
    (st.FAILED, None, 250.0),  # no answer to any attempt: no Twilio code
    ("delivered", None, 120.0),
    (st.EXPIRED, None, 130.0),
    (st.CANCELED, None, 140.0),
    (st.PENDING, None, 0.0),
]
SECOND = [
    (st.UNDELIVERED, 30003, 400.0),
    (st.FAILED, 21211, 450.0),
    (st.FAILED, 21211, 460.0),
    (st.UNDELIVERED, 30007, 500.0),
]
OTHER = [
    (st.FAILED, 21211, 600.0),
    (st.UNDELIVERED, 30005, 50.0),
    (st.UNDELIVERED, 99999, 700.0),  # a code the classification table does not know
]


async def _batch(
    store: Store, account: str, account_sid: str, outcomes: list[tuple[str, int | None, float]]
) -> list[str]:
    ids = new_ids(len(outcomes))
    batch = {**batch_row(), "account": account, "account_sid": account_sid}
    numbers = [f"+1415555{i:04d}" for i in range(len(outcomes))]
    await store.create_batch(batch, [[(d, n, None) for d, n in zip(ids, numbers, strict=True)]])
    async with store.engine.begin() as conn:
        for delivery_id, (status, code, at) in zip(ids, outcomes, strict=True):
            rank = st.rank("sms", status)
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    status=status,
                    status_rank=rank,
                    error_code=code,
                    error_message=None if code is None else f"error {code}",
                    updated_at=at,
                    final_at=at if rank is not None and rank >= st.FINAL_RANK else None,
                )
            )
    return ids


@pytest.fixture
async def seeded(store: Store) -> Seeded:
    first = await _batch(store, "main", ACCOUNT, FIRST)
    second = await _batch(store, "main", ACCOUNT, SECOND)
    other = await _batch(store, "other", OTHER_ACCOUNT, OTHER)
    batch_of = {ids[0]: (await store.get_delivery(ids[0])).batch_id for ids in (first, second, other)}
    return Seeded(
        batch_of[first[0]],
        batch_of[second[0]],
        batch_of[other[0]],
        {batch_of[first[0]]: first, batch_of[second[0]]: second, batch_of[other[0]]: other},
    )


def _counts(groups: list[FailureGroup]) -> list[tuple[int | None, int]]:
    return [(g.error_code, g.count) for g in groups]


async def test_failed_and_undelivered_are_grouped_by_code_most_first(store: Store, seeded: Seeded) -> None:
    groups = await store.failures_by_code()
    # delivered, expired, canceled and pending are not failures; a tie goes by code, no code last
    assert _counts(groups) == [(21211, 4), (30003, 4), (30005, 1), (30007, 1), (99999, 1), (None, 1)]
    by_code = {g.error_code: g for g in groups}
    assert by_code[21211].batch_count == 3
    # the batch with the most first, then by id
    assert by_code[21211].batch_ids == (seeded.second, *sorted([seeded.first, seeded.other]))
    assert by_code[30003].batch_ids == (seeded.first, seeded.second)
    assert by_code[None].batch_ids == (seeded.first,)
    assert all(e.status in st.FAILURES for g in groups for e in g.examples)


async def test_examples_are_each_codes_latest_and_bounded(store: Store, seeded: Seeded) -> None:
    groups = {g.error_code: g for g in await store.failures_by_code(examples=2)}
    first, second = seeded.ids[seeded.first], seeded.ids[seeded.second]
    latest = groups[30003].examples
    assert [e.delivery_id for e in latest] == [second[0], first[2]]  # at 400, then at 300
    assert [e.at for e in latest] == [400.0, 300.0]
    assert latest[1].to_number == "+14155550002"
    assert latest[1].batch_id == seeded.first
    assert latest[1].error_message == "error 30003"
    assert all(len(g.examples) == min(2, g.count) for g in groups.values())
    none = await store.failures_by_code(examples=0)
    assert all(g.examples == () for g in none)
    assert _counts(none) == _counts(list(groups.values()))


async def test_batch_ids_are_bounded_and_their_number_kept(store: Store, seeded: Seeded) -> None:
    groups = {g.error_code: g for g in await store.failures_by_code(batches_per_code=1)}
    assert groups[21211].batch_ids == (seeded.second,)
    assert (groups[21211].batch_count, groups[21211].count) == (3, 4)


async def test_a_batch_filter_keeps_that_batchs_failures(store: Store, seeded: Seeded) -> None:
    groups = await store.failures_by_code(batch_id=seeded.second)
    assert _counts(groups) == [(21211, 2), (30003, 1), (30007, 1)]
    assert {b for g in groups for b in g.batch_ids} == {seeded.second}


async def test_since_keeps_what_became_final_from_then_on(store: Store, seeded: Seeded) -> None:
    assert _counts(await store.failures_by_code(since=300.0)) == [
        (21211, 3),  # 450, 460, 600 (150 is earlier)
        (30003, 2),  # 300 itself and 400
        (30007, 1),
        (99999, 1),
    ]
    assert await store.failures_by_code(since=701.0) == []


async def test_an_account_is_matched_by_name_or_sid(store: Store, seeded: Seeded) -> None:
    by_name = await store.failures_by_code(account="other")
    assert _counts(by_name) == [(21211, 1), (30005, 1), (99999, 1)]
    assert await store.failures_by_code(account=OTHER_ACCOUNT) == by_name
    main = await store.failures_by_code(account=ACCOUNT)
    assert _counts(main) == [(30003, 4), (21211, 3), (30007, 1), (None, 1)]
    assert await store.failures_by_code(account="main") == main


async def test_error_codes_keep_only_those(store: Store, seeded: Seeded) -> None:
    assert _counts(await store.failures_by_code(error_codes=[30005, 30007, 12345])) == [(30005, 1), (30007, 1)]


async def test_filters_combine(store: Store, seeded: Seeded) -> None:
    groups = await store.failures_by_code(account="main", since=250.0, error_codes=[21211, 30003])
    assert _counts(groups) == [(21211, 2), (30003, 2)]  # 450, 460; 300, 400
    assert await store.failures_by_code(batch_id=seeded.first, account="other") == []


async def test_an_unknown_batch_or_account_is_not_found(store: Store, seeded: Seeded) -> None:
    with pytest.raises(NotFound, match="batch"):
        await store.failures_by_code(batch_id=new_ids(1)[0])
    with pytest.raises(NotFound, match="account"):
        await store.failures_by_code(account="nobody")


async def test_an_empty_store_has_no_failures(store: Store) -> None:
    assert await store.failures_by_code() == []
