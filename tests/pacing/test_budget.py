"""The request budget: so many a minute per key, a bounded burst, and nothing booked that was refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from notifyq.pacing import RequestBudget

T0 = 1_700_000_000.0


async def test_an_idle_key_spends_its_burst_then_one_per_interval(rdb: Redis) -> None:
    budget = RequestBudget(rdb, "test")
    assert await budget.take("AC1", 100, per_minute=60, burst=5, now=T0) == 5
    assert await budget.take("AC1", 100, per_minute=60, burst=5, now=T0 + 0.5) == 0
    assert await budget.take("AC1", 100, per_minute=60, burst=5, now=T0 + 1.0) == 1
    assert await budget.take("AC1", 100, per_minute=60, burst=5, now=T0 + 3.5) == 2
    assert await budget.take("AC2", 3, per_minute=60, burst=5, now=T0 + 3.5) == 3  # another key: its own budget


async def test_what_is_not_wanted_is_not_spent(rdb: Redis) -> None:
    budget = RequestBudget(rdb, "test")
    assert await budget.take("AC1", 2, per_minute=60, burst=5, now=T0) == 2
    assert await budget.take("AC1", 10, per_minute=60, burst=5, now=T0) == 3
    assert await budget.take("AC1", 0, per_minute=60, burst=5, now=T0 + 60) == 0
    assert await budget.take("AC1", 10, per_minute=60, burst=5, now=T0 + 60) == 5  # saved up to the burst only


async def test_redis_clock_by_default(rdb: Redis) -> None:
    budget = RequestBudget(rdb, "test")
    assert await budget.take("AC1", 10, per_minute=6, burst=2) == 2
    assert await budget.take("AC1", 10, per_minute=6, burst=2) == 0


@pytest.mark.parametrize(("per_minute", "burst"), [(0.0, 1), (-1.0, 1), (60.0, 0)])
async def test_bad_arguments_are_refused(rdb: Redis, per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"."):
        await RequestBudget(rdb, "test").take("AC1", 1, per_minute=per_minute, burst=burst, now=T0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    asks=st.lists(st.tuples(st.floats(min_value=0, max_value=5), st.integers(min_value=0, max_value=20)), max_size=30),
    per_minute=st.sampled_from([30.0, 60.0, 600.0]),
    burst=st.integers(min_value=1, max_value=10),
)
async def test_no_minute_holds_more_than_the_burst_and_a_minutes_budget(
    rdb: Redis, asks: list[tuple[float, int]], per_minute: float, burst: int
) -> None:
    await rdb.flushdb()
    budget = RequestBudget(rdb, "prop")
    t, granted = T0, []
    for gap, wanted in asks:
        t += gap
        got = await budget.take("AC1", wanted, per_minute=per_minute, burst=burst, now=t)
        assert 0 <= got <= min(wanted, burst)
        granted += [t] * got
    # in any window of length w: at most the burst plus what the rate adds in w
    for i, start in enumerate(granted):
        for w in (1.0, 10.0, 60.0):
            inside = sum(1 for x in granted[i:] if x < start + w)
            assert inside <= burst + w * per_minute / 60 + 1e-9
