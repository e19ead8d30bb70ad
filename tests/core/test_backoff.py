"""Backoff: ceilings, Retry-After, the deadline and attempt limits, Retry-After parsing.

The examples use hand-computed values (base 0.5 s doubling: 0.5, 1, 2, 4, 8, 16, then the 30 s cap); the
properties state the policy (full jitter under the exponential ceiling, Retry-After a floor, the deadline a
bound) rather than re-deriving the formula.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyq.backoff import backoff_delay, next_attempt_at, parse_retry_after


class Highest(random.Random):
    """Always draws the top of the range, to expose the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    """Always draws the bottom of the range."""

    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, base_s=0.5, cap_s=30.0, rng=Highest()) == ceiling
    assert backoff_delay(attempt, base_s=0.5, cap_s=30.0, rng=Lowest()) == 0.0


def test_huge_base_and_attempt_do_not_overflow() -> None:
    assert backoff_delay(10**9, base_s=1e300, cap_s=60.0, rng=Highest()) == 60.0


def test_same_seed_same_delay() -> None:
    delays = {backoff_delay(3, base_s=1.0, cap_s=10.0, rng=random.Random(7)) for _ in range(3)}
    assert len(delays) == 1


def test_default_rng_stays_in_range() -> None:
    for _ in range(200):
        assert 0.0 <= backoff_delay(4, base_s=1.0, cap_s=5.0) <= 5.0


def test_retry_after_is_honoured_even_above_the_cap() -> None:
    assert backoff_delay(1, base_s=1.0, cap_s=30.0, rng=Highest(), retry_after_s=120.0) == 120.0


def test_retry_after_below_the_draw_changes_nothing() -> None:
    assert backoff_delay(5, base_s=1.0, cap_s=30.0, rng=Highest(), retry_after_s=2.0) == 16.0
    assert backoff_delay(5, base_s=1.0, cap_s=30.0, rng=Lowest(), retry_after_s=2.0) == 2.0


def test_zero_base_means_no_wait() -> None:
    assert backoff_delay(3, base_s=0.0, cap_s=30.0, rng=Highest()) == 0.0


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s", "retry_after_s"),
    [
        (0, 1.0, 10.0, None),
        (-1, 1.0, 10.0, None),
        (1, -1.0, 10.0, None),
        (1, 1.0, -1.0, None),
        (1, 1.0, math.nan, None),
        (1, math.inf, 10.0, None),
        (1, 1.0, 10.0, -1.0),
        (1, 1.0, 10.0, math.nan),
        (1, 1.0, 10.0, math.inf),
    ],
)
def test_bad_arguments_are_refused(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None) -> None:
    with pytest.raises(ValueError, match=r"must be|counts from"):
        backoff_delay(attempt, base_s=base_s, cap_s=cap_s, retry_after_s=retry_after_s)


# ---- next_attempt_at ----


def nxt(
    now: float,
    attempt: int,
    *,
    deadline: float | None,
    rng: random.Random | None = None,
    retry_after_s: float | None = None,
) -> float | None:
    """next_attempt_at with the policy these examples share: 5 attempts, 1 s base, 60 s cap."""
    return next_attempt_at(
        now,
        attempt,
        deadline=deadline,
        max_attempts=5,
        base_s=1.0,
        cap_s=60.0,
        rng=rng,
        retry_after_s=retry_after_s,
    )


def test_next_attempt_uses_the_backoff_of_the_attempts_made() -> None:
    assert nxt(1000.0, 1, deadline=None, rng=Highest()) == 1001.0
    assert nxt(1000.0, 3, deadline=None, rng=Highest()) == 1004.0


@pytest.mark.parametrize("attempt", [5, 6, 100])
def test_none_once_attempts_are_used_up(attempt: int) -> None:
    assert nxt(1000.0, attempt, deadline=None, rng=Highest()) is None


def test_a_single_attempt_policy_never_retries() -> None:
    assert next_attempt_at(0.0, 1, deadline=None, max_attempts=1, base_s=1.0, cap_s=1.0) is None


def test_deadline_shrinks_the_jitter_window() -> None:
    assert nxt(1000.0, 4, deadline=1003.0, rng=Highest()) == 1003.0
    assert nxt(1000.0, 4, deadline=1100.0, rng=Highest()) == 1008.0


def test_the_deadline_narrows_the_draw_rather_than_clipping_it() -> None:
    """Retries due near a deadline spread over the time left; they do not pile up on the deadline itself."""
    rng = random.Random(5)
    times = [nxt(1000.0, 4, deadline=1003.0, rng=rng) for _ in range(200)]  # ceiling 8 s, 3 s left
    assert all(t is not None and 1000.0 <= t < 1003.0 for t in times)
    assert max(t for t in times if t is not None) > 1002.7


@pytest.mark.parametrize("deadline", [999.0, 1000.0])
def test_none_when_the_deadline_has_passed(deadline: float) -> None:
    assert nxt(1000.0, 1, deadline=deadline) is None


