"""The job functions put the dispatcher's results in arq's terms: a deferral is arq's ``Retry``, nothing else is.

The dispatcher stands in here (it returns what it is told); the job function's part is the
translation: ``Retry(defer=...)`` for a ``Deferred`` (``Throttled`` included), the chunk's payload
rewritten to what it still owes before its ``Retry``, nothing raised for what is done, and the
store or Redis failing mid-job turned into a ``Retry`` after ``worker.unavailable_retry_s``.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from arq.worker import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from notifyq.settings import WorkerSettings
from notifyq.worker import ChunkRun, Deferred, Done, Outcome, Owed, Throttled, WorkerMetrics
from notifyq.worker.jobs import APP_KEY, LET_GO_KEY, send, send_chunk
from notifyq.worker.outcomes import MIN_DEFER_S

CHUNK_ID = "batch-1.0"
TOLERANCE_MS = 250  # the time between the result and the Retry, on a loaded machine


class FakeDispatcher:
    """Returns (or raises) what the test says, and records each call."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[Any, ...]] = []

    async def send(self, *args: Any, booked: Any = None) -> Any:
        self.calls.append(args)
        if booked is not None:
            booked()  # the chunk has booked all it will
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    send_chunk = send


class FakeJobs:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.rewritten: list[tuple[Any, ...]] = []
        self.fail = fail

    async def rewrite_chunk(self, *args: Any, lane: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.rewritten.append((*args, lane))


def context(result: Any, jobs: FakeJobs | None = None, *, job_id: str = "d1") -> dict[str, Any]:
    app = SimpleNamespace(
        dispatcher=FakeDispatcher(result),
        jobs=jobs or FakeJobs(),
        metrics=WorkerMetrics(),
        settings=SimpleNamespace(worker=WorkerSettings(unavailable_retry_s=7.0)),
    )
    return {APP_KEY: app, "job_id": job_id}


def deferrals(ctx: dict[str, Any], job: str) -> float:
    return ctx[APP_KEY].metrics.registry.get_sample_value("notifyq_job_deferrals_total", {"job": job}) or 0.0


def deferred_ms(again: pytest.ExceptionInfo[Retry]) -> int:
    assert again.value.defer_score is not None
    return again.value.defer_score


@pytest.mark.parametrize("kind", [Deferred, Throttled])
async def test_a_deferred_delivery_becomes_arqs_retry_at_its_time(kind: type[Deferred]) -> None:
    ctx = context(kind(time.time() + 5.0, "the sender's next slot"))
    with pytest.raises(Retry) as again:
        await send(ctx, "batch-1", 2)
    assert 5000 - TOLERANCE_MS <= deferred_ms(again) <= 5000
    assert ctx[APP_KEY].dispatcher.calls == [("d1", "batch-1", 2)]
    assert deferrals(ctx, "delivery") == 1


async def test_a_deferral_to_a_time_already_past_comes_back_at_once() -> None:
    ctx = context(Deferred(time.time() - 60.0, "late"))
    with pytest.raises(Retry) as again:
        await send(ctx, "batch-1", 1)
    assert deferred_ms(again) == MIN_DEFER_S * 1000


async def test_a_delivery_done_raises_nothing_and_counts_no_deferral() -> None:
    ctx = context(Done(Outcome.SENT, "queued"))
    await send(ctx, "batch-1", 1)
    assert deferrals(ctx, "delivery") == 0


async def test_a_chunk_that_has_booked_gives_its_own_job_slot_back() -> None:
    ctx = context(ChunkRun([Done(Outcome.SENT, "queued")]), job_id=CHUNK_ID)
    let_go: list[str] = []
    ctx[LET_GO_KEY] = let_go.append
    await send_chunk(ctx, "batch-1", ["d1"], [1])
    assert let_go == [CHUNK_ID]


async def test_a_chunk_that_still_owes_deliveries_is_rewritten_to_them_then_comes_back() -> None:
    owed = Owed(["d3", "d4"], [1, 2], "urgent", time.time() + 2.0, "sender full")
    jobs = FakeJobs()
    ctx = context(ChunkRun([Done(Outcome.SENT, "queued")] * 2, owed), jobs, job_id=CHUNK_ID)
    with pytest.raises(Retry) as again:
        await send_chunk(ctx, "batch-1", ["d1", "d2", "d3", "d4"], [1, 1, 1, 2])
    assert jobs.rewritten == [(CHUNK_ID, "batch-1", ["d3", "d4"], [1, 2], "urgent")]
    assert 2000 - TOLERANCE_MS <= deferred_ms(again) <= 2000
    assert deferrals(ctx, "chunk") == 1


async def test_a_chunk_that_owes_nothing_ends_without_a_rewrite() -> None:
    jobs = FakeJobs()
    ctx = context(ChunkRun([Done(Outcome.SENT, "queued"), Done(Outcome.DEFERRED)]), jobs, job_id=CHUNK_ID)
    await send_chunk(ctx, "batch-1", ["d1", "d2"], [1, 1])
    assert jobs.rewritten == []
    assert deferrals(ctx, "chunk") == 0


async def test_a_whole_chunk_deferred_keeps_its_payload() -> None:
    jobs = FakeJobs()
    ctx = context(Deferred(time.time() + 30.0, "send_at"), jobs, job_id=CHUNK_ID)
    with pytest.raises(Retry) as again:
        await send_chunk(ctx, "batch-1", ["d1"], [1])
    assert 30_000 - TOLERANCE_MS <= deferred_ms(again) <= 30_000
    assert jobs.rewritten == []


@pytest.mark.parametrize(
    "fault",
    [RedisConnectionError("Error 111 connecting"), OperationalError("UPDATE", {}, Exception("database is locked"))],
)
async def test_the_store_or_redis_failing_mid_job_brings_the_job_back_later(fault: BaseException) -> None:
    ctx = context(fault)
    with pytest.raises(Retry) as again:
        await send(ctx, "batch-1", 1)
    assert deferred_ms(again) == 7000
    assert deferrals(ctx, "delivery") == 1


async def test_a_chunk_whose_rewrite_fails_comes_back_later_whole() -> None:
    owed = Owed(["d2"], [1], "bulk", time.time() + 2.0, "sender full")
    ctx = context(ChunkRun([Done(Outcome.SENT)], owed), FakeJobs(fail=RedisConnectionError("reset")), job_id=CHUNK_ID)
    with pytest.raises(Retry) as again:
        await send_chunk(ctx, "batch-1", ["d1", "d2"], [1, 1])
    assert deferred_ms(again) == 7000
    assert deferrals(ctx, "chunk") == 1


async def test_an_error_that_is_not_an_outage_fails_the_job() -> None:
    ctx = context(ValueError("chunk of batch batch-1: 2 deliveries but 1 costs"))
    with pytest.raises(ValueError, match="2 deliveries but 1 costs"):
        await send(ctx, "batch-1", 1)
    assert deferrals(ctx, "delivery") == 0
