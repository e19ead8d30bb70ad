"""The send jobs: pace, claim, create at Twilio, record.

A chunk job (``send_chunk``) does this for up to ``CHUNK_SIZE`` deliveries of one batch at once: one
pacing call for all of them, their claims and results in the shared write batches, their creates
concurrently. What cannot go now stays in the chunk, which comes back when the pacer says; a
delivery that needs anything else (a retry after an error, an unanswered create, an earlier attempt
to settle) continues in a delivery job of its own (``send``), which does the same for one delivery.

Order matters. Pacing comes first: the pacer books a sender slot a little ahead (no lease yet), so a
job that must wait longer holds neither a claim nor a worker slot (it is deferred with arq's
``Retry``). Then the claim, a guarded UPDATE, so a job that runs twice cannot send twice. Then the
job waits in process until its slot and redeems it for a grant and an account lease, and the create
goes out at once: nothing (no database write) stands between the grant and the request, so the
requests reach Twilio as evenly as the slots were given. A create whose outcome is unknown leaves the
delivery ``dispatching``: it is settled by its status callback, or by a look-up in Twilio's list
after a grace period, and only re-sent when that list shows nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import structlog
from arq.worker import Retry
from redis.exceptions import RedisError

from notifyq import statuses as st
from notifyq.backoff import next_attempt_at
from notifyq.classify import Action, Verdict, classify
from notifyq.errors import AmbiguousSend, ProviderError, TransportError, TwilioApiError, Unsendable
from notifyq.ops.metrics import (
    ACCEPTED,
    AWAIT_CALLBACK,
    NO_ANSWER,
    UNREACHED,
    WorkerMetrics,
    error_code_label,
    send_result,
)
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.queue.limiter import LOOSE_S, Grant, Pacer, Reservation, Wait, still_to_book
from notifyq.settings import Settings
from notifyq.statuses import Channel
from notifyq.store.coalesce import WriteCoalescer
from notifyq.store.records import Claim, DeliveryRow
from notifyq.store.repo import Store
from notifyq.worker.lookup import after_failure, find_attempt
from notifyq.worker.prepared import BatchCache, PreparedBatch

log = structlog.get_logger("notifyq.worker")


RELEASE_LINGER_S: Final = 0.002  # answers that arrive this close together give their leases back in one call
MAX_HELD_ROUNDS: Final = 8  # a held reservation that still cannot go after this many redeems is handed back
# slots are booked as far ahead as the claims take, within these bounds. Not further: a sender's schedule
# grows only at its end, so a slot far ahead would hold back every send after it; a claim that takes
# longer comes a little late to its slot and takes a current one (on a busy sender, a new one in turn)
CLAIM_LEAD_BOUNDS: Final = (0.005, 0.02)
REDEEMERS_KEPT: Final = 256
HTTP_TOO_MANY_REQUESTS: Final = 429
TWILIO_TOO_MANY_REQUESTS: Final = 20429


class Throttled(Retry):
    """arq's Retry, for a 429 / 20429: the pacer lowers the account's in-flight cap on release."""


class _NoTurn(Exception):
    """A held reservation did not become a grant: the account is paused, or the wait ran too long."""

    def __init__(self, reason: str, until: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


@dataclass
class Outcome:
    """What one run of the job did with a delivery (the metrics count each request as it is answered)."""

    result: str
    status: str | None = None
    error_code: int | None = None


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
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self.store = store
        self.writes = writes or WriteCoalescer(store)
        self.batches = batches
        self.pacer = pacer
        self.twilio = twilio
        self.jobs = jobs
        self.cfg = settings.worker
        self._permits: dict[str, Permits] = {}
        self._releases: dict[str, _Releases] = {}  # per account
        self._redeemers: OrderedDict[str, _Redeemer] = OrderedDict()  # per batch, the latest used kept
        self._claim_s = 0.01  # how long a wave's claims take (EWMA of mean and deviation): the slots' lead
        self._claim_dev = 0.005

    def _lead(self) -> float:
        """How far ahead to book slots: the claims must be done before the slot comes."""
        low, high = CLAIM_LEAD_BOUNDS
        return min(max(self._claim_s + 4 * self._claim_dev, low), high)

    def _learn_claim(self, took: float) -> None:
        self._claim_dev += 0.2 * (abs(took - self._claim_s) - self._claim_dev)
        self._claim_s += 0.2 * (took - self._claim_s)

    def _account_releases(self, account_sid: str) -> _Releases:
        found = self._releases.get(account_sid)
        if found is None:
            found = self._releases[account_sid] = _Releases(self.pacer, account_sid)
        return found

    def _redeemer(self, batch: PreparedBatch) -> _Redeemer:
        found = self._redeemers.pop(batch.row.id, None) or _Redeemer(self.pacer, batch)
        self._redeemers[batch.row.id] = found
        while len(self._redeemers) > REDEEMERS_KEPT:
            self._redeemers.popitem(last=False)
        return found

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
        call per wave (it books the sender slots), the wave's claims in one write batch, then each
        create at its slot, redeemed together with the others due at the same time. A permit comes
        back as soon as its send is answered, so waves overlap.
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
        pending = asks  # the deliveries without a slot yet; after a wait, the one holding a place in line first
        try:
            while pending:
                taken = await permits.take(len(pending), batch.row.id)
                try:
                    held, wait = await self.pacer.reserve_many(
                        account_sid=batch.account.account_sid,
                        sender=batch.pace_key,
                        sender_kind=batch.pace_kind,
                        channel=batch.channel.value,
                        asks=pending[:taken],
                        lane=batch.row.priority,
                        flow=batch.row.id,
                        lead_s=self._lead(),
                    )
                except BaseException:
                    permits.give(taken)
                    raise
                permits.give(taken - len(held))
                pending = still_to_book(pending[:taken], held, wait) + pending[taken:]
                if held:
                    wave = [(r.job_id, r.cost, r) for r in held]
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
            left = [d for d, _ in pending], [c for _, c in pending]
            await self.jobs.rewrite_chunk(chunk_id, batch_id, *left, lane=batch.row.priority)
            raise Retry(defer=max(wait.until - time.time(), 0.001))
        return outcomes

    async def _send_many(
        self, batch: PreparedBatch, going: Sequence[tuple[str, int, Reservation | None]], permits: Permits | None
    ) -> list[Outcome]:
        """Claim, create and record a wave; each lease and permit goes back as soon as its send is done.

        A slot whose delivery was not claimable stays unused (another late send may take it).
        """
        account_sid = batch.account.account_sid
        started = time.monotonic()
        try:
            claimed = await self.writes.claim_many([d for d, _, _ in going], account_sid)
        except Exception:
            if permits is not None:
                permits.give(len(going))
            raise
        self._learn_claim(time.monotonic() - started)
        releases = self._account_releases(account_sid)
        redeemer = self._redeemer(batch)
        tasks = []
        unclaimed: list[str] = []
        for (did, cost, held), got in zip(going, claimed, strict=True):
            turn = _Turn(redeemer, held, releases, permits)
            if got is None:
                unclaimed.append(did)
                turn.done()
            else:
                tasks.append(self._member(batch, got[0], cost, turn, suppressed=got[1]))
        outcomes = list(await asyncio.gather(*tasks))
        await releases.flush()
        if unclaimed:
            outcomes += await self._unclaimed_many(batch, unclaimed)
        return outcomes

    async def _member(self, batch: PreparedBatch, claim: Claim, cost: int, turn: _Turn, *, suppressed: bool) -> Outcome:
        """One delivery of a chunk: attempt it; whatever must come back later gets a job of its own.

        Its lease goes back as soon as Twilio has answered (the request is no longer in flight), not
        after the result is recorded.
        """
        try:
            return await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
        except Retry as again:
            due = time.time() + (again.defer_score or 0) / 1000
            await self.jobs.defer(batch.row.priority, SendJob(claim.id, batch.row.id, cost), at_s=due)
            return Outcome("deferred")
        finally:
            turn.done()

    async def _unclaimed_many(self, batch: PreparedBatch, delivery_ids: list[str]) -> list[Outcome]:
        """Chunk deliveries that were not claimable: an earlier attempt left unanswered gets a job to settle it."""
        outcomes = []
        for row in await self.store.get_deliveries(delivery_ids):
            if row.status == st.DISPATCHING and row.twilio_sid is None:
                due = (row.dispatched_at or 0.0) + self.cfg.callback_grace_s
                job = SendJob(row.id, row.batch_id, batch.cost(row.variables))
                await self.jobs.defer(batch.row.priority, job, at_s=due)
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
        held = None  # past its deadline: it will only be marked expired, no request
        if now < batch.row.valid_until:
            booked, wait = await self.pacer.reserve_many(
                account_sid=batch.account.account_sid,
                sender=batch.pace_key,
                sender_kind=batch.pace_kind,
                channel=batch.channel.value,
                asks=[(delivery_id, cost)],
                lane=batch.row.priority,
                flow=batch.row.id,
                lead_s=self._lead(),
            )
            if wait is not None:
                raise Retry(defer=max(wait.until - time.time(), 0.001))
            held = booked[0]
        releases = self._account_releases(batch.account.account_sid)
        turn = _Turn(self._redeemer(batch), held, releases, None)
        try:
            started = time.monotonic()
            claimed = await self.writes.claim(delivery_id, batch.account.account_sid)
            self._learn_claim(time.monotonic() - started)
            if claimed is None:
                # an earlier attempt to settle first; a new send, if it comes to one, books its own slot
                # after the look-up (the one booked here would be long past by then)
                turn.done()
                return await self._unclaimed(delivery_id, batch)
            claim, suppressed = claimed
            if held is not None and batch.cost(claim.variables) != cost:
                # the job was queued with another cost than the message has: the slot would be the wrong size
                turn.done()
                return await self._paced_attempt(claim, batch, suppressed=suppressed)
            return await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
        finally:
            turn.done()
            await releases.flush()

    async def _paced_attempt(self, claim: Claim, batch: PreparedBatch, *, suppressed: bool) -> Outcome:
        """Attempt a claimed delivery that holds no slot yet: book one now, at the message's own cost.

        When the sender has no slot for it within the pacer's horizon, the delivery goes back to
        ``retrying`` (its attempt refunded) and its job comes back when the pacer says.
        """
        held = None
        if time.time() < claim.valid_until and not (suppressed and batch.channel.is_message):
            booked, wait = await self.pacer.reserve_many(
                account_sid=batch.account.account_sid,
                sender=batch.pace_key,
                sender_kind=batch.pace_kind,
                channel=batch.channel.value,
                asks=[(claim.id, batch.cost(claim.variables))],
                lane=batch.row.priority,
                flow=batch.row.id,
                lead_s=self._lead(),
            )
            if wait is not None:
                await self._hand_back(claim, batch, wait.reason, wait.until)
            held = booked[0]
        turn = _Turn(self._redeemer(batch), held, self._account_releases(batch.account.account_sid), None)
        try:
            return await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
        finally:
            turn.done()

    async def _attempt(self, claim: Claim, batch: PreparedBatch, *, suppressed: bool, turn: _Turn) -> Outcome:
        """A claimed delivery: suppressed, or expired, or sent at its slot (``turn``: nothing goes without one)."""
        if time.time() < claim.valid_until and suppressed and batch.channel.is_message:
            await self._finish(claim.id, batch.channel, st.SUPPRESSED, None, "recipient opted out")
            self.metrics.skipped.labels(reason="suppressed").inc()
            return Outcome("suppressed", st.SUPPRESSED)
        if time.time() < claim.valid_until:
            await self._take_turn(claim, batch, turn)
        if time.time() >= claim.valid_until:  # before it was claimed, or while it waited for its slot
            turn.done()
            await self._finish(claim.id, batch.channel, st.EXPIRED, None, "validity period ended before it was sent")
            self.metrics.skipped.labels(reason="expired").inc()
            return Outcome("expired", st.EXPIRED)
        return await self._create(claim, batch, turn)

    async def _create(self, claim: Claim, batch: PreparedBatch, turn: _Turn) -> Outcome:
        now = time.time()
        try:
            form = batch.form(claim.to_number, claim.variables, claim.id)
        except Unsendable as exc:  # its own fault: it fails alone, no request made; the chunk goes on
            turn.done()
            await self._finish(claim.id, batch.channel, st.FAILED, None, f"not sent: {exc.reason}")
            self.metrics.skipped.labels(reason="unsendable").inc()
            return Outcome("failed", st.FAILED)
        sent: dict[str, Any] = {"params": form.items, "attempt": claim.attempts}  # (name, value) pairs: JSON arrays
        started = time.perf_counter()
        try:
            created = await self.twilio.create(batch.account, batch.resource, form)
        except TwilioApiError as exc:
            self.metrics.request(send_result(exc.status), time.perf_counter() - started)
            turn.done(throttled=exc.status == HTTP_TOO_MANY_REQUESTS or exc.code == TWILIO_TOO_MANY_REQUESTS)
            return await self._on_error(claim, batch, classify(exc.status, exc.code), exc, sent, now)
        except AmbiguousSend as exc:
            self.metrics.request(NO_ANSWER, time.perf_counter() - started)
            self.metrics.error(NO_ANSWER, AWAIT_CALLBACK)
            await self._event(claim.id, "attempt", None, None, f"ambiguous: {exc}; awaiting callback", sent, now)
            raise Retry(defer=self.cfg.callback_grace_s) from exc
        except TransportError as exc:
            self.metrics.request(UNREACHED, None)
            return await self._on_error(claim, batch, classify(None, None), exc, sent, now)
        self.metrics.request(ACCEPTED, time.perf_counter() - started)
        turn.done()
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
        return Outcome("sent", created.status)

    async def _take_turn(self, claim: Claim, batch: PreparedBatch, turn: _Turn) -> None:
        """Wait for the send's slot and take it; if it does not come, hand the delivery back (``Retry``)."""
        try:
            await turn.take()
        except _NoTurn as no:
            await self._hand_back(claim, batch, no.reason, no.until)
        except (RedisError, OSError) as exc:  # the pacer is unreachable: nothing was sent
            await self._hand_back(claim, batch, f"pacer unavailable: {exc}", time.time() + self.cfg.unavailable_retry_s)

    async def _hand_back(
        self,
        claim: Claim,
        batch: PreparedBatch,
        reason: str,
        until: float,
        *,
        error_code: int | None = None,
        event: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Put a claimed delivery that may not go now back to ``retrying`` until ``until``.

        Its turn did not come, or its account is paused: the attempt is refunded (not the recipient's fault).
        """
        await self.store.record_outcome(
            claim.id,
            channel=batch.channel,
            status=st.RETRYING,
            error_code=error_code,
            error_message=reason,
            event=event or {"at": time.time(), "kind": "state", "reason": f"not sent: {reason}"},
            refund_attempt=True,
        )
        raise Retry(defer=max(until - time.time(), 0.001))

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
        self.metrics.error(error_code_label(api.status if api else None, code), verdict.action)
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
            log.error("account paused", account_sid=batch.account.account_sid, code=code, reason=message)
            await self._hand_back(
                claim, batch, message, time.time() + self.cfg.paused_recheck_s, error_code=code, event=event
            )
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
        try:
            found = await find_attempt(self.twilio, self.pacer, row, batch)
        except ProviderError as exc:
            return await self._look_up_failed(row, batch, exc)
        if found is not None:
            await self.store.record_accepted(
                delivery_id,
                channel=batch.channel,
                sid=str(found["sid"]),
                status=str(found.get("status") or "queued"),
                segments=_segments(found.get("num_segments")),
                event={"at": time.time(), "status": found.get("status"), "reason": "found in Twilio's list; adopted"},
            )
            return Outcome("adopted", str(found.get("status")))
        if row.attempts >= self.cfg.max_attempts:
            return await self._give_up_unanswered(row, dispatched)
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
        return await self._paced_attempt(claim, batch, suppressed=suppressed)

    async def _give_up_unanswered(self, row: DeliveryRow, dispatched: float) -> Outcome:
        """End a delivery whose ``max_attempts`` creates all went unanswered and none is in Twilio's list.

        A create lost before Twilio recorded it leaves nothing to find: without a bound such a delivery
        would be sent again every ``callback_grace_s`` until its validity ended.
        """
        reason = (
            f"no answer to {row.attempts} attempts (worker.max_attempts), and Twilio's list shows none of them; "
            "not sent again"
        )
        if await self.store.fail_unanswered(row.id, dispatched, reason):
            log.warning("unanswered attempts given up", delivery_id=row.id, attempts=row.attempts)
            self.metrics.skipped.labels(reason="unanswered").inc()
            return Outcome("gave_up", st.FAILED)
        canceled = await self.store.cancel_ambiguous(row.id, dispatched)
        return Outcome("canceled" if canceled else "taken_by_another_worker")

    async def _look_up_failed(self, row: DeliveryRow, batch: PreparedBatch, exc: ProviderError) -> Outcome:
        """Note the failed look-up on the delivery; come back after its backoff, or leave it to the reconciler.

        The delivery stays ``dispatching`` either way, with the error as its last one; its ``updated_at``
        moves, so the reconciler queues it again only ``reconcile.unanswered_after_s`` after this.
        """
        now = time.time()
        failed_before = await self.store.count_events(row.id, kind="lookup", since=row.dispatched_at or 0.0)
        decision = after_failure(exc, failed_before, now=now, worker=self.cfg)
        api = exc if isinstance(exc, TwilioApiError) else None
        code = api.code if api else None
        message = api.message if api else str(exc)
        if decision.verdict.action is Action.PAUSE_ACCOUNT:
            await self.pacer.pause_account(batch.account.account_sid, f"{code}: {message}")
            log.error("account paused", account_sid=batch.account.account_sid, code=code, reason=message)
        log.warning("look-up failed", delivery_id=row.id, error=message, decision=decision.reason)
        await self.store.record_outcome(
            row.id,
            channel=batch.channel,
            status=st.DISPATCHING,
            error_code=code,
            error_message=message,
            event={
                "at": now,
                "kind": "lookup",
                "http_status": api.status if api else None,
                "reason": decision.reason,
            },
        )
        if decision.again_at is None:
            return Outcome("lookup_failed", st.DISPATCHING, code)
        raise Retry(defer=max(decision.again_at - time.time(), 0.001))

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


class _Turn:
    """One send's turn at its sender and account: the slot booked for it, redeemed right before the request.

    ``done`` gives the lease (if one was granted) and the send permit back, once.
    """

    __slots__ = ("closed", "grant", "held", "permits", "redeemer", "releases")

    def __init__(
        self, redeemer: _Redeemer, held: Reservation | None, releases: _Releases, permits: Permits | None
    ) -> None:
        self.redeemer = redeemer
        self.held = held
        self.releases = releases
        self.permits = permits
        self.grant: Grant | None = None
        self.closed = False

    async def take(self) -> None:
        if self.grant is not None:
            return
        if self.held is None:  # nothing goes unpaced: a send without a slot is handed back to book one
            raise _NoTurn("no sender slot was booked for this send", time.time())
        self.grant = await self.redeemer.take(self.held)

    def done(self, *, throttled: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.releases.add(self.grant, throttled=throttled, permits=self.permits)


class _Redeemer:
    """Redeems one batch's held reservations as they come due; those due together share one script call."""

    def __init__(self, pacer: Pacer, batch: PreparedBatch) -> None:
        self.pacer = pacer
        self.batch = batch
        self.pending: list[tuple[Reservation, asyncio.Future[Grant | Wait]]] = []
        self.flushing: set[asyncio.Task[None]] = set()

    async def take(self, held: Reservation) -> Grant:
        """Wait until the slot, then redeem; a slot missed or an account full means a later one, in turn."""
        early = self.pacer.tuning.early_s
        answer: Grant | Wait | None = None
        for _ in range(MAX_HELD_ROUNDS):
            pause = held.at - early - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            answer = await self._redeem(held)
            if isinstance(answer, Grant):
                age = time.time() - answer.granted_at
                if age <= self.pacer.jitter_s / 2 or (answer.loose and age <= LOOSE_S):
                    return answer
                # this process was held up between the grant and now for more than its half of the time the
                # schedule allows a request to take on its way (the other half is the network's and
                # Twilio's), on a sender near its rate: the slot stays used, and the send takes a new one.
                # (Far from its rate, a late request cannot fill a second: an overloaded worker then sends
                # what it was granted instead of asking again, which would load it more.)
                await self.pacer.release_many([(answer, False)], account_sid=self.batch.account.account_sid)
                held = Reservation(held.job_id, held.cost, held.token, time.time())
                continue
            if answer.reserved is None or answer.reason.startswith("account paused"):
                raise _NoTurn(answer.reason, answer.until)
            held = Reservation(held.job_id, held.cost, answer.reserved, answer.until)
        reason = answer.reason if isinstance(answer, Wait) else "no slot"
        raise _NoTurn(f"still waiting after {MAX_HELD_ROUNDS} turns: {reason}", held.at)

    def _redeem(self, held: Reservation) -> asyncio.Future[Grant | Wait]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Grant | Wait] = loop.create_future()
        self.pending.append((held, fut))
        if len(self.pending) == 1:
            task = loop.create_task(self._flush())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)
        return fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the others whose slot came in this turn of the loop join the call
        due, self.pending = self.pending, []
        batch = self.batch
        try:
            answers = await self.pacer.redeem_many(
                account_sid=batch.account.account_sid,
                sender=batch.pace_key,
                sender_kind=batch.pace_kind,
                channel=batch.channel.value,
                held=[held for held, _ in due],
                lane=batch.row.priority,
                flow=batch.row.id,
            )
        except Exception as exc:  # noqa: BLE001 - every waiting send gets the error
            for _, fut in due:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), answer in zip(due, answers, strict=True):
            if not fut.done():
                fut.set_result(answer)


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


def _segments(raw: Any) -> int | None:
    """A record's ``num_segments`` (Twilio sends it as a string), or None when it is missing or not a number."""
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None