def test_none_when_retry_after_reaches_past_the_deadline() -> None:
    assert nxt(1000.0, 1, deadline=1030.0, retry_after_s=31.0) is None
    assert nxt(1000.0, 1, deadline=1030.0, retry_after_s=30.0, rng=Lowest()) == 1030.0


def test_retry_after_beyond_the_cap_without_a_deadline() -> None:
    assert nxt(0.0, 1, deadline=None, retry_after_s=3600.0, rng=Lowest()) == 3600.0


# ---- properties ----
# The policy as docs/architecture.md states it (invariant 5): exponential backoff with full jitter, a
# uniform draw from [0, min(cap, base * 2 ** (n - 1))] before retry n; Retry-After honoured when present;
# never past the delivery's deadline. The bounds below are that statement, checked in exact arithmetic.

FLOATS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(),
)
def test_full_jitter_stays_under_the_exponential_ceiling(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base_s=base, cap_s=cap, rng=random.Random(seed))
    assert 0.0 <= delay <= cap
    assert Fraction(delay) <= Fraction(base) * 2 ** (attempt - 1)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (3, 2.0), (6, 16.0), (20, 30.0)])
def test_full_jitter_spreads_over_the_whole_window(attempt: int, ceiling: float) -> None:
    """Not a fixed delay, nor "equal jitter" (half the ceiling plus a draw): draws reach both ends."""
    rng = random.Random(17)
    delays = [backoff_delay(attempt, base_s=0.5, cap_s=30.0, rng=rng) for _ in range(200)]
    assert min(delays) < ceiling * 0.1
    assert max(delays) > ceiling * 0.9


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(),
    retry_after=FLOATS,
)
def test_retry_after_is_a_floor_even_above_the_cap(
    attempt: int, base: float, cap: float, seed: int, retry_after: float
) -> None:
    delay = backoff_delay(attempt, base_s=base, cap_s=cap, rng=random.Random(seed), retry_after_s=retry_after)
    assert delay >= retry_after
    # waiting longer than Twilio asked is only the jitter's doing, and stays under its ceiling
    assert delay == retry_after or delay <= min(cap, Fraction(base) * 2 ** (attempt - 1))


@given(
    now=FLOATS,
    attempt=st.integers(min_value=1, max_value=50),
    max_attempts=st.integers(min_value=1, max_value=20),
    left=st.one_of(st.none(), st.floats(min_value=-100.0, max_value=1e5)),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(),
    retry_after=st.one_of(st.none(), FLOATS),
)
def test_next_attempt_never_past_deadline_nor_after_max_attempts(
    *,
    now: float,
    attempt: int,
    max_attempts: int,
    left: float | None,
    base: float,
    cap: float,
    seed: int,
    retry_after: float | None,
) -> None:
    deadline = None if left is None else now + left
    at = next_attempt_at(
        now,
        attempt,
        deadline=deadline,
        max_attempts=max_attempts,
        base_s=base,
        cap_s=cap,
        rng=random.Random(seed),
        retry_after_s=retry_after,
    )
    if attempt >= max_attempts:
        assert at is None
        return
    if at is None:
        # given up with attempts left: only when no retry can fit before the deadline, never by an unlucky draw
        assert deadline is not None
        assert deadline <= now or (retry_after is not None and now + retry_after > deadline)
        return
    assert at >= now
    if deadline is not None:
        assert at <= deadline
    if retry_after is not None:
        assert at >= now + retry_after or math.isclose(at, now + retry_after)
    else:
        assert at <= now + cap or math.isclose(at, now + cap)


@given(now=FLOATS, left=st.floats(min_value=0.001, max_value=1e5), seed=st.integers())
def test_a_retry_that_fits_before_the_deadline_is_always_given(now: float, left: float, seed: int) -> None:
    deadline = now + left
    if deadline <= now:  # the sum rounded back to now: no time left after all
        return
    at = next_attempt_at(now, 1, deadline=deadline, max_attempts=5, base_s=1.0, cap_s=60.0, rng=random.Random(seed))
    assert at is not None
    assert now <= at <= deadline


# ---- Retry-After ----

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("1e3", None),
        ("nan", None),
        ("soon", None),
        ("9" * 400, None),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),  # IMF-fixdate
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: go now
        ("Wednesday, 21-Oct-15 07:28:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Wed Oct 21 07:29:00 2015", 60.0),  # obsolete asctime form, no zone: UTC
        ("Wed, 21 Oct 2015 09:30:00 +0200", 120.0),
        ("Wed, 32 Oct 2015 07:30:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_takes_a_naive_now_as_utc() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", NOW.replace(tzinfo=None)) == 120.0


def test_parse_retry_after_defaults_to_the_current_time() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    seconds = parse_retry_after(format_datetime(later, usegmt=True))
    assert seconds is not None
    assert 3590.0 <= seconds <= 3600.0


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or (seconds >= 0 and math.isfinite(seconds))


@given(st.integers(min_value=-(10**6), max_value=10**7))
def test_parse_retry_after_reads_http_dates(offset: int) -> None:
    when = NOW + timedelta(seconds=offset)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == max(0.0, float(offset))


@given(st.integers(min_value=0, max_value=10**9))
def test_parse_retry_after_reads_delta_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)
