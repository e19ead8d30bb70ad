"""The send path: pace, claim, create at Twilio, record.

A chunk job (``Dispatcher.send_chunk``) does this for up to ``CHUNK_SIZE`` deliveries of one batch at
once: one pacing call for all of them, their claims and results in the shared flushes, their
creates concurrently. What cannot go now stays in the chunk (``Owed``), which comes back when the
pacer says; a delivery that needs anything else (a retry after an error, an unanswered create, an
earlier attempt to settle) continues in a delivery job of its own (``Dispatcher.send``), which does
the same for one delivery.

Order matters. Pacing comes first: the pacer books a sender slot a little ahead (no lease yet), so a
job that must wait longer holds neither a claim nor a worker slot (it is deferred). Then the claim, a
guarded UPDATE, so a job that runs twice cannot send twice. Then the send waits in process until its
slot and redeems it for a grant and an account lease (``worker/turns.py``), and the create goes out
at once: nothing (no database write) stands between the grant and the request, so the requests
reach Twilio as evenly as the slots were given. A create whose outcome is unknown leaves the
delivery ``dispatching``: it is settled by its status callback, or by a look-up in Twilio's list
after a grace period, and only re-sent when that list shows nothing (``worker/settle.py``).

Every way a run ends is a value (``worker/outcomes.py``): ``Done``, ``Deferred``, a ``ChunkRun``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final

import structlog
from redis.exceptions import RedisError

from notifyq import statuses as st
from notifyq.accounts import DEAUTHORIZED_REASON
from notifyq.backoff import next_attempt_at
from notifyq.classify import Action, Verdict, classify
from notifyq.errors import AmbiguousSend, NotFound, ProviderError, TransportError, TwilioApiError, Unsendable
from notifyq.pacing import Pacer, Reservation, Wait, still_to_book
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.settings import Settings
from notifyq.statuses import Channel
from notifyq.store import Claim, Store, WriteCoalescer
from notifyq.worker.events import DeliveryEvent
from notifyq.worker.metrics import (
    ACCEPTED,
    AWAIT_CALLBACK,
    NO_ANSWER,
    UNREACHED,
    WorkerMetrics,
    error_code_label,
    send_result,
)
from notifyq.worker.outcomes import ChunkRun, Deferred, Done, Outcome, Owed, Throttled, defer_s
from notifyq.worker.permits import Permits
from notifyq.worker.prepared import BatchCache, PreparedBatch
from notifyq.worker.settle import Resend, Settler
from notifyq.worker.turns import NoTurn, Turn, Turns

log = structlog.get_logger("notifyq.worker")

# slots are booked as far ahead as the claims take, within these bounds. Not further: a sender's schedule
# grows only at its end, so a slot far ahead would hold back every send after it; a claim that takes
# longer comes a little late to its slot and takes a current one (on a busy sender, a new one in turn)
CLAIM_LEAD_BOUNDS: Final = (0.005, 0.02)
HTTP_TOO_MANY_REQUESTS: Final = 429
TWILIO_TOO_MANY_REQUESTS: Final = 20429


class Dispatcher:
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
        self.turns = Turns(pacer)
        self.settler = Settler(self.cfg, store, twilio, pacer, jobs, self.metrics)
        self._permits: dict[str, Permits] = {}
        # accounts this process paused: their sends granted before the pause ask the pacer before going
        self._paused_here: set[str] = set()
        self._claim_s = 0.01  # how long a wave's claims take (EWMA of mean and deviation): the slots' lead
        self._claim_dev = 0.005

    def _lead(self) -> float:
        """How far ahead to book slots: the claims must be done before the slot comes."""
        low, high = CLAIM_LEAD_BOUNDS
        return min(max(self._claim_s + 4 * self._claim_dev, low), high)

    def _learn_claim(self, took: float) -> None:
        self._claim_dev += 0.2 * (abs(took - self._claim_s) - self._claim_dev)
        self._claim_s += 0.2 * (took - self._claim_s)

    async def _book(
        self, batch: PreparedBatch, asks: Sequence[tuple[str, int]]
    ) -> tuple[list[Reservation], Wait | None]:
        """Book sender slots for ``asks`` (delivery id, cost), as far ahead as the claims take (``_lead``)."""
        return await self.pacer.reserve_many(
            account_sid=batch.account.account_sid,
            sender=batch.pace_key,
            sender_kind=batch.pace_kind,
            channel=batch.channel.value,
            asks=asks,
            lane=batch.row.priority,
            flow=batch.row.id,
            lead_s=self._lead(),
        )

    async def _revoked(self, batch: PreparedBatch) -> bool:
        """Whether the batch's account was deauthorised (Twilio Connect): its jobs cancel instead of sending."""
        try:
            account = await self.batches.accounts.resolve(batch.row.account)
        except NotFound:
            return False  # a removed account: its sends fail as Unsendable, as before
        return account.deauthorized

    async def _not_now(self, batch: PreparedBatch, delivery_ids: list[str]) -> ChunkRun | Deferred | None:
        """A chunk that goes nowhere now: its account was deauthorised (canceled), or its send_at has not come."""
        if await self._revoked(batch):
            canceled = await self.store.cancel_for_account(delivery_ids, DEAUTHORIZED_REASON)
            log.warning("account deauthorized: chunk canceled", batch_id=batch.row.id, canceled=canceled)
            return ChunkRun([Done(Outcome.CANCELED, st.CANCELED)] * len(delivery_ids))
        if batch.row.send_at and time.time() < batch.row.send_at:
            return Deferred(batch.row.send_at, "the batch's send_at has not come")
        return None

    def permits(self, lane: str) -> Permits:
        """The lane's sends-in-flight budget in this process (``worker.max_jobs`` / ``urgent_max_jobs``)."""
        found = self._permits.get(lane)
        if found is None:
            size = self.cfg.urgent_max_jobs if lane == "urgent" else self.cfg.max_jobs
            found = self._permits[lane] = Permits(size)
        return found

    async def send_chunk(
        self, batch_id: str, delivery_ids: list[str], costs: list[int], *, booked: Callable[[], object] = lambda: None
    ) -> ChunkRun | Deferred:
        """Run one chunk job: what became of the deliveries it took, and what it still owes.

        The chunk goes out in waves, each as large as the lane's free send permits allow: one pacing
        call per wave (it books the sender slots), the wave's claims in one flush, then each
        create at its slot, redeemed together with the others due at the same time. A permit comes
        back as soon as its send is answered, so waves overlap. ``Deferred``: the batch's ``send_at``
        has not come. ``booked`` is called once the chunk has booked all it will in this run (what is left
        is its sends waiting for their slots).
        """
        if len(delivery_ids) != len(costs):
            raise ValueError(f"chunk of batch {batch_id}: {len(delivery_ids)} deliveries but {len(costs)} costs")
        batch = await self.batches.get(batch_id)
        not_now = await self._not_now(batch, delivery_ids)
        if not_now is not None:
            return not_now
        now = time.time()
        asks = list(zip(delivery_ids, costs, strict=True))
        if now >= batch.row.valid_until:  # past the deadline: each is only marked expired, no request
            return ChunkRun(await self._send_many(batch, [(d, c, None) for d, c in asks], None))
        permits = self.permits(batch.row.priority)
        waves: list[asyncio.Task[list[Done]]] = []
        wait = None
        pending = asks  # the deliveries without a slot yet; after a wait, the one holding a place in line first
        try:
            while pending:
                taken = await permits.take(len(pending), batch.row.id)
                try:
                    held, wait = await self._book(batch, pending[:taken])
                except BaseException:
                    permits.give(taken)
                    raise
                permits.give(taken - len(held))
                pending = still_to_book(pending[:taken], held, wait) + pending[taken:]
                if held:
                    wave = [(r.job_id, r.cost, r) for r in held]
                    waves.append(asyncio.create_task(self._send_many(batch, wave, permits)))
                if wait is not None or _failed(waves):
                    break  # a wave that failed (the store or Redis down) ends the chunk: the job raises it
            booked()
        finally:
            results = await asyncio.gather(*waves, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        done = [d for r in results if not isinstance(r, BaseException) for d in r]
        if wait is None:
            return ChunkRun(done)
        ids, owed_costs = [d for d, _ in pending], [c for _, c in pending]
        return ChunkRun(done, Owed(ids, owed_costs, batch.row.priority, wait.until, wait.reason))

    async def _send_many(
        self, batch: PreparedBatch, going: Sequence[tuple[str, int, Reservation | None]], permits: Permits | None
    ) -> list[Done]:
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
        tasks = []
        unclaimed: list[str] = []
        for (did, cost, held), got in zip(going, claimed, strict=True):
            turn = self.turns.turn(batch, held, permits)
            if got is None:
                unclaimed.append(did)
                turn.done()
            else:
                tasks.append(self._member(batch, got[0], cost, turn, suppressed=got[1]))
        done = list(await asyncio.gather(*tasks))
        await self.turns.releases(account_sid).flush()
        if unclaimed:
            done += await self.settler.unclaimed_in_chunk(batch, unclaimed)
        return done

    async def _member(self, batch: PreparedBatch, claim: Claim, cost: int, turn: Turn, *, suppressed: bool) -> Done:
        """One delivery of a chunk: attempt it; whatever must come back later gets a job of its own.

        Its lease goes back as soon as Twilio has answered (the request is no longer in flight), not
        after the result is recorded.
        """
        try:
            result = await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
            if isinstance(result, Deferred):
                due = time.time() + defer_s(result.until)
                await self.jobs.defer(batch.row.priority, SendJob(claim.id, batch.row.id, cost), at_s=due)
                return Done(Outcome.DEFERRED)
            return result
        finally:
            turn.done()

    async def send(self, delivery_id: str, batch_id: str, cost: int) -> Done | Deferred:
        """Run one delivery job: what became of the delivery, or when its job comes back."""
        batch = await self.batches.get(batch_id)
        if await self._revoked(batch):
            await self.store.cancel_for_account([delivery_id], DEAUTHORIZED_REASON)
            return Done(Outcome.CANCELED, st.CANCELED)
        now = time.time()
        if batch.row.send_at and now < batch.row.send_at:
            return Deferred(batch.row.send_at, "the batch's send_at has not come")
        permits = self.permits(batch.row.priority)
        await permits.take(1, batch.row.id)
        try:
            return await self._send_one(delivery_id, batch, cost, now)
        finally:
            permits.give(1)

    async def _send_one(self, delivery_id: str, batch: PreparedBatch, cost: int, now: float) -> Done | Deferred:
        held = None  # past its deadline: it will only be marked expired, no request
        if now < batch.row.valid_until:
            booked, wait = await self._book(batch, [(delivery_id, cost)])
            if wait is not None:
                return Deferred(wait.until, wait.reason)
            held = booked[0]
        turn = self.turns.turn(batch, held, None)
        try:
            started = time.monotonic()
            claimed = await self.writes.claim(delivery_id, batch.account.account_sid)
            self._learn_claim(time.monotonic() - started)
            if claimed is None:
                # an earlier attempt to settle first; a new send, if it comes to one, books its own slot
                # after the look-up (the one booked here would be long past by then)
                turn.done()
                settled = await self.settler.unclaimed(delivery_id, batch)
                if isinstance(settled, Resend):
                    return await self._paced_attempt(settled.claim, batch, suppressed=settled.suppressed)
                return settled
            claim, suppressed = claimed
            if held is not None and batch.cost(claim.variables) != cost:
                # the job was queued with another cost than the message has: the slot would be the wrong size
                turn.done()
                return await self._paced_attempt(claim, batch, suppressed=suppressed)
            return await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
        finally:
            turn.done()
            await self.turns.releases(batch.account.account_sid).flush()

    async def _paced_attempt(self, claim: Claim, batch: PreparedBatch, *, suppressed: bool) -> Done | Deferred:
        """Attempt a claimed delivery that holds no slot yet: book one now, at the message's own cost.

        When the sender has no slot for it within the pacer's horizon, the delivery goes back to
        ``retrying`` (its attempt refunded) and its job comes back when the pacer says.
        """
        held = None
        if time.time() < claim.valid_until and not (suppressed and batch.channel.is_message):
            booked, wait = await self._book(batch, [(claim.id, batch.cost(claim.variables))])
            if wait is not None:
                return await self._hand_back(claim, batch, wait.reason, wait.until)
            held = booked[0]
        turn = self.turns.turn(batch, held, None)
        try:
            return await self._attempt(claim, batch, suppressed=suppressed, turn=turn)
        finally:
            turn.done()

    async def _attempt(self, claim: Claim, batch: PreparedBatch, *, suppressed: bool, turn: Turn) -> Done | Deferred:
        """A claimed delivery: suppressed, or expired, or sent at its slot (``turn``: nothing goes without one)."""
        if time.time() < claim.valid_until and suppressed and batch.channel.is_message:
            await self._finish(claim.id, batch.channel, st.SUPPRESSED, "recipient opted out")
            self.metrics.skipped.labels(reason="suppressed").inc()
            return Done(Outcome.SUPPRESSED, st.SUPPRESSED)
        if time.time() < claim.valid_until:
            handed_back = await self._take_turn(claim, batch, turn)
            if handed_back is not None:
                return handed_back
            ours = await self._still_ours(claim)
            if ours is None:
                turn.done()
                return Done(Outcome.TAKEN_BY_ANOTHER_WORKER)
            claim = ours
            refused = await self._paused_meanwhile(batch)
            if refused is not None:
                turn.done()
                until = time.time() + self.cfg.paused_recheck_s
                return await self._hand_back(claim, batch, f"account paused: {refused}", until)
        if time.time() >= claim.valid_until:  # before it was claimed, or while it waited for its slot
            turn.done()
            await self._finish(claim.id, batch.channel, st.EXPIRED, "validity period ended before it was sent")
            self.metrics.skipped.labels(reason="expired").inc()
            return Done(Outcome.EXPIRED, st.EXPIRED)
        return await self._create(claim, batch, turn)

    async def _create(self, claim: Claim, batch: PreparedBatch, turn: Turn) -> Done | Deferred:
        now = time.time()
        try:
            form = batch.form(claim.to_number, claim.variables, claim.id)
        except Unsendable as exc:  # its own fault: it fails alone, no request made; the chunk goes on
            turn.done()
            await self._finish(claim.id, batch.channel, st.FAILED, f"not sent: {exc.reason}")
            self.metrics.skipped.labels(reason="unsendable").inc()
            return Done(Outcome.FAILED, st.FAILED)
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
            unanswered = DeliveryEvent("attempt", now, f"ambiguous: {exc}; awaiting callback", data=sent)
            await self.store.add_event(unanswered.row(claim.id))
            return Deferred(time.time() + self.cfg.callback_grace_s, "the create got no answer; awaiting callback")
        except TransportError as exc:
            self.metrics.request(UNREACHED, None)
            return await self._on_error(claim, batch, classify(None, None), exc, sent, now)
        self.metrics.request(ACCEPTED, time.perf_counter() - started)
        turn.done()
        accepted = DeliveryEvent(
            "attempt",
            time.time(),
            f"created {created.sid}",
            status=created.status,
            http_status=created.http_status,
            duration_ms=created.duration_ms,
            applied=True,
            data=sent,
        )
        await self.writes.accepted(
            claim.id,
            channel=batch.channel,
            sid=created.sid,
            status=created.status,
            segments=created.num_segments,
            event=accepted.row(),
        )
        return Done(Outcome.SENT, created.status)

    async def _still_ours(self, claim: Claim) -> Claim | None:
        """The claim of a send that is about to go, if it may still go (None: it must not).

        An attempt counts as unanswered ``callback_grace_s`` after its ``dispatched_at``: then another
        worker may look it up in Twilio's list and send again. A request started later than the grace
        less the longest a request can take could still be in flight then, so a send that waited that
        long for its turn first moves its attempt's start to now, guarded on the old one; if another
        worker has taken the attempt over meanwhile, it does not send. (A grace shorter than the
        longest request cannot keep a request in flight from being looked up; then the grace itself.)
        """
        twilio = self.settings.twilio
        grace = self.cfg.callback_grace_s
        longest = twilio.connect_timeout_s + twilio.request_timeout_s
        send_by = claim.dispatched_at + (grace - longest if grace > longest else grace)
        now = time.time()
        if now < send_by:
            return claim
        if not await self.store.restamp_attempt(claim.id, claim.dispatched_at, now):
            return None
        return replace(claim, dispatched_at=now)

    async def _paused_meanwhile(self, batch: PreparedBatch) -> str | None:
        """Why the batch's account is paused, when this process paused it; else None.

        A send granted before its account was paused would still go out, with the credentials Twilio
        has just refused. Only an account this process paused is asked about, so the common path
        costs no Redis call; a grant given after a pause by another process is refused by the pacer.
        """
        sid = batch.account.account_sid
        if sid not in self._paused_here:
            return None
        try:
            reason = await self.pacer.admin.paused(sid)
        except (RedisError, OSError) as exc:  # unknown whether it was resumed: it does not go yet
            return f"unknown, the pacer is unavailable: {exc}"
        if reason is None:  # resumed
            self._paused_here.discard(sid)
        return reason

    async def _take_turn(self, claim: Claim, batch: PreparedBatch, turn: Turn) -> Deferred | None:
        """Wait for the send's slot and take it; if it does not come, hand the delivery back (``Deferred``)."""
        try:
            await turn.take()
        except NoTurn as no:
            return await self._hand_back(claim, batch, no.reason, no.until)
        except (RedisError, OSError) as exc:  # the pacer is unreachable: nothing was sent
            until = time.time() + self.cfg.unavailable_retry_s
            return await self._hand_back(claim, batch, f"pacer unavailable: {exc}", until)
        return None

    async def _hand_back(
        self,
        claim: Claim,
        batch: PreparedBatch,
        reason: str,
        until: float,
        *,
        error_code: int | None = None,
        event: DeliveryEvent | None = None,
    ) -> Deferred:
        """Put a claimed delivery that may not go now back to ``retrying`` until ``until``.

        Its turn did not come, or its account is paused: the attempt is refunded (not the recipient's fault).
        """
        await self.store.record_outcome(
            claim.id,
            channel=batch.channel,
            status=st.RETRYING,
            error_code=error_code,
            error_message=reason,
            event=(event or DeliveryEvent("state", time.time(), f"not sent: {reason}")).row(),
            refund_attempt=True,
            attempt_at=claim.dispatched_at,
        )
        return Deferred(until, reason)

    async def _on_error(
        self,
        claim: Claim,
        batch: PreparedBatch,
        verdict: Verdict,
        exc: ProviderError,
        sent: dict[str, Any],
        started: float,
    ) -> Done | Deferred:
        api = exc if isinstance(exc, TwilioApiError) else None
        code = api.code if api else None
        message = api.message if api else str(exc)
        code_label = error_code_label(api.status if api else None, code)
        self.metrics.error(code_label, verdict.action)
        event = DeliveryEvent(
            "attempt",
            time.time(),
            f"{verdict.action}: {verdict.reason}",
            error_code=code,
            http_status=api.status if api else None,
            duration_ms=(time.time() - started) * 1000,
            data=sent,
        )
        row = event.row()
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
                    claim.id, channel=batch.channel, status=final, error_code=code, error_message=message, event=row
                )
                return Done(Outcome.GAVE_UP, final, code)
            await self.store.record_outcome(
                claim.id, channel=batch.channel, status=st.RETRYING, error_code=code, error_message=message, event=row
            )
            self.metrics.retries.labels(code=code_label).inc()
            if verdict.code == TWILIO_TOO_MANY_REQUESTS or verdict.http_status == HTTP_TOO_MANY_REQUESTS:
                return Throttled(nxt, message)
            return Deferred(nxt, message)
        if verdict.action is Action.PAUSE_ACCOUNT:
            await self.pacer.admin.pause_account(batch.account.account_sid, f"{code}: {message}")
            self._paused_here.add(batch.account.account_sid)
            log.error("account paused", account_sid=batch.account.account_sid, code=code, reason=message)
            until = time.time() + self.cfg.paused_recheck_s
            return await self._hand_back(claim, batch, message, until, error_code=code, event=event)
        if verdict.action is Action.SUPPRESS:
            await self.store.suppress(batch.account.account_sid, claim.to_number, source=f"error {code}")
            status = st.SUPPRESSED
        else:
            status = st.FAILED
        await self.store.record_outcome(
            claim.id, channel=batch.channel, status=status, error_code=code, error_message=message, event=row
        )
        return Done(Outcome.FAILED, status, code)

    async def _finish(self, delivery_id: str, channel: Channel, status: str, reason: str) -> None:
        await self.store.record_outcome(
            delivery_id,
            channel=channel,
            status=status,
            error_code=None,
            error_message=reason,
            event=DeliveryEvent("state", time.time(), reason, status=status).row(),
        )


def _failed(waves: Sequence[asyncio.Task[list[Done]]]) -> bool:
    """Whether a wave has already ended in an error."""
    return any(w.done() and not w.cancelled() and w.exception() is not None for w in waves)
