"""The producer write path, shared by the HTTP API and in-process callers (``notifyq.Producer``).

A batch is validated whole, written to the store (batch row + one delivery row per recipient) in
one transaction, and only then turned into jobs: the rows are the truth, Redis holds only work.
If enqueueing is interrupted, ``notifyq requeue`` (and the worker's periodic sweep) finishes it.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from notifyq import statuses as st
from notifyq.accounts import Account, AccountDirectory
from notifyq.errors import IdempotencyConflict, NotFound, Problem, ValidationFailed
from notifyq.ids import is_id, new_id, new_ids
from notifyq.intake import BatchIntake, BatchSpec, RequestDigest
from notifyq.preview import preview_batch
from notifyq.queue.connect import redis_from_url
from notifyq.queue.jobs import CHUNK_SIZE, JOBS_PER_CALL, JobQueue, SendJob
from notifyq.settings import Settings
from notifyq.store import BatchRow, PoolSize, ReplayLink, Store
from notifyq.store.bulk_insert import ROWS_PER_INSERT

log = structlog.get_logger("notifyq.producer")
# a batch counts as started this long before its send_at (the workers' clocks may be ahead of ours)
START_MARGIN_S = 60.0

_ID_LEN = 24
# deliveries per enqueue step: one enqueue script call's worth of chunk jobs, whole insert blocks
ENQUEUE_SLICE = JOBS_PER_CALL * CHUNK_SIZE
if ENQUEUE_SLICE % ROWS_PER_INSERT or ROWS_PER_INSERT % CHUNK_SIZE:  # pragma: no cover - constants
    raise ImportError("enqueue slices, insert blocks and chunks must divide one another")


@dataclass(frozen=True, slots=True)
class Submitted:
    """A batch as accepted; ``created`` is False when an idempotency key matched an earlier one."""

    batch: BatchRow
    created: bool

    def as_dict(self) -> dict[str, Any]:
        """The 202 body."""
        b = self.batch
        return {
            "id": b.id,
            "created": self.created,
            "channel": b.channel.value,
            "total": b.total,
            "duplicates_dropped": b.duplicates_dropped,
            "priority": b.priority,
            "send_at": b.send_at,
            "valid_until": b.valid_until,
            "idempotency_key": b.idempotency_key,
        }


class Producer:
    """Accepts batches: validate, store, enqueue. Async; no HTTP hop."""

    def __init__(
        self, settings: Settings, store: Store, jobs: JobQueue, accounts: AccountDirectory | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.accounts = accounts or AccountDirectory(settings, store)
        self._stack: AsyncExitStack | None = None
        self._background: set[asyncio.Task[int]] = set()

    @classmethod
    async def open(cls, settings: Settings) -> Producer:
        """A producer with its own store and Redis connections (needs ``settings.redis_url``)."""
        if not settings.redis_url:
            raise ValueError("an in-process Producer needs NOTIFYQ_REDIS_URL (the workers' Redis)")
        stack = AsyncExitStack()
        store = await Store.open(settings.sqlalchemy_url(), pool=PoolSize(**settings.database.model_dump()))
        stack.push_async_callback(store.close)
        redis = redis_from_url(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        producer = cls(settings, store, JobQueue(redis))
        producer._stack = stack
        return producer

    async def close(self) -> None:
        """Finish background enqueues, then close what ``open`` opened."""
        await self.drain()
        if self._stack is not None:
            await self._stack.aclose()

    async def drain(self) -> None:
        """Wait for enqueues still running in the background."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def submit(
        self,
        payload: Mapping[str, Any],
        *,
        enqueue: str = "wait",
        replay: ReplayLink | None = None,
        admit: Callable[[int], Awaitable[None]] | None = None,
    ) -> Submitted:
        """Validate and store a batch, then queue its jobs.

        The recipients are validated as they are written (in insert blocks, in the one transaction that creates
        the batch), so a batch is still stored whole or refused whole; ``payload["recipients"]`` may be
        a list or a :class:`~notifyq.intake.reader.RecipientArray` read from the request text as it goes.

        ``enqueue``: ``"wait"`` returns once every job is in Redis; ``"background"`` returns as soon as the
        rows are durable and queues the jobs in a task (the API does this; if the process dies first,
        the worker's sweep queues them); ``"none"`` leaves it to that sweep.

        ``replay``: the batch sends deliveries again (``notifyq.replay``); each is linked to its original as
        it is stored.
        """
        intake = BatchIntake(
            payload,
            default_validity_s=self.settings.worker.default_validity_s,
            max_recipients=self.settings.api.max_recipients,
            accounts=None,  # any account the directory resolves, below
        )
        spec = intake.spec
        if spec is None:
            intake.reject()
        digest = None
        if spec.idempotency_key:
            earlier = await self.store.find_batch_by_key(spec.idempotency_key)
            if earlier is not None:
                return _repeated(earlier, intake, payload)
            digest = RequestDigest(payload)
        account = await self._sending_account(spec.account)
        now = time.time()
        batch = {
            "id": new_id(),
            "created_at": now,
            "idempotency_key": spec.idempotency_key,
            "channel": spec.channel.value,
            "account": account.name,
            "account_sid": account.account_sid,
            "sender": spec.sender,
            "messaging_service_sid": spec.messaging_service_sid,
            "priority": spec.priority,
            "content": _content(spec, payload),
            "send_at": spec.send_at.timestamp() if spec.send_at else None,
            "valid_until": spec.deadline(datetime.fromtimestamp(now, UTC)).timestamp(),
            "total": 0,  # set with duplicates_dropped once every recipient is written
            "duplicates_dropped": 0,
            "meta": spec.metadata,
        }
        queued = _Queued()
        try:
            row = await self.store.create_batch(
                batch,
                queued.rows(intake, digest),
                admit=admit,
                finish=lambda: {
                    "duplicates_dropped": intake.duplicates_dropped,
                    "request_hash": None if digest is None else digest.hexdigest(),
                },
                replay=replay,
            )
        except IntegrityError:
            earlier = await self.store.find_batch_by_key(spec.idempotency_key or "")
            if earlier is None:
                raise
            return _repeated(earlier, intake, payload)
        if enqueue == "wait":
            await self.enqueue(row, queued)
        elif enqueue == "background":
            task = asyncio.create_task(self.enqueue(row, queued))
            self._background.add(task)
            task.add_done_callback(self._enqueued)
        return Submitted(row, created=True)

    async def preview(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What ``submit`` would send and what it would cost (``notifyq.preview``); nothing stored or queued.

        Refused (ValidationFailed) for what ``submit`` refuses, the account it names included.
        """
        intake = BatchIntake(
            payload,
            default_validity_s=self.settings.worker.default_validity_s,
            max_recipients=self.settings.api.max_recipients,
            accounts=None,
        )
        if intake.spec is None:
            intake.reject()
        account = await self._sending_account(intake.spec.account)
        return {"account": account.name} | preview_batch(intake, self.settings.pricing)

    async def _sending_account(self, name: str | None) -> Account:
        """The account a batch names (or the default one), when it may take batches."""
        try:
            account = await self.accounts.resolve(name)
        except NotFound:
            raise ValidationFailed([Problem("account", f"no Twilio account {name!r} is configured")]) from None
        if account.deauthorized:
            reason = f"account {account.name!r} was deauthorized (Twilio Connect): it sends nothing any more"
            raise ValidationFailed([Problem("account", reason)])
        return account

    def _enqueued(self, task: asyncio.Task[int]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("enqueue failed; the sweep will queue the batch", error=str(task.exception()))

    async def enqueue(self, batch: BatchRow, queued: _Queued) -> int:
        """Queue the deliveries of a freshly stored batch as chunk jobs, then mark the batch enqueued."""
        not_before = batch.send_at * 1000 if batch.send_at else None
        start_ms = await self.jobs.lane_start(batch.priority, not_before_ms=not_before)
        added = 0
        for jobs in queued.jobs(batch.id, ENQUEUE_SLICE):
            added += await self.jobs.enqueue_chunks(batch.priority, jobs, start_ms=start_ms)
        await self.store.mark_enqueued(batch.id)
        if (await self.store.get_batch(batch.id)).canceled_at is not None:  # canceled while it was being queued
            await self.jobs.forget_batch(batch.priority, batch.id, batch.total, drop=_not_started(batch))
        return added

    async def batch_status(self, batch_id: str) -> dict[str, Any]:
        """Counts by status and by error code, and how many are final."""
        batch = await self.store.get_batch(_our_id("batch", batch_id))
        by_status, by_code = await self.store.batch_counts(batch_id)
        final = sum(n for s, n in by_status.items() if st.is_final(batch.channel, s))
        return {
            "id": batch.id,
            "channel": batch.channel.value,
            "total": batch.total,
            "final": final,
            "done": final == batch.total,
            "by_status": by_status,
            "by_error_code": by_code,
            "duplicates_dropped": batch.duplicates_dropped,
            "created_at": batch.created_at,
            "enqueued_at": batch.enqueued_at,
            "canceled_at": batch.canceled_at,
            "meta": batch.meta,
        }

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """A delivery and its event history."""
        row = await self.store.get_delivery(_our_id("delivery", delivery_id))
        out: dict[str, Any] = {f: getattr(row, f) for f in row.__dataclass_fields__}
        out["channel"] = row.channel.value
        out["final"] = st.is_final(row.channel, row.status)
        out["events"] = await self.store.events(delivery_id)
        return out

    async def deliveries(
        self, batch_id: str, *, status: str | None = None, after: str = "", limit: int = 100
    ) -> dict[str, Any]:
        """A page of a batch's deliveries, e.g. the failed ones; ``next`` continues it."""
        await self.store.get_batch(_our_id("batch", batch_id))
        rows = await self.store.list_deliveries(batch_id, status=status, after=after, limit=limit)
        items = [
            {
                "id": r.id,
                "to": r.to_number,
                "status": r.status,
                "error_code": r.error_code,
                "error_message": r.error_message,
                "twilio_sid": r.twilio_sid,
                "attempts": r.attempts,
                "updated_at": r.updated_at,
            }
            for r in rows
        ]
        return {"items": items, "next": rows[-1].id if len(rows) == limit else None}

    async def cancel(self, batch_id: str) -> int:
        """Cancel a batch; returns how many deliveries became ``canceled``.

        Its chunk jobs leave the queue depth; those of a batch scheduled for later leave the lane too
        (the others run soon, and find nothing to send).
        """
        batch = await self.store.get_batch(_our_id("batch", batch_id))
        canceled = await self.store.cancel_batch(batch_id)
        try:
            await self.jobs.forget_batch(batch.priority, batch.id, batch.total, drop=_not_started(batch))
        except (RedisError, OSError) as exc:  # the cancel holds; only the depth counts the jobs until they run
            log.warning("canceled batch still counted in the queue depth", batch_id=batch_id, error=str(exc))
        return canceled


def _not_started(batch: BatchRow) -> bool:
    """Whether no worker can have claimed any of the batch's deliveries yet (its send_at is still ahead)."""
    return batch.send_at is not None and batch.send_at > time.time() + START_MARGIN_S


# request fields that belong to one submission, not to its content
_NOT_CONTENT = frozenset({"recipients", "idempotency_key", "send_at", "metadata"})


def _content(spec: BatchSpec, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What every recipient's request shares.

    The form items but To and Body, the body template, and the request without its recipients (so a
    replay can submit it again).
    """
    params = [[k, v] for k, v in spec.shared_params()]
    request = {k: v for k, v in payload.items() if k not in _NOT_CONTENT}
    return {"params": params, "body": spec.body_template, "request": request}


def _our_id(kind: str, ident: str) -> str:
    """``ident`` if it has the shape of our ids; NotFound before the store sees anything else (NUL, say)."""
    if not is_id(ident):
        raise NotFound(kind, ident)
    return ident


def _repeated(earlier: BatchRow, intake: BatchIntake, payload: Mapping[str, Any]) -> Submitted:
    """A request under the idempotency key of ``earlier``: that batch again if it is the same request.

    The rest of the request is read to check it (a repeat is still refused when invalid) and to
    digest it; a batch stored before digests were kept is matched by its key alone.
    """
    digest = RequestDigest(payload)
    accepted = intake.accepted()
    while block := list(islice(accepted, ROWS_PER_INSERT)):
        digest.add(block)
    intake.finish()
    if earlier.request_hash is not None and earlier.request_hash != digest.hexdigest():
        raise IdempotencyConflict(earlier.idempotency_key or "", earlier.id)
    return Submitted(earlier, created=False)


class _Queued:
    """What the background enqueue needs of a stored batch, kept small: 24 characters and 2 bytes per delivery.

    Delivery ids are kept as one string per insert block of ``ROWS_PER_INSERT`` (not a list of a million strings),
    segment counts in an array; nothing else of the request outlives the 202.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []  # ids[k] holds the ids of seq k * ROWS_PER_INSERT .. as 24-character runs
        self.costs = array("H")

    def rows(
        self, intake: BatchIntake, digest: RequestDigest | None
    ) -> Iterator[list[tuple[str, str, dict[str, str] | None]]]:
        """Insert blocks of ``(id, to, variables)`` for ``Store.create_batch``; ``intake.finish()`` at the end.

        Each block is added to ``digest`` (when the request has an idempotency key) as it is made.
        """
        accepted = intake.accepted()
        while block := list(islice(accepted, ROWS_PER_INSERT)):
            if digest is not None:
                digest.add(block)
            ids = new_ids(len(block))
            self.ids.append("".join(ids))
            self.costs.extend([segments for _, _, _, segments in block])
            yield [(did, to, variables) for did, (to, variables, _, _) in zip(ids, block, strict=True)]
        intake.finish()

    def jobs(self, batch_id: str, size: int) -> Iterator[list[SendJob]]:
        """The deliveries as SendJobs, ``size`` at a time (``size`` a multiple of ROWS_PER_INSERT)."""
        per = size // ROWS_PER_INSERT
        costs = self.costs
        for first in range(0, len(self.ids), per):
            jobs: list[SendJob] = []
            for k, text in enumerate(self.ids[first : first + per], start=first):
                base = k * ROWS_PER_INSERT
                jobs += [
                    SendJob(text[i * _ID_LEN : (i + 1) * _ID_LEN], batch_id, costs[base + i], base + i)
                    for i in range(len(text) // _ID_LEN)
                ]
            yield jobs
