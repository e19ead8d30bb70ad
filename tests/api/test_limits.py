"""Token rate limits and quotas, on a real Redis: the scripts alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from notifyq.api.limits import TokenLimiter, period_keys
from notifyq.errors import QuotaExceeded
from notifyq.tokens import Principal, TokenLimits

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _principal(**limits: float | None) -> Principal:
    return Principal("0123456789ab", "test", limits=TokenLimits(**limits))  # type: ignore[arg-type]


async def test_a_bucket_lets_its_burst_through_then_says_how_long_to_wait(rdb: Redis) -> None:
    limiter = TokenLimiter(rdb)
    slow = _principal(rate=0.01, burst=3)  # a token each 100 s: none comes back during the test
    assert [await limiter.wait_s(slow) for _ in range(3)] == [None, None, None]
    waits = [await limiter.wait_s(slow) for _ in range(2)]
    assert all(w is not None and 1 <= w <= 100 for w in waits), waits


async def test_a_token_without_a_rate_is_never_limited_and_touches_no_key(rdb: Redis) -> None:
    limiter = TokenLimiter(rdb)
    assert [await limiter.wait_s(_principal()) for _ in range(50)] == [None] * 50
    assert await rdb.dbsize() == 0


async def test_buckets_are_per_token(rdb: Redis) -> None:
    limiter = TokenLimiter(rdb)
    one = _principal(rate=0.01, burst=1)
    other = Principal("ba9876543210", "other", limits=TokenLimits(rate=0.01, burst=1))
    assert await limiter.wait_s(one) is None
    assert await limiter.wait_s(one) is not None
    assert await limiter.wait_s(other) is None


async def test_a_quota_counts_whole_batches_and_refuses_one_that_would_pass_it(rdb: Redis) -> None:
    limiter = TokenLimiter(rdb)
    p = _principal(daily=10, monthly=12)
    assert await limiter.take(p, 6, now=NOW) is not None
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.take(p, 5, now=NOW)
    assert (refused.value.quota, refused.value.limit, refused.value.left, refused.value.asked) == ("daily", 10, 4, 5)
    assert await limiter.take(p, 4, now=NOW) is not None  # the refused batch counted nothing
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.take(p, 1, now=NOW)
    assert (refused.value.quota, refused.value.left) == ("daily", 0)
    tomorrow = NOW.replace(day=8)
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.take(p, 3, now=tomorrow)  # a new day, but the month has 2 left
    assert (refused.value.quota, refused.value.limit, refused.value.left) == ("monthly", 12, 2)
    assert await limiter.take(p, 2, now=tomorrow) is not None


async def test_a_count_given_back_is_free_again_and_counters_expire_after_their_period(rdb: Redis) -> None:
    limiter = TokenLimiter(rdb)
    p = _principal(daily=5)
    now = datetime.now(UTC)  # Redis expires a key whose time has passed at once
    taken = await limiter.take(p, 5, now=now)
    assert taken is not None
    (day_key, day_end), (month_key, _) = period_keys(p.id, now)
    assert taken.keys == (day_key,)  # no monthly quota: no monthly counter
    assert not await rdb.exists(month_key)
    expire_at = now.timestamp() + await rdb.ttl(day_key)
    assert day_end < expire_at <= day_end + 86_400 + 1  # after its day, never long after
    with pytest.raises(QuotaExceeded):
        await limiter.take(p, 1, now=now)
    await limiter.give_back(taken)
    assert await limiter.take(p, 5, now=now) is not None


async def test_a_token_without_quotas_counts_nothing(rdb: Redis) -> None:
    assert await TokenLimiter(rdb).take(_principal(rate=5.0, burst=5), 1_000_000, now=NOW) is None
    assert await rdb.dbsize() == 0
