"""Sends per second and Twilio's latency, cluster-wide, over the last minutes: the ops page's chart.

Every worker counts its create requests in memory, per wall-clock second, and adds them once a second
to one Redis hash per second (``HINCRBY``/``HINCRBYFLOAT``, so any number of workers add into the same
buckets and none overwrites another). A bucket expires after ``KEEP_S``: the series costs a bounded
number of small keys whatever the traffic, and no process holds state another one needs. Any API
replica reads the same buckets, so every replica shows the same figures.

Fields of a bucket: ``n`` create requests Twilio answered, ``ok`` of them accepted (201), ``lat`` the
sum of their latencies in seconds (the mean is ``lat / n``). A request that never reached Twilio
counts in none of them: it has no latency to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

PREFIX: Final = "notifyq:throughput"
KEEP_S: Final = 900  # a bucket outlives the longest window the page reads
FLUSH_EVERY_S: Final = 1.0


def bucket_key(second: int) -> str:
    """The hash holding one wall-clock second's figures."""
    return f"{PREFIX}:{second}"


@dataclass(slots=True)
class _Tally:
    n: int = 0
    ok: int = 0
    lat: float = 0.0


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """One step of the series: the seconds from ``start`` to ``start + step_s``, summed over the cluster."""

    start: int
    step_s: int
    requests: int
    accepted: int
    latency_sum_s: float

    @property
    def sends_per_s(self) -> float:
        """Accepted creates per second over the step."""
        return round(self.accepted / self.step_s, 3)

    @property
    def latency_ms(self) -> float | None:
        """Mean latency of the step's answered requests, None when there were none."""
        return round(self.latency_sum_s / self.requests * 1000, 1) if self.requests else None


class ThroughputRecorder:
    """One worker's tallies, added to the cluster's buckets once a second (and when it stops)."""

    def __init__(self, redis: Redis, *, clock: Any = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._pending: dict[int, _Tally] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, *, accepted: bool, seconds: float | None) -> None:
        """One create request; ``seconds`` None when it never reached Twilio (then it is not counted)."""
        if seconds is None:
            return
        tally = self._pending.get(second := int(self._clock()))
        if tally is None:
            tally = self._pending[second] = _Tally()
        tally.n += 1
        tally.ok += accepted
        tally.lat += seconds

    async def flush(self) -> None:
        """Add what is counted to Redis; kept for the next flush when Redis fails (a late second only blurs)."""
        if not self._pending:
            return
        taken, self._pending = self._pending, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for second, t in taken.items():
                    key = bucket_key(second)
                    pipe.hincrby(key, "n", t.n)
                    pipe.hincrby(key, "ok", t.ok)
                    pipe.hincrbyfloat(key, "lat", t.lat)
                    pipe.expire(key, KEEP_S)
                await pipe.execute()
        except (RedisError, OSError):
            # kept, but never longer than a bucket lives: a Redis that stays away costs bounded memory
            oldest = int(self._clock()) - KEEP_S
            for second, t in taken.items():
                if second > oldest:
                    kept = self._pending.setdefault(second, _Tally())
                    kept.n, kept.ok, kept.lat = kept.n + t.n, kept.ok + t.ok, kept.lat + t.lat

    def start(self) -> None:
        """Flush once a second until ``close``."""
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()

    async def close(self) -> None:
        """Stop flushing, then flush what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


async def read_series(
    redis: Redis, *, window_s: int = 300, step_s: int = 5, now: float | None = None
) -> list[ThroughputPoint]:
    """The last ``window_s`` seconds in steps of ``step_s``, oldest first.

    The current second is left out: workers are still adding to it.
    """
    end = int(time.time() if now is None else now)  # the second still being counted
    first = end - window_s
    async with redis.pipeline(transaction=False) as pipe:
        for second in range(first, end):
            pipe.hgetall(bucket_key(second))
        buckets: list[dict[Any, Any]] = await pipe.execute()
    points = []
    for offset in range(0, window_s, step_s):
        n = ok = 0
        lat = 0.0
        for raw in buckets[offset : offset + step_s]:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            n += int(fields.get("n", 0))
            ok += int(fields.get("ok", 0))
            lat += float(fields.get("lat", 0.0))
        points.append(ThroughputPoint(first + offset, step_s, n, ok, lat))
    return points


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
