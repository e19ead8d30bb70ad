"""When to try a delivery again: exponential backoff with full jitter, bounded by attempts and deadline.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many deliveries
that failed together, so a burst of 429s or a Twilio blip does not come back as a synchronised burst.

Decisions:

* ``Retry-After`` wins over ``cap_s``. The cap is our own bound on waiting; Retry-After is the server
  saying when it will accept the request, and coming back earlier only earns another 429. The delay is
  ``max(retry_after, jittered)``. What bounds a long Retry-After is the delivery's deadline.
* The deadline shrinks the jitter window rather than being checked after the draw, so a delivery is
  given up as ``expired`` only when no retry can fit before its deadline (no time left, or a Retry-After
  that reaches past it), never because of an unlucky draw.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

# 2**64 times any sane base is past any cap, and a larger exponent would overflow a float
_MAX_EXPONENT: Final = 64
_DELTA_SECONDS: Final = re.compile(r"\d+(?:\.\d+)?")
_DEFAULT_RNG: Final = random.Random()


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    rng: random.Random | None = None,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    A uniform draw from ``[0, min(cap_s, base_s * 2 ** (attempt - 1))]``, raised to ``retry_after_s``
    when the server asked for a longer wait (even beyond ``cap_s``).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not (math.isfinite(base_s) and base_s >= 0 and math.isfinite(cap_s) and cap_s >= 0):
        raise ValueError(f"base_s and cap_s must be finite and >= 0, got {base_s} and {cap_s}")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    delay = (rng or _DEFAULT_RNG).uniform(0.0, ceiling)
    if retry_after_s is None:
        return delay
    if not (math.isfinite(retry_after_s) and retry_after_s >= 0):
        raise ValueError(f"retry_after_s must be finite and >= 0, got {retry_after_s}")
    return max(delay, retry_after_s)


def next_attempt_at(
    now: float,
    attempt: int,
    *,
    deadline: float | None,
    max_attempts: int,
    base_s: float,
    cap_s: float,
    rng: random.Random | None = None,
    retry_after_s: float | None = None,
) -> float | None:
    """When to make the next attempt, after ``attempt`` attempts (counting the first send) have failed.

    None when the attempts are used up (``attempt >= max_attempts``) or no retry fits before ``deadline``
    (the delivery becomes ``expired``). Otherwise a time in ``[now, deadline]``.
    """
    if attempt >= max_attempts:
        return None
    if deadline is None:
        return now + backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=rng, retry_after_s=retry_after_s)
    # compare absolute times, as the caller will: (deadline - now) can differ from the gap by a rounding step
    if deadline <= now or (retry_after_s is not None and now + retry_after_s > deadline):
        return None
    delay = backoff_delay(
        attempt, base_s=base_s, cap_s=min(cap_s, deadline - now), rng=rng, retry_after_s=retry_after_s
    )
    return min(now + delay, deadline)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait, from delta-seconds or an HTTP-date.

    None when the header is missing or unreadable (the caller then backs off on its own); a date in the
    past gives 0. ``now`` defaults to the current UTC time; a naive ``now`` or date is taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
