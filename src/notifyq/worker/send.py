"""The send jobs: pace, claim, create at Twilio, record.

A chunk job (``send_chunk``) does this for up to ``CHUNK_SIZE`` deliveries of one batch at once: one
pacing call for all of them, their claims and results in the shared write batches, their creates
concurrently. What cannot go now stays in the chunk, which comes back when the pacer says; a
delivery that needs anything else (a retry after an error, an unanswered create, an earlier attempt
to settle) continues in a delivery job of its own (``send``), which does the same for one delivery.

Order matters. Pacing comes first, so a job that must wait holds neither a claim nor a worker slot
(it is deferred with arq's ``Retry``). The claim is a guarded UPDATE, so a job that runs twice
cannot send twice. A create whose outcome is unknown leaves the delivery ``dispatching``: it is
settled by its status callback, or by a look-up in Twilio's list after a grace period, and only
re-sent when that list shows nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol

import structlog
from arq.worker import Retry

from notifyq import statuses as st
from notifyq.backoff import next_attempt_at
from notifyq.classify import Action, Verdict, classify
from notifyq.errors import AmbiguousSend, ProviderError, TransportError, TwilioApiError
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.queue.limiter import Grant, Pacer
from notifyq.settings import Settings
from notifyq.statuses import Channel
from notifyq.store.coalesce import WriteCoalescer
from notifyq.store.records import Claim, DeliveryRow
from notifyq.store.repo import Store
from notifyq.worker.prepared import BatchCache, PreparedBatch

log = structlog.get_logger("notifyq.worker")


RELEASE_LINGER_S: Final = 0.002  # answers that arrive this close together give their leases back in one call
HTTP_TOO_MANY_REQUESTS: Final = 429
TWILIO_TOO_MANY_REQUESTS: Final = 20429


class _OnAnswer(Protocol):
    def __call__(self, *, throttled: bool) -> None: ...


class Throttled(Retry):
    """arq's Retry, for a 429 / 20429: the pacer lowers the account's in-flight cap on release."""


@dataclass
class Outcome:
    """What one run of the job did, for the canonical log line and metrics."""

    result: str
    status: str | None = None
    error_code: int | None = None
    request_s: float | None = None  # how long Twilio took to answer the create


class Sender:
    """Sends deliveries; one per worker process, shared by both lanes."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        batches: BatchCache,
        pacer: Pacer,
        twilio: TwilioClient,
        jobs: JobQueue,
        writes: WriteCoalescer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.writes = writes or WriteCoalescer(store)
        self.batches = batches
        self.pacer = pacer
        self.twilio = twilio
        self.jobs = jobs
        self.cfg = settings.worker
        self._permits: dict[str, Permits] = {}
        self._releases: dict[str, _Releases] = {}  # per account

    def permits(self, lane: str) -> Permits:
        """The lane's sends-in-flight budget in this process (``worker.max_jobs`` / ``urgent_max_jobs``)."""
        found = self._permits.get(lane)
        if found is None:
            size = self.cfg.urgent_max_jobs if lane == "urgent" else self.cfg.max_jobs
            found = self._permits[lane] = Permits(size)
        return found

    async def send_chunk(
        self, chunk_id: str, batch_id: str, delivery_ids: list[str], costs: list[int]
    ) -> list[Outcome]:
        """Run one chunk job; raises arq's ``Retry`` (after rewriting the chunk) for what must wait.

        The chunk goes out in waves, each as large as the lane's free send permits allow: one pacing
        call per wave, the wave's claims in one write batch, its creates concurrently. A permit comes
        back as soon as its send is recorded, so waves overlap.
        """
        if len(delivery_ids) != len(costs):
            raise ValueError(f"chunk {chunk_id}: {len(delivery_ids)} deliveries but {len(costs)} costs")
        batch = await self.batches.get(batch_id)
        now = time.time()
        if batch.row.send_at and now < batch.row.send_at:
            raise Retry(defer=batch.row.send_at - now)
        asks = list(zip(delivery_ids, costs, strict=True))
        if now >= batch.row.valid_until:  # past the deadline: each is only marked expired, no request
            return await self._send_many(batch, [(d, c, None) for d, c in asks], None)
        permits = self.permits(batch.row.priority)
        waves: list[asyncio.Task[list[Outcome]]] = []
        wait = None
        done = 0
        try:
            while done < len(asks):
                taken = await permits.take(len(asks) - done, batch.row.id)
                try:
                    grants, wait = await self.pacer.acquire_many(
                        account_sid=batch.account.account_sid,
                        sender=batch.pace_key,
                        sender_kind=batch.pace_kind,
                        channel=batch.channel.value,
                        asks=asks[done : done + taken],
                        lane=batch.row.priority,
                        flow=batch.row.id,
                    )
                except BaseException:
                    permits.give(taken)
                    raise
                permits.give(taken - len(grants))
                wave = [(d, c, g) for (d, c), g in zip(asks[done:], grants, strict=False)]
                done += len(wave)
                if wave:
                    waves.append(asyncio.create_task(self._send_many(batch, wave, permits)))
                if wait is not None:
                    break
        finally:
            results = await asyncio.gather(*waves, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        outcomes = [o for r in results if not isinstance(r, BaseException) for o in r]
        if wait is not None:
            rest = asks[done:]
            await self.jobs.rewrite_chunk(chunk_id, batch_id, [d for d, _ in rest], [c for _, c in rest])
            raise Retry(defer=max(wait.until - time.time(), 0.001))
        return outcomes

    async def _send_many(
        self, batch: PreparedBatch, going: Sequence[tuple[str, int, Grant | None]], permits: Permits | None
    ) -> list[Outcome]:
        """Claim, create and record a wave; each lease and permit goes back as soon as its send is done."""
        account_sid = batch.account.account_sid
        try:
            claimed = await asyncio.gather(*(self.writes.claim(d, account_sid) for d, _, _ in going))
        except Exception:
            await self.pacer.release_many([(g, False) for _, _, g in going if g], account_sid=account_sid)
            if permits is not None:
                permits.give(len(going))
            raise
        releases = self._releases.get(account_sid)
        if releases is None:
            releases = self._releases[account_sid] = _Releases(self.pacer, account_sid)
        tasks = []
        unclaimed: list[str] = []
        for (did, cost, grant), got in zip(going, claimed, strict=True):
            if got is None:
                unclaimed.append(did)
                releases.add(grant, throttled=False, permits=permits)
            else:
                tasks.append(self._member(batch, got[0], cost, grant, releases, permits, suppressed=got[1]))
        outcomes = list(await asyncio.gather(*tasks))
        await releases.flush()
        if unclaimed:
            outcomes += await self._unclaimed_many(batch, unclaimed)
        return outcomes

    async def _member(
        self,
        batch: PreparedBatch,
        claim: Claim,
        cost: int,
        grant: Grant | None,
        releases: _Releases,
        permits: Permits | None,
        *,
        suppressed: bool,
    ) -> Outcome:
        """One delivery of a chunk: attempt it; whatever must come back later gets a job of its own.

        Its lease goes back as soon as Twilio has answered (the request is no longer in flight), not
        after the result is recorded.
        """
        answered = False

        def on_answer(*, throttled: bool) -> None:
            nonlocal answered
            answered = True
            releases.add(grant, throttled=throttled, permits=permits)

        try:
            return await self._attempt(claim, batch, suppressed=suppressed, on_answer=on_answer)
        except Retry as again:
            due = time.time() + (again.defer_score or 0) / 1000
            await self.jobs.defer(batch.row.priority, SendJob(claim.id, batch.row.id, cost), at_s=due)
            return Outcome("deferred")
        finally:
            if not answered:
                releases.add(grant, throttled=False, permits=permits)

    async def _unclaimed_many(self, batch: PreparedBatch, delivery_ids: list[str]) -> list[Outcome]:
        """Chunk deliveries that were not claimable: an earlier attempt left unanswered gets a job to settle it."""
        outcomes = []
        for row in await self.store.get_deliveries(delivery_ids):
            if row.status == st.DISPATCHING and row.twilio_sid is None:
                due = (row.dispatched_at or 0.0) + self.cfg.callback_grace_s
                await self.jobs.defer(batch.row.priority, SendJob(row.id, row.batch_id, 1), at_s=due)
                outcomes.append(Outcome("deferred"))
            else:
                outcomes.append(Outcome("already_" + row.status, row.status))
        return outcomes

    async def send(self, delivery_id: str, batch_id: str, cost: int) -> Outcome:
        """Run one send job; raises arq's ``Retry`` to come back later."""
        batch = await self.batches.get(batch_id)
        now = time.time()
        if batch.row.send_at and now < batch.row.send_at:
            raise Retry(defer=batch.row.send_at - now)
        permits = self.permits(batch.row.priority)
        await permits.take(1, batch.row.id)
        try:
            return await self._send_one(delivery_id, batch, cost, now)
        finally:
            permits.give(1)

    async def _send_one(self, delivery_id: str, batch: PreparedBatch, cost: int, now: float) -> Outcome:
        if now < batch.row.valid_until:
            decision = await self.pacer.acquire(
                account_sid=batch.account.account_sid,
                sender=batch.pace_key,
                sender_kind=batch.pace_kind,
                channel=batch.channel.value,
                cost=cost,
                job_id=delivery_id,
                lane=batch.row.priority,
                flow=batch.row.id,
            )
            if not isinstance(decision, Grant):
                raise Retry(defer=max(decision.until - time.time(), 0.001))
        else:
            decision = None  # past its deadline: it will only be marked expired, no request
        throttled = False
        try:
            claimed = await self.writes.claim(delivery_id, batch.account.account_sid)
            if claimed is None:
                return await self._unclaimed(delivery_id, batch)
            claim, suppressed = claimed
            return await self._attempt(claim, batch, suppressed=suppressed)
        except Throttled:
            throttled = True  # Twilio said 429 / 20429: the account's in-flight cap must come down
            raise
        finally:
            if decision is not None:
                await self.pacer.release(decision, account_sid=batch.account.account_sid, throttled=throttled)

    async def _attempt(
        self, claim: Claim, batch: PreparedBatch, *, suppressed: bool, on_answer: _OnAnswer | None = None
    ) -> Outcome:
        now = time.time()
        if now >= claim.valid_until:
            await self._finish(claim.id, batch.channel, st.EXPIRED, None, "validity period ended before it was sent")
            return Outcome("expired", st.EXPIRED)
        if suppressed and batch.channel.is_message:
            await self._finish(claim.id, batch.channel, st.SUPPRESSED, None, "recipient opted out")
            return Outcome("suppressed", st.SUPPRESSED)
        kind = "call" if batch.channel is Channel.CALL else "message"
        params = batch.params(claim.to_number, claim.variables, self.settings.callback_url(kind, claim.id))
        sent: dict[str, Any] = {"params": [list(p) for p in params], "attempt": claim.attempts}
        try:
            created = await self.twilio.create(batch.account, batch.resource, params)
        except TwilioApiError as exc:
            if on_answer is not None:
                on_answer(throttled=exc.status == HTTP_TOO_MANY_REQUESTS or exc.code == TWILIO_TOO_MANY_REQUESTS)
            return await self._on_error(claim, batch, classify(exc.status, exc.code), exc, sent, now)
        except AmbiguousSend as exc:
            await self._event(claim.id, "attempt", None, None, f"ambiguous: {exc}; awaiting callback", sent, now)
            raise Retry(defer=self.cfg.callback_grace_s) from exc
        except TransportError as exc:
            return await self._on_error(claim, batch, classify(None, None), exc, sent, now)
        if on_answer is not None:
            on_answer(throttled=False)
        await self.writes.accepted(
            claim.id,
            channel=batch.channel,
            sid=created.sid,
            status=created.status,
            segments=created.num_segments,
            event={
                "at": time.time(),
                "status": created.status,
                "http_status": created.http_status,
                "duration_ms": created.duration_ms,
                "applied": True,
                "reason": f"created {created.sid}",
                "data": sent,
            },
        )
        return Outcome("sent", created.status, request_s=created.duration_ms / 1000)

    async def _on_error(
        self,
        claim: Claim,
        batch: PreparedBatch,
        verdict: Verdict,
        exc: ProviderError,
        sent: dict[str, Any],
        started: float,
    ) -> Outcome:
        api = exc if isinstance(exc, TwilioApiError) else None
        code = api.code if api else None
        message = api.message if api else str(exc)
        event = {
            "at": time.time(),
            "kind": "attempt",
            "error_code": code,
            "http_status": api.status if api else None,
            "duration_ms": (time.time() - started) * 1000,
            "reason": f"{verdict.action}: {verdict.reason}",
            "data": sent,
        }
        if verdict.action is Action.RETRY:
            nxt = next_attempt_at(
                time.time(),
                claim.attempts,
                deadline=claim.valid_until,
                max_attempts=self.cfg.max_attempts,
                base_s=self.cfg.backoff_base_s,
                cap_s=self.cfg.backoff_cap_s,
                retry_after_s=api.retry_after_s if api else None,
            )
            if nxt is None:
                final = st.EXPIRED if claim.attempts < self.cfg.max_attempts else st.FAILED
                await self.store.record_outcome(
                    claim.id, channel=batch.channel, status=final, error_code=code, error_message=message, event=event
                )
                return Outcome("gave_up", final, code)
            await self.store.record_outcome(
                claim.id, channel=batch.channel, status=st.RETRYING, error_code=code, error_message=message, event=event
            )
            if verdict.code == TWILIO_TOO_MANY_REQUESTS or verdict.http_status == HTTP_TOO_MANY_REQUESTS:
                raise Throttled(defer=nxt - time.time())
            raise Retry(defer=nxt - time.time())
        if verdict.action is Action.PAUSE_ACCOUNT:
            await self.pacer.pause_account(batch.account.account_sid, f"{code}: {message}")
            await self.store.record_outcome(
                claim.id,
                channel=batch.channel,
                status=st.RETRYING,
                error_code=code,
                error_message=message,
                event=event,
                refund_attempt=True,
            )
            log.error("account paused", account_sid=batch.account.account_sid, code=code, reason=message)
            raise Retry(defer=self.cfg.paused_recheck_s)
        if verdict.action is Action.SUPPRESS:
            await self.store.suppress(batch.account.account_sid, claim.to_number, source=f"error {code}")
            status = st.SUPPRESSED
        else:
            status = st.FAILED
        await self.store.record_outcome(
            claim.id, channel=batch.channel, status=status, error_code=code, error_message=message, event=event
        )
        return Outcome("failed", status, code)

    async def _unclaimed(self, delivery_id: str, batch: PreparedBatch) -> Outcome:
        """The job ran but the delivery was not claimable: settle an earlier attempt whose outcome is unknown."""
        row = await self.store.get_delivery(delivery_id)
        if row.status != st.DISPATCHING or row.twilio_sid is not None:
            return Outcome("already_" + row.status, row.status)
        dispatched = row.dispatched_at or 0.0
        wait = dispatched + self.cfg.callback_grace_s - time.time()
        if wait > 0:
            raise Retry(defer=wait)
        found = await self._look_up(row, batch)
        if found is not None:
            await self.store.record_accepted(
                delivery_id,
                channel=batch.channel,
                sid=str(found["sid"]),
                status=str(found.get("status") or "queued"),
                segments=int(found["num_segments"]) if found.get("num_segments") else None,
                event={"at": time.time(), "status": found.get("status"), "reason": "found in Twilio's list; adopted"},
            )
            return Outcome("adopted", str(found.get("status")))
        if not await self.store.reclaim_ambiguous(delivery_id, dispatched):
            # another worker took it over, or its batch was canceled (then nothing was sent, and nothing will be)
            canceled = await self.store.cancel_ambiguous(delivery_id, dispatched)
            return Outcome("canceled" if canceled else "taken_by_another_worker")
        claim = Claim(
            id=row.id,
            batch_id=row.batch_id,
            channel=row.channel,
            to_number=row.to_number,
            variables=row.variables,
            attempts=row.attempts + 1,
            valid_until=row.valid_until,
            dispatched_at=time.time(),
        )
        await self._event(
            delivery_id, "state", None, None, "not found in Twilio's list; sending again", {}, time.time()
        )
        suppressed = batch.channel.is_message and await self.store.is_suppressed(
            batch.account.account_sid, claim.to_number
        )
        return await self._attempt(claim, batch, suppressed=suppressed)

    async def _look_up(self, row: DeliveryRow, batch: PreparedBatch) -> dict[str, Any] | None:
        """Find the message or call an unanswered attempt may have created (same To/From, after the attempt)."""
        since = datetime.fromtimestamp((row.dispatched_at or 0) - 60, tz=UTC)
        filters = {"To": row.to_number}
        if batch.row.sender:
            filters["From"] = batch.row.sender
        if batch.channel is Channel.CALL:
            filters["StartTime>"] = since.strftime("%Y-%m-%d")
            items = await self.twilio.list(batch.account, "Calls.json", filters)
        else:
            filters["DateSent>"] = since.strftime("%Y-%m-%d")
            items = await self.twilio.list(batch.account, "Messages.json", filters)
            body = batch.body(row.variables)
            items = [m for m in items if body is None or m.get("body") == body]
        recent = [i for i in items if _created(i) is None or _created(i) >= since]  # type: ignore[operator]
        return recent[0] if recent else None

    async def _finish(self, delivery_id: str, channel: Channel, status: str, code: int | None, reason: str) -> None:
        await self.store.record_outcome(
            delivery_id,
            channel=channel,
            status=status,
            error_code=code,
            error_message=reason,
            event={"at": time.time(), "kind": "state", "status": status, "reason": reason},
        )

    async def _event(
        self,
        delivery_id: str,
        kind: str,
        status: str | None,
        code: int | None,
        reason: str,
        data: dict[str, Any],
        at: float,
    ) -> None:
        await self.store.add_event(
            {
                "delivery_id": delivery_id,
                "at": at,
                "kind": kind,
                "status": status,
                "error_code": code,
                "reason": reason,
                "data": data,
            }
        )


class Permits:
    """A lane's sends in flight in this process: a counting semaphore, fair between batches.

    ``take`` hands out as many permits as are free (at least one) when nobody is waiting. Once
    sends wait for permits, each freed permit goes to the next batch in turn (round robin over
    batches, first come first served within one), so a small batch is not held behind the chunks
    of a large one that started earlier.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def take(self, wanted: int, flow: str = "") -> int:
        """Wait until a permit is free; take up to ``wanted``."""
        if not self._waiting and self.free >= 1:
            got = min(wanted, self.free)
            self.free -= got
            return got
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(flow, deque()).append(fut)
        try:
            await fut  # resolved by give(): one permit is ours
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give(1)
            else:
                queue = self._waiting.get(flow)
                if queue is not None and fut in queue:
                    queue.remove(fut)
                    if not queue:
                        del self._waiting[flow]
            raise
        extra = min(wanted - 1, self.free) if not self._waiting else 0
        self.free -= extra
        return 1 + extra

    def give(self, n: int) -> None:
        """Return ``n`` permits; waiting batches get them one each, in turn."""
        self.free += max(n, 0)
        while self.free > 0 and self._waiting:
            flow, queue = self._waiting.popitem(last=False)
            fut = queue.popleft()
            if queue:
                self._waiting[flow] = queue  # back of the round
            if not fut.done():
                self.free -= 1
                fut.set_result(None)


class _Releases:
    """Gives an account's leases back in batches: one script call per ``RELEASE_LINGER_S`` at most.

    The send permit of each goes back at once (it is this process' own budget).
    """

    def __init__(self, pacer: Pacer, account_sid: str) -> None:
        self.pacer = pacer
        self.account_sid = account_sid
        self.pending: list[tuple[Grant, bool]] = []
        self.flushing: set[asyncio.Task[None]] = set()

    def add(self, grant: Grant | None, *, throttled: bool, permits: Permits | None) -> None:
        if permits is not None:
            permits.give(1)
        if grant is None:
            return
        self.pending.append((grant, throttled))
        if len(self.pending) == 1:
            task = asyncio.get_running_loop().create_task(self._flush_soon())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(RELEASE_LINGER_S)
        batch, self.pending = self.pending, []
        await self.pacer.release_many(batch, account_sid=self.account_sid)

    async def flush(self) -> None:
        """Wait until every lease added so far has been given back.

        A lease still pending belongs to a task that exists already: the one that will take it.
        """
        await asyncio.gather(*list(self.flushing))


def _created(item: dict[str, Any]) -> datetime | None:
    raw = item.get("date_created") or item.get("start_time")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
