"""A request budget per key, shared by every worker: so many requests a minute, with a bounded burst.

For requests that send nothing and follow no sender's schedule (the reconciler's fetches): a GCRA
(generic cell rate algorithm) keeps one number per key in Redis, the *theoretical arrival time*
``tat``. A request is allowed while ``tat`` is at most ``burst`` requests' worth ahead of now, and
each one allowed moves ``tat`` on by ``60 / per_minute`` seconds. So an idle key may spend ``burst``
at once, and a key that is always asking gets ``per_minute`` requests a minute on average; at most
``burst`` plus ``per_minute`` fit in any one minute. ``take`` asks for many at once and is told how
many it may make: a caller never books what it will not use, and nothing it is refused stays booked.
The script is ``lua/budget.lua``.

Account concurrency is not this module's: a request allowed here still takes an account lease in
the pacer (``Pacer.lease``) for as long as it is in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from notifyq.pacing.scripts import BUDGET_LUA

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX: Final = "notifyq:budget"
_US: Final = 1_000_000


class RequestBudget:
    """Requests per minute per key (``<PREFIX>:<name>:<key>``), taken many at a time."""

    def __init__(self, redis: Redis, name: str) -> None:
        self.redis = redis
        self.name = name
        self._take = redis.register_script(BUDGET_LUA)

    async def take(self, key: str, wanted: int, *, per_minute: float, burst: int, now: float | None = None) -> int:
        """How many of ``wanted`` requests may go now (0 to ``min(wanted, burst)``); those are spent.

        ``now`` (epoch seconds) replaces Redis' clock, for tests.
        """
        if not per_minute > 0:
            raise ValueError("per_minute must be positive")
        if burst < 1:
            raise ValueError("burst is at least one request")
        if wanted < 1:
            return 0
        interval = max(1, round(60 * _US / per_minute))
        now_arg = "" if now is None else str(round(now * _US))
        granted = await self._take(keys=[f"{PREFIX}:{self.name}:{key}"], args=[now_arg, interval, burst, wanted])
        return int(granted)
