"""Queue depth in deliveries, per lane: due now, or scheduled for later.

A lane is an arq sorted set of jobs, and a chunk job carries up to ``CHUNK_SIZE`` deliveries, so
the lane's size says little. Each lane keeps a *ledger* beside it (``lua/depth.lua``): the number
of deliveries each job carries and the second it is due, and the sums of those, split into due and
later. Every change to a lane updates its ledger in the same script where our code makes the change
(enqueue, a chunk rewriting itself), and right after arq makes it (a job finished or deferred:
``DepthSync``). Reading the depth is one script call whatever the number of queued jobs: each
second's deliveries are added to the due total once, when that second comes.

Jobs that carry no deliveries (arq's cron jobs) are not in the ledger. A canceled batch's chunk jobs
are taken out of it (``JobQueue.forget_batch``).

The sync after arq can be missed: a worker killed between arq's finish and the sync, or a lane that
changed in Redis behind the ledger's back. The ledger heals itself (``DepthLedger.heal``, run by the
reconciler's pass): every entry and every job of the lane is synced again, a bounded number per pass,
so an entry whose job has left the lane leaves the ledger, and a job the ledger missed is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifyq.queue.arq_compat import LUA_NAMES

log = structlog.get_logger("notifyq.queue")

# the ledger's functions (``lua/depth.lua``), after the arq names they read; the scripts that prepend them use
# those names too
LEDGER_LUA: Final = LUA_NAMES + resources.files("notifyq.queue").joinpath("lua", "depth.lua").read_text(
    encoding="utf-8"
)
_PAGE: Final = 1000  # job ids per script call
SYNC_LINGER_S: Final = 0.005  # jobs that end this close together are synced in one call
SYNC_RETRY_S: Final = (0.5, 30.0)  # a sync that lost Redis tries again after this, doubled up to the cap
SYNC_PENDING_MAX: Final = 100_000  # ids kept for a sync while Redis is away; beyond, the oldest are dropped


def adopted_key(lane: str) -> str:
    """Set once every job of ``lane`` has been through the ledger (see ``DepthLedger.adopt``)."""
    return f"notifyq:depth:{lane}:adopted"


def ledger_keys(lane: str) -> list[str]:
    """The ledger's keys for ``lane`` (``bulk``, ``urgent``), in ``depth.lua``'s order."""
    return [f"notifyq:depth:{lane}:{part}" for part in ("jobs", "buckets", "seconds", "totals")]


# KEYS: the lane's queue, then the ledger; ARGV: now (s), then job ids. Each job is counted as its lane has
# it now: at its score, or not at all when it has left the lane. A job in the lane that the ledger does not
# know (queued by a release without the ledger, or missed in an outage) is counted from its payload.
# Returns {entries dropped (their job had left the lane), jobs counted anew (the ledger did not know them)}.
_SYNC = (
    LEDGER_LUA
    + """
local D = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local folded = depth_fold(D, tonumber(ARGV[1]))
local dropped, added = 0, 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local n = depth_take(D, folded, id)
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score then
    if not n then
      n = depth_weight(id)
      if n == 0 then n = nil else added = added + 1 end
    end
    if n then depth_put(D, folded, id, n, depth_second(score)) end
  elseif n then
    dropped = dropped + 1
  end
end
return {dropped, added}
"""
)

# KEYS: the ledger; ARGV: now (s). Returns {due, later}.
_READ = (
    LEDGER_LUA
    + """
depth_fold(KEYS, tonumber(ARGV[1]))
local t = redis.call('HMGET', KEYS[4], 'due', 'later')
return {tonumber(t[1]) or 0, tonumber(t[2]) or 0}
"""
)


# KEYS: the lane's queue, then the ledger's jobs hash; ARGV: now (ms), the most jobs to look at. The score of the
# first job due now that carries deliveries (arq's cron jobs and canceled chunks carry none), or false when none
# is due. Past the bound it answers the last score looked at: the head is no older than that.
_OLDEST = """
local limit = tonumber(ARGV[2])
local offset, last = 0, false
while offset < limit do
  local got = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset,
    math.min(100, limit - offset))
  if #got == 0 then return false end
  for i = 1, #got, 2 do
    local entry = redis.call('HGET', KEYS[2], got[i])
    if entry and not string.match(entry, '^0 ') then return got[i + 1] end
    last = got[i + 1]
  end
  offset = offset + #got / 2
end
return last
"""
OLDEST_LOOKS: Final = 1000  # jobs read past at the head of a lane before giving up on an oldest age


def heal_key(lane: str) -> str:
    """Where ``DepthLedger.heal`` keeps its two scans' cursors for ``lane``."""
    return f"notifyq:depth:{lane}:heal"


@dataclass(frozen=True, slots=True)
class Healed:
    """What a sync did: ids synced, entries dropped (their job had left the lane), jobs counted anew."""

    synced: int
    dropped: int
    added: int


async def _scan(
    scan: Callable[..., Awaitable[tuple[int, Any]]], key: str, cursor: int, limit: int
) -> tuple[int, list[str]]:
    """Read about ``limit`` member ids of ``key`` from ``cursor`` (HSCAN or ZSCAN); the cursor to go on from."""
    ids: list[str] = []
    while True:
        cursor, found = await scan(key, cursor, count=min(limit, _PAGE))
        ids += [_text(m) for m in found]
        if cursor == 0 or len(ids) >= limit:
            return int(cursor), ids


