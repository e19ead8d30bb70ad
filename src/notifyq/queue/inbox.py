"""The callback inbox: status reports are made durable first, applied to the store after.

Twilio sends each status callback once and does not retry a 5xx, so a callback is answered 200
only once it is durable somewhere. The receiver appends it to a Redis stream (one XADD); an
applier drains the stream into the store a flush at a time with a consumer group, acknowledging only
what the store committed, so a database outage just lets the stream grow until the database is
back. When Redis is down the receiver writes straight to the store; only when both are down does
Twilio get a 503. (Run Redis with appendonly for the stream to survive a Redis restart.)

One entry never stops the others. When a flush fails for a reason that is not an outage
(``store.unavailable``), its halves are applied on their own, and theirs, down to single entries:
the good ones are applied and acknowledged, each one that fails on its own has a try counted (a hash
beside the stream), and one that has failed ``MAX_TRIES`` times goes to the dead letter with its
reason (``queue/deadletter.py``). An entry that cannot be decoded goes there at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import SQLAlchemyError

from notifyq.queue.connect import redis_from_url
from notifyq.queue.deadletter import DeadLetters
from notifyq.store import PoolSize, StatusReport, Store, describe, unavailable

log = structlog.get_logger("notifyq.inbox")

STREAM: Final = "notifyq:callbacks"
GROUP: Final = "appliers"
TRIES: Final = "notifyq:callbacks:tries"  # entry id -> how many times it failed on its own
FLUSH_ENTRIES: Final = 500  # stream entries per XADD flush and per flush into the store
CLAIM_IDLE_MS: Final = 30_000
MAX_TRIES: Final = 5


_FIELDS: Final = tuple(f.name for f in fields(StatusReport))
# the reports that arrived together, one XADD each, in one script call (a pipeline of XADDs cost the
# receiver more in redis-py's command packing than the XADDs cost Redis)
_XADD_MANY: Final = """
for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'r', ARGV[i]) end
return #ARGV
"""


# one encoder for every entry: json.dumps with ``separators`` builds a new JSONEncoder on each call
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def _encode(report: StatusReport) -> bytes:
    # the fields one by one: dataclasses.asdict would deep-copy ``raw``, which the encoder only reads
    return _ENCODER.encode({name: getattr(report, name) for name in _FIELDS}).encode()


# KEYS: stream, tries; ARGV: group, then the entry ids the store committed
_ACK: Final = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
redis.call('HDEL', KEYS[2], unpack(ARGV, 2))
"""


def _decode(data: bytes) -> StatusReport:
    return StatusReport(**json.loads(data))


LAG_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def callback_lag_histogram(registry: CollectorRegistry) -> Histogram:
    """Seconds from a callback's event to the store holding it, observed by the applier that applied it."""
    return Histogram(
        "notifyq_callback_lag_seconds",
        "Status callbacks, from Twilio's event time (when the callback carries one, else its receipt) to applied",
        buckets=LAG_BUCKETS,
        registry=registry,
    )


def dead_letter_counter(registry: CollectorRegistry) -> Counter:
    """Callbacks an applier moved to the dead letter, counted by the process whose applier did it."""
    return Counter(
        "notifyq_callbacks_dead_lettered",
        "Callbacks this process's applier moved to the dead letter",
        registry=registry,
    )


def event_time(report: StatusReport) -> float:
    """When the reported event happened: Twilio's ``Timestamp`` (call callbacks, RFC 2822), else the receipt."""
    stamp = report.raw.get("Timestamp") if isinstance(report.raw, dict) else None
    if isinstance(stamp, str):
        try:
            return email.utils.parsedate_to_datetime(stamp).timestamp()
        except (TypeError, ValueError, IndexError):
            pass  # not a date: the receipt time stands in
    return report.at


def dead_letters(redis: Redis) -> DeadLetters:
    """The dead letter beside the callback stream."""
    return DeadLetters(redis, inbox=STREAM, group=GROUP, tries=TRIES)


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: bytes
    fields: dict[bytes, bytes]
    report: StatusReport


