"""Each registry token's rate limit (a token bucket) and recipient quotas, kept in Redis.

Both live in Redis so that every API replica counts against the same figures, each in one script so
that two requests never both take the last unit. Quotas count recipients when a batch is stored: the
store asks ``take`` inside the batch's transaction, once it knows how many recipients there are, so a
refused batch leaves no row; a batch whose transaction fails after that gives its count back. The
counters expire when their UTC day or month ends; if Redis loses its data, the period starts again at
zero (quotas bound spend, they are not records: the deliveries in the database are).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Final

from redis.asyncio import Redis

from notifyq.errors import QuotaExceeded
from notifyq.tokens import Principal

_PREFIX: Final = "notifyq:token:"
QUOTAS: Final = {1: "daily", 2: "monthly"}  # by the number the quota script answers
_KEEP_S: Final = 86_400  # a counter outlives its period by a day, so a late give-back finds it


def _lua(name: str) -> str:
    return resources.files("notifyq.api").joinpath("lua", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Taken:
    """Recipients counted against a token's quotas, on these counters."""

    keys: tuple[str, ...]
    recipients: int


def period_keys(token_id: str, now: datetime) -> tuple[tuple[str, int], tuple[str, int]]:
    """The day's and the month's counter for a token at ``now`` (UTC), each with the Unix time it ends."""
    day = now.astimezone(UTC).date()
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    last = calendar.monthrange(day.year, day.month)[1]
    month_end = datetime(day.year, day.month, last, tzinfo=UTC) + timedelta(days=1)
    return (
        (f"{_PREFIX}{token_id}:day:{day.isoformat()}", int(day_end.timestamp())),
        (f"{_PREFIX}{token_id}:month:{day.year:04d}-{day.month:02d}", int(month_end.timestamp())),
    )


class TokenLimiter:
    """Rate limits and quotas of registry tokens (the environment's tokens have neither)."""

    def __init__(self, redis: Redis) -> None:
        self._bucket = redis.register_script(_lua("token_bucket.lua"))
        self._take = redis.register_script(_lua("quota_take.lua"))
        self._give_back = redis.register_script(_lua("quota_give_back.lua"))

    async def wait_s(self, principal: Principal) -> int | None:
        """None when a request may go on now; else the whole seconds to wait (at least 1)."""
        rate, burst = principal.limits.rate, principal.limits.burst
        if rate is None:
            return None
        size = burst if burst is not None else max(1, math.ceil(rate))
        allowed, wait_ms = await self._bucket(keys=[f"{_PREFIX}{principal.id}:bucket"], args=[rate, size])
        if int(allowed):
            return None
        return max(1, math.ceil(int(wait_ms) / 1000))

    async def take(self, principal: Principal, recipients: int, *, now: datetime | None = None) -> Taken | None:
        """Count a batch's recipients; QuotaExceeded (nothing counted) when it would pass a quota."""
        lim = principal.limits
        if lim.daily is None and lim.monthly is None:
            return None
        (day_key, day_end), (month_key, month_end) = period_keys(principal.id, now or datetime.now(UTC))
        daily = -1 if lim.daily is None else lim.daily
        monthly = -1 if lim.monthly is None else lim.monthly
        which, limit, left = await self._take(
            keys=[day_key, month_key],
            args=[recipients, daily, monthly, day_end + _KEEP_S, month_end + _KEEP_S],
        )
        if int(which):
            raise QuotaExceeded(QUOTAS[int(which)], int(limit), int(left), recipients)
        keys = tuple(k for k, q in ((day_key, lim.daily), (month_key, lim.monthly)) if q is not None)
        return Taken(keys, recipients)

    async def give_back(self, taken: Taken) -> None:
        """Undo ``take`` for a batch that was not stored."""
        await self._give_back(keys=list(taken.keys), args=[taken.recipients])