def _text(member: Any) -> str:
    """A scanned member's id: HSCAN answers a mapping's key, ZSCAN a (member, score) pair."""
    raw = member[0] if isinstance(member, tuple) else member
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True, slots=True)
class Depth:
    """Deliveries waiting in one lane's jobs."""

    due: int  # due now (or within the current second), running ones included
    later: int  # scheduled for later: a batch's send_at, a pacing wait, a backoff

    def as_dict(self) -> dict[str, int]:
        """For ``notifyq status``."""
        return {"due": self.due, "later": self.later}


class DepthLedger:
    """Reads and corrects the lanes' ledgers (the enqueue scripts write them: ``JobQueue``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._sync = redis.register_script(_SYNC)
        self._read = redis.register_script(_READ)
        self._oldest = redis.register_script(_OLDEST)

    async def read(self, lanes: Sequence[str]) -> dict[str, Depth]:
        """Each lane's depth now."""
        now = _now_s()
        out = {}
        for lane in lanes:
            due, later = await self._read(keys=ledger_keys(lane), args=[now])
            out[lane] = Depth(int(due), int(later))
        return out

    async def oldest_due_age(self, lane: str, queue: str, *, now: float | None = None) -> float:
        """Seconds since the oldest due job of ``lane`` that carries deliveries was due (0 when none is due).

        A job is scored by when it is due, so this is how long the head of the lane has waited; a
        running job counts until it finishes. Behind more than ``OLDEST_LOOKS`` empty jobs (a
        canceled batch's chunks) the answer is the age of the last one looked at, an upper bound.
        """
        now_s = time.time() if now is None else now
        score = await self._oldest(keys=[queue, ledger_keys(lane)[0]], args=[int(now_s * 1000), OLDEST_LOOKS])
        if score is None:
            return 0.0
        return max(0.0, round(now_s - float(score) / 1000, 3))

    async def sync(self, lane: str, queue: str, job_ids: Sequence[str]) -> Healed:
        """Count ``job_ids`` as ``queue`` holds them now (arq finished, or moved, them)."""
        dropped = added = 0
        for at in range(0, len(job_ids), _PAGE):
            page = list(job_ids[at : at + _PAGE])
            gone, new = await self._sync(keys=[queue, *ledger_keys(lane)], args=[_now_s(), *page])
            dropped, added = dropped + int(gone), added + int(new)
        return Healed(len(job_ids), dropped, added)

    async def heal(self, lane: str, queue: str, *, limit: int) -> Healed:
        """Sync about ``limit`` more ids of the ledger and of the lane, where the last call left off.

        Each of the two scans goes on from its cursor, kept in Redis (``heal_key``), and starts again
        once it has gone round: over enough calls every entry and every job is synced. Ids read by both
        scans, or by one twice (a scan may return an id again), are synced twice, which changes nothing.
        """
        key = heal_key(lane)
        cursors = await self.redis.hmget(key, ["ledger", "lane"])  # type: ignore[misc]
        ledger_at, lane_at = (int(c or 0) for c in cursors)
        ledger_at, entries = await _scan(self.redis.hscan, ledger_keys(lane)[0], ledger_at, limit // 2)
        lane_at, jobs = await _scan(self.redis.zscan, queue, lane_at, limit - limit // 2)
        healed = await self.sync(lane, queue, list(dict.fromkeys(entries + jobs)))
        await self.redis.hset(key, mapping={"ledger": ledger_at, "lane": lane_at})  # type: ignore[misc]
        return healed

    async def adopt(self, lane: str, queue: str) -> int:
        """Count every job of ``queue`` that the ledger does not know yet, once per deployment; returns the jobs read.

        Jobs queued before the ledger existed are counted from their payloads, a page per call; then
        ``adopted_key`` is set and later calls return at once. Safe to run in several workers at once.
        """
        if await self.redis.exists(adopted_key(lane)):
            return 0
        seen = 0
        cursor = 0
        while True:
            cursor, members = await self.redis.zscan(queue, cursor, count=_PAGE)
            ids = [m.decode() if isinstance(m, bytes) else str(m) for m, _ in members]
            await self.sync(lane, queue, ids)
            seen += len(ids)
            if cursor == 0:
                break
        await self.redis.set(adopted_key(lane), "1")
        return seen


class DepthSync:
    """Syncs the ledger of one lane for the jobs arq finished or deferred, a few at a time.

    ``note`` never waits and never raises: the ids go out in one call after ``SYNC_LINGER_S``; while
    Redis is away they are kept (up to ``SYNC_PENDING_MAX``) and sent when it answers again.
    """

    def __init__(self, ledger: DepthLedger, lane: str, queue: str) -> None:
        self.ledger = ledger
        self.lane = lane
        self.queue = queue
        self.pending: dict[str, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def note(self, job_id: str) -> None:
        """Sync ``job_id`` soon."""
        self.pending[job_id] = None
        while len(self.pending) > SYNC_PENDING_MAX:
            del self.pending[next(iter(self.pending))]
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        low, high = SYNC_RETRY_S
        pause = low
        await asyncio.sleep(SYNC_LINGER_S)
        while self.pending:
            ids = list(self.pending)
            try:
                await self.ledger.sync(self.lane, self.queue, ids)
            except (RedisError, OSError) as exc:
                log.warning("queue depth not synced; trying again", lane=self.lane, jobs=len(ids), error=str(exc))
                await asyncio.sleep(pause)
                pause = min(2 * pause, high)
                continue
            for job_id in ids:
                self.pending.pop(job_id, None)

    async def close(self, timeout_s: float) -> None:
        """Sync what is pending, waiting at most ``timeout_s`` (what Redis did not take by then is dropped)."""
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        if not task.done():
            log.warning("queue depth not synced before the worker stopped", lane=self.lane, jobs=len(self.pending))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _now_s() -> int:
    return math.floor(time.time())