class CallbackInbox:
    """Where the receiver puts reports and the applier takes them from."""

    def __init__(
        self,
        redis: Redis,
        store: Store,
        *,
        max_tries: int = MAX_TRIES,
        on_dead_letter: Callable[[], None] | None = None,
        on_applied: Callable[[float], None] | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.dead = dead_letters(redis)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.max_tries = max_tries
        self.failing_since: float | None = None  # monotonic time of the first of the failures in a row
        self.last_error = ""
        self._on_dead_letter = on_dead_letter
        self._on_applied = on_applied  # given each applied callback's lag (``event_time`` to now), in seconds
        self._group_ready = False
        self._lock = asyncio.Lock()
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._xadd_many = redis.register_script(_XADD_MANY)
        self._ack = redis.register_script(_ACK)

    async def put(self, report: StatusReport) -> str:
        """Make ``report`` durable; returns where it went (``stream`` or ``store``).

        Reports that arrive together share one pipelined round trip to Redis. Raises when neither
        Redis nor the store would take it.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((_encode(report), fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_puts())
        try:
            await fut
        except (RedisError, OSError) as exc:
            log.warning("callback stream unavailable; writing to the store directly", error=str(exc))
            await self.store.apply_reports([report])  # raises if the store is down too
            return "store"
        return "stream"

    async def _flush_puts(self) -> None:
        await asyncio.sleep(0)  # let every request that is ready now add its report
        while self._pending:
            flush, self._pending = self._pending[:FLUSH_ENTRIES], self._pending[FLUSH_ENTRIES:]
            try:
                await self._xadd_many(keys=[STREAM], args=[data for data, _ in flush])
            except (RedisError, OSError) as exc:
                for _, fut in flush:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in flush:
                if not fut.done():
                    fut.set_result(None)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def apply_once(self, *, block_ms: int | None = None) -> int:
        """Apply one flush of waiting reports; returns how many were applied (0 when none)."""
        async with self._lock:  # one flush at a time per process: the same entry is never applied twice at once
            await self._ensure_group()
            try:
                entries = await self._next_entries(block_ms)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # Redis lost the stream (restart, FLUSHALL): make it again
                return 0
            if not entries:
                return 0
            done: list[bytes] = []  # committed (or nothing to apply): acknowledged and deleted
            items: list[_Entry] = []
            for entry_id, entry in entries:
                if not entry:  # deleted while pending
                    done.append(entry_id)
                    continue
                try:
                    items.append(_Entry(entry_id, entry, _decode(entry[b"r"])))
                except (KeyError, ValueError, TypeError) as exc:  # decoding again gives the same answer
                    await self._bury(entry_id, entry, f"undecodable entry: {describe(exc)}", 1)
            try:
                return await self._apply(items, done)
            finally:  # what committed before an outage is acknowledged all the same
                if done:
                    await self._ack(keys=[STREAM, TRIES], args=[GROUP, *done])

    async def _apply(self, items: list[_Entry], done: list[bytes]) -> int:
        """Apply ``items`` in one transaction; if that fails but not for an outage, each half on its own."""
        if not items:
            return 0
        try:
            await self.store.apply_reports([item.report for item in items])
        except Exception as exc:
            # any error type: a driver refuses a value it cannot hold with its own (sqlite3 with OverflowError,
            # asyncpg with a DataError); an outage is raised as it is, for the caller to wait and try again
            if unavailable(exc):
                raise
            if len(items) == 1:
                await self._failed(items[0], exc)
                return 0
            half = len(items) // 2
            return await self._apply(items[:half], done) + await self._apply(items[half:], done)
        done.extend(item.entry_id for item in items)
        if self._on_applied is not None:
            now = time.time()
            for item in items:
                self._on_applied(max(0.0, now - event_time(item.report)))
        return len(items)

    async def _failed(self, item: _Entry, exc: Exception) -> None:
        reason = describe(exc)
        tries = int(await self.redis.hincrby(TRIES, item.entry_id.decode(), 1))  # type: ignore[misc]
        if tries < self.max_tries:
            log.warning(
                "callback could not be applied; it is tried again",
                entry=item.entry_id.decode(),
                delivery_id=item.report.delivery_id,
                tries=tries,
                error=reason,
            )
            return
        await self._bury(item.entry_id, item.fields, reason, tries)

    async def _bury(self, entry_id: bytes, entry: dict[bytes, bytes], reason: str, tries: int) -> None:
        if not await self.dead.bury(entry_id, entry, reason, tries):
            return  # no longer pending: another applier took it meanwhile
        log.error("callback moved to the dead letter", entry=entry_id.decode(), tries=tries, reason=reason)
        if self._on_dead_letter is not None:
            self._on_dead_letter()

    async def _next_entries(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # 1. ours that a failed attempt left unacknowledged (e.g. during a database outage, or one entry that
        # failed on its own and is tried again), with new ones up to a full flush so these do not wait for it
        got = await self.redis.xreadgroup(GROUP, self.consumer, {STREAM: "0"}, count=FLUSH_ENTRIES)
        entries = [e for _stream, items in got or [] for e in items if e[1]]
        if entries:
            if len(entries) < FLUSH_ENTRIES:
                got = await self.redis.xreadgroup(
                    GROUP, self.consumer, {STREAM: ">"}, count=FLUSH_ENTRIES - len(entries)
                )
                entries += [e for _stream, items in got or [] for e in items]
            return entries
        # 2. what an applier that died left behind
        claimed = await self.redis.xautoclaim(STREAM, GROUP, self.consumer, CLAIM_IDLE_MS, "0-0", count=FLUSH_ENTRIES)
        entries = [e for e in claimed[1] if e[1]]
        if entries:
            return entries
        # 3. new reports
        got = await self.redis.xreadgroup(GROUP, self.consumer, {STREAM: ">"}, count=FLUSH_ENTRIES, block=block_ms)
        return [e for _stream, items in got or [] for e in items]

    async def drain(self, *, timeout_s: float = 10.0) -> int:
        """Apply until the stream is empty (tests and shutdown)."""
        total = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = await self.apply_once()
            total += n
            if n == 0 and await self.backlog() == 0:
                break
        return total

    async def backlog(self) -> int:
        """Reports waiting to be applied."""
        try:
            return int(await self.redis.xlen(STREAM))
        except ResponseError:
            return 0

    async def run(self, *, idle_sleep_s: float = 0.2, error_sleep_s: float = 1.0) -> None:
        """Apply forever; on a store or Redis outage, wait and try again (nothing is lost).

        ``failing_since`` says since when every round has failed (None while they succeed), for
        ``/healthz``.
        """
        while True:
            try:
                n = await self.apply_once(block_ms=int(idle_sleep_s * 1000))
            except (SQLAlchemyError, OSError, RedisError) as exc:
                self.last_error = describe(exc)
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                log.warning("applying callbacks failed; will retry", error=self.last_error)
                await asyncio.sleep(error_sleep_s)
                continue
            self.failing_since = None
            if n == 0:
                await asyncio.sleep(0)

    def failing_for(self) -> float:
        """How long every round of ``run`` has failed (0 while they succeed)."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since


def applier_health(task: asyncio.Task[None], inbox: CallbackInbox, stuck_after_s: float) -> str:
    """``ok``, or why the applier is not applying: it stopped, or every round has failed for too long."""
    if task.done():
        exc = None if task.cancelled() else task.exception()
        return "stopped" + (f": {describe(exc)}" if exc is not None else "")
    failing_for = inbox.failing_for()
    if failing_for > stuck_after_s:
        return f"failing for {failing_for:.0f} s: {inbox.last_error}"
    return "ok"


async def run_applier(
    store_url: str,
    redis_url: str,
    *,
    on_applied: Callable[[float], None] | None = None,
    on_dead_letter: Callable[[], None] | None = None,
    started: Callable[[CallbackInbox], None] | None = None,
    pool: PoolSize | None = None,
) -> None:
    """A process of its own that applies the stream to the store (``notifyq applier``), until cancelled.

    ``on_applied`` and ``on_dead_letter`` are ``CallbackInbox``'s; ``started`` hears of the inbox once it
    runs (for the process's /healthz).
    """
    store = await Store.open(store_url, wait=True, pool=pool)
    redis = redis_from_url(redis_url)
    try:
        log.info("applying buffered callbacks", stream=STREAM, group=GROUP)
        inbox = CallbackInbox(redis, store, on_applied=on_applied, on_dead_letter=on_dead_letter)
        if started is not None:
            started(inbox)
        await inbox.run()
    except Exception:
        log.exception("the callback applier stopped")
        raise
    finally:
        await redis.aclose()
        await store.close()
