"""Replays across batches: every filter, each safety default, idempotency per original delivery, the record.

Batches are submitted through the producer (so they keep the request a replay submits again) without
jobs, and their deliveries are then given outcomes directly in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from helpers import SENDER, sms_batch
from notifyq import statuses as st
from notifyq.errors import ConfirmationRequired, NotFound, ValidationFailed
from notifyq.ids import new_ids
from notifyq.producer import Producer
from notifyq.queue.jobs import JobQueue
from notifyq.replay import Replayer, ReplayRequest
from notifyq.settings import Settings
from notifyq.store import ReplayFilter, ReplayLink, Store
from notifyq.store.schema import deliveries, delivery_replays

from .helpers import ACCOUNT, batch_row

OTHER_ACCOUNT = "AC" + "7" * 32
OTHER_SENDER = "+15005550007"
Outcome = tuple[str, int | None, float]  # status, error code, time it became final


def _settings(tmp_path: Path, database_url: str, redis_url: str, *, confirm_above: int = 100) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        twilio={
            "accounts": {
                "main": {"account_sid": ACCOUNT, "auth_token": "main-token"},
                "other": {"account_sid": OTHER_ACCOUNT, "auth_token": "other-token"},
            },
            "default_account": "main",
        },
        replay={"confirm_above": confirm_above, "sample": 3},
    )


@pytest.fixture
async def producer(tmp_path: Path, database_url: str, redis_url: str, store: Store) -> Producer:
    return Producer(_settings(tmp_path, database_url, redis_url), store, JobQueue(Redis.from_url(redis_url)))


def _request(f: ReplayFilter, **options: Any) -> ReplayRequest:
    return ReplayRequest(f, "test:operator", **options)


async def _replay(producer: Producer, f: ReplayFilter, **options: Any) -> dict[str, Any]:
    return await Replayer(producer).replay(_request(f, **options), enqueue="none")


async def _seed(
    producer: Producer, outcomes: list[Outcome], *, account: str = "main", sender: str = SENDER
) -> list[str]:
    """A batch with one delivery per outcome (numbers +1415555200x); its delivery ids, in order."""
    numbers = [{"to": f"+1415555{2000 + i:04d}", "vars": {"name": "n", "code": str(i)}} for i in range(len(outcomes))]
    submitted = await producer.submit(sms_batch(numbers, account=account, **{"from": sender}), enqueue="none")
    rows = await producer.store.list_deliveries(submitted.batch.id, limit=1000)
    ids = [r.id for r in sorted(rows, key=lambda r: r.seq)]
    await _set(producer.store, ids, outcomes)
    return ids


async def _set(store: Store, ids: list[str], outcomes: list[Outcome]) -> None:
    async with store.engine.begin() as conn:
        for delivery_id, (status, code, at) in zip(ids, outcomes, strict=True):
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status=status, status_rank=st.rank("sms", status), error_code=code, updated_at=at)
            )


async def _matched(store: Store, f: ReplayFilter) -> set[str]:
    return {c.id async for c in store.replay_candidates(f)}


@dataclass(frozen=True)
class World:
    first: list[str]  # main account, SENDER
    second: list[str]  # main account, SENDER
    other: list[str]  # other account, OTHER_SENDER


FIRST: list[Outcome] = [
    (st.UNDELIVERED, 30003, 100.0),
    (st.FAILED, 30008, 200.0),
    (st.EXPIRED, None, 300.0),
    ("delivered", None, 120.0),
    (st.PENDING, None, 0.0),
]
SECOND: list[Outcome] = [(st.UNDELIVERED, 30003, 400.0), (st.UNDELIVERED, 30001, 500.0)]
OTHER: list[Outcome] = [(st.UNDELIVERED, 30003, 600.0)]


@pytest.fixture
async def world(producer: Producer) -> World:
    return World(
        first=await _seed(producer, FIRST),
        second=await _seed(producer, SECOND),
        other=await _seed(producer, OTHER, account="other", sender=OTHER_SENDER),
    )


# -- the filters: each one narrows what a replay matches


async def test_the_default_filter_matches_failed_and_undelivered_anywhere(store: Store, world: World) -> None:
    assert await _matched(store, ReplayFilter()) == {*world.first[:2], *world.second, *world.other}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"batch_ids": "first"}, lambda w: w.first[:2]),
        ({"batch_ids": "first+other"}, lambda w: [*w.first[:2], *w.other]),
        ({"statuses": (st.EXPIRED,)}, lambda w: [w.first[2]]),
        ({"statuses": (st.UNDELIVERED,)}, lambda w: [w.first[0], *w.second, *w.other]),
        ({"error_codes": (30003,)}, lambda w: [w.first[0], w.second[0], *w.other]),
        ({"error_codes": (30001, 30008)}, lambda w: [w.first[1], w.second[1]]),
        ({"account": "other"}, lambda w: w.other),
        ({"account": OTHER_ACCOUNT}, lambda w: w.other),
        ({"account": "main"}, lambda w: [*w.first[:2], *w.second]),
        ({"sender": OTHER_SENDER}, lambda w: w.other),
        ({"sender": SENDER}, lambda w: [*w.first[:2], *w.second]),
        ({"since": 400.0}, lambda w: [*w.second, *w.other]),
        ({"until": 400.0}, lambda w: w.first[:2]),
        ({"since": 200.0, "until": 500.0}, lambda w: [w.first[1], w.second[0]]),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
async def test_each_filter_narrows_the_match(store: Store, world: World, given: dict[str, Any], expected: Any) -> None:
    named = {"first": world.first[0], "other": world.other[0]}
    given = dict(given)
    if "batch_ids" in given:
        rows = [await store.get_delivery(named[name]) for name in given["batch_ids"].split("+")]
        given["batch_ids"] = tuple(r.batch_id for r in rows)
    assert await _matched(store, ReplayFilter(**given)) == set(expected(world))


async def test_a_batch_that_is_not_there_is_not_found(store: Store, producer: Producer) -> None:
    with pytest.raises(NotFound):
        await _replay(producer, ReplayFilter(batch_ids=(new_ids(1)[0],)), dry_run=True)
    with pytest.raises(NotFound):
        await _replay(producer, ReplayFilter(batch_ids=("../x",)), dry_run=True)


@pytest.mark.parametrize(
    "f",
    [
        ReplayFilter(statuses=("delivered",)),
        ReplayFilter(statuses=("read",)),
        ReplayFilter(statuses=(st.SUPPRESSED,)),
        ReplayFilter(statuses=(st.PENDING,)),
        ReplayFilter(statuses=()),
        ReplayFilter(error_codes=(0,)),
        ReplayFilter(since=5.0, until=5.0),
    ],
)
async def test_a_filter_that_could_send_to_the_wrong_people_is_refused(producer: Producer, f: ReplayFilter) -> None:
    with pytest.raises(ValidationFailed):
        await _replay(producer, f, dry_run=True)


# -- the safety defaults


async def test_a_dry_run_counts_by_code_masks_its_sample_and_stores_nothing(producer: Producer, world: World) -> None:
    answer = await _replay(producer, ReplayFilter(), dry_run=True)
    assert (answer["id"], answer["matched"], answer["replayable"], answer["replayed"]) == (None, 5, 5, 0), answer
    assert [(g["error_code"], g["count"]) for g in answer["by_error_code"]] == [(30003, 3), (30001, 1), (30008, 1)]
    assert answer["by_error_code"][0]["meaning"].startswith("unreachable handset")
    assert len(answer["sample"]) == 3
    assert all(s["to"].startswith("+1•") and "555" not in s["to"] for s in answer["sample"])
    async with producer.store.engine.connect() as conn:
        assert (await conn.execute(select(delivery_replays))).first() is None


async def test_a_suppressed_recipient_is_never_replayed(producer: Producer, world: World) -> None:
    await producer.store.suppress(ACCOUNT, "+14155552000", source="STOP")
    await producer.store.suppress(OTHER_ACCOUNT, "+14155552001", source="STOP")  # another account's list: no matter
    answer = await _replay(producer, ReplayFilter(batch_ids=(await _batch_of(producer, world.first[0]),)))
    assert answer["skipped"] == {"suppressed": 1}
    assert await _originals(producer) == {world.first[1]}


async def test_a_recipient_reached_in_a_matched_batch_is_never_replayed(producer: Producer, world: World) -> None:
    # +14155552000 failed in `first` and `second`... and was delivered in a third batch
    third = await _seed(producer, [("delivered", None, 700.0)])
    first, third_batch = await _batch_of(producer, world.first[0]), await _batch_of(producer, third[0])
    alone = await _replay(producer, ReplayFilter(batch_ids=(first,)), dry_run=True)
    assert alone["skipped"] == {}  # the third batch is not matched: it does not count
    answer = await _replay(producer, ReplayFilter(batch_ids=(first, third_batch)))
    assert answer["skipped"] == {"reached": 1}
    assert await _originals(producer) == {world.first[1]}


async def test_with_no_batch_named_the_batches_of_the_matches_count(producer: Producer) -> None:
    reached_here = await _seed(producer, [(st.UNDELIVERED, 30003, 1.0), ("delivered", None, 1.0)])
    failed_there = await _seed(producer, [("delivered", None, 1.0), (st.UNDELIVERED, 30003, 1.0)])
    # +14155552001 was reached in the first batch, which holds a match (its +14155552000), and +14155552000 in
    # the second, which holds a match too: neither is sent again
    answer = await _replay(producer, ReplayFilter(), dry_run=True)
    assert (answer["matched"], answer["skipped"]) == (2, {"reached": 2})
    only_there = await _replay(producer, ReplayFilter(batch_ids=(await _batch_of(producer, failed_there[0]),)))
    assert (only_there["replayed"], await _originals(producer)) == (1, {failed_there[1]})
    assert reached_here[0] not in await _originals(producer)


async def test_a_permanent_error_replays_only_when_its_code_is_named(producer: Producer) -> None:
    ids = await _seed(producer, [(st.FAILED, 21211, 1.0), (st.FAILED, 21614, 1.0), (st.FAILED, 21610, 1.0)])
    by_default = await _replay(producer, ReplayFilter(), dry_run=True)
    assert (by_default["replayable"], by_default["skipped"]) == (0, {"permanent_error": 3})
    named = await _replay(producer, ReplayFilter(error_codes=(21211,)))
    assert (named["matched"], named["replayed"]) == (1, 1)
    assert await _originals(producer) == {ids[0]}


async def test_a_batch_without_its_request_is_not_replayable(producer: Producer) -> None:
    ids = new_ids(1)
    await producer.store.create_batch(batch_row(), [[(ids[0], "+14155552000", None)]])
    await _set(producer.store, ids, [(st.FAILED, 30003, 1.0)])
    answer = await _replay(producer, ReplayFilter())
    assert (answer["matched"], answer["skipped"], answer["batch_ids"]) == (1, {"not_replayable": 1}, [])


# -- idempotent per original delivery


async def test_an_overlapping_filter_does_not_replay_a_delivery_twice(producer: Producer, world: World) -> None:
    first = await _replay(producer, ReplayFilter(error_codes=(30003,)))
    assert (first["replayed"], len(first["batch_ids"])) == (3, 3)  # one new batch per original batch
    overlapping = await _replay(producer, ReplayFilter())
    assert overlapping["skipped"] == {"already_replayed": 3}
    assert overlapping["replayed"] == 2
    again = await _replay(producer, ReplayFilter(), dry_run=True)
    assert (again["replayable"], again["skipped"]) == (0, {"already_replayed": 5})


async def test_again_waits_for_the_last_replay_then_sends_once_more(producer: Producer, world: World) -> None:
    f = ReplayFilter(account="other")
    await _replay(producer, f)
    (new,) = await _new_deliveries(producer)
    live = await _replay(producer, f, again=True, dry_run=True)
    assert live["skipped"] == {"replay_in_flight": 1}
    await _set(producer.store, [new], [(st.UNDELIVERED, 30003, 900.0)])
    # the replay's own delivery failed too: it stands for the original, replayed once already
    unasked = await _replay(producer, f, dry_run=True)
    assert (unasked["matched"], unasked["skipped"]) == (2, {"already_replayed": 2})
    again = await _replay(producer, f, again=True)
    assert (again["replayed"], again["skipped"]) == (1, {"same_original": 1})
    async with producer.store.engine.connect() as conn:
        rounds = sorted((r.original_id, r.round) for r in await conn.execute(select(delivery_replays)))
    assert rounds == [(world.other[0], 0), (world.other[0], 1)]


async def test_again_never_sends_to_a_recipient_a_replay_reached(producer: Producer, world: World) -> None:
    f = ReplayFilter(batch_ids=(await _batch_of(producer, world.other[0]),))
    await _replay(producer, f)
    (new,) = await _new_deliveries(producer)
    await _set(producer.store, [new], [("delivered", None, 900.0)])
    assert (await _replay(producer, f, again=True))["skipped"] == {"reached": 1}


async def test_two_replays_cannot_both_take_one_delivery(producer: Producer, world: World) -> None:
    original = world.other[0]
    await _replay(producer, ReplayFilter(batch_ids=(await _batch_of(producer, original),)))
    replay_id = (await _new_links(producer))[0]["replay_id"]
    ids = new_ids(1)
    with pytest.raises(IntegrityError):  # a second link in round 0, as a racing replay would write
        await producer.store.create_batch(
            batch_row(),
            [[(ids[0], "+14155552000", None)]],
            replay=ReplayLink(replay_id, {"+14155552000": (original, 0)}),
        )
    assert len(await _new_links(producer)) == 1


# -- confirmation and the record


async def test_a_replay_over_the_threshold_needs_confirming(
    tmp_path: Path, database_url: str, redis_url: str, store: Store
) -> None:
    settings = _settings(tmp_path, database_url, redis_url, confirm_above=1)
    producer = Producer(settings, store, JobQueue(Redis.from_url(redis_url)))
    await _seed(producer, [(st.UNDELIVERED, 30003, 1.0), (st.UNDELIVERED, 30003, 2.0)])
    dry = await _replay(producer, ReplayFilter(), dry_run=True)
    assert dry["needs_confirmation"] is True
    with pytest.raises(ConfirmationRequired) as info:
        await _replay(producer, ReplayFilter())
    assert (info.value.recipients, info.value.threshold) == (2, 1)
    assert await _new_links(producer) == []
    assert (await _replay(producer, ReplayFilter(), confirmed=True))["replayed"] == 2


async def test_each_replay_is_recorded_with_who_when_the_filter_and_its_links(producer: Producer, world: World) -> None:
    f = ReplayFilter(error_codes=(30003,), account="main", since=50.0)
    answer = await _replay(producer, f)
    record = await Replayer(producer).record(answer["id"])
    assert record["ran_by"] == "test:operator"
    assert record["filter"] == f.as_dict() | {"again": False}
    assert record["filter"]["since"] == "1970-01-01T00:00:50+00:00"
    assert (record["matched"], record["replayed"], record["finished"]) == (2, 2, True)
    assert record["batch_ids"] == sorted(answer["batch_ids"])
    links = await _new_links(producer)
    assert {link["original_id"] for link in links} == {world.first[0], world.second[0]}
    for link in links:  # the new delivery goes to the same recipient, in a batch that says what it replays
        new, old = (
            await producer.store.get_delivery(link["delivery_id"]),
            await producer.store.get_delivery(link["original_id"]),
        )
        assert (new.to_number, new.variables, new.status) == (old.to_number, old.variables, st.PENDING)
        batch = await producer.store.get_batch(new.batch_id)
        assert batch.meta == {"replay_of": old.batch_id, "replay_id": answer["id"]}
        assert batch.sender == SENDER


async def test_a_replay_not_there_is_not_found(producer: Producer) -> None:
    with pytest.raises(NotFound):
        await Replayer(producer).record(new_ids(1)[0])


async def _batch_of(producer: Producer, delivery_id: str) -> str:
    return (await producer.store.get_delivery(delivery_id)).batch_id


async def _new_links(producer: Producer) -> list[dict[str, Any]]:
    async with producer.store.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(delivery_replays))]


async def _originals(producer: Producer) -> set[str]:
    return {link["original_id"] for link in await _new_links(producer)}


async def _new_deliveries(producer: Producer) -> list[str]:
    return [link["delivery_id"] for link in await _new_links(producer)]
