"""Settling a delivery a send job could not claim: most often an earlier create that went unanswered.

A delivery that is not claimable has been handled by another run or a callback (``ALREADY_HANDLED``),
unless it is ``dispatching`` without a SID: an earlier create got no answer (invariant 2). Then:

1. until ``worker.callback_grace_s`` after that attempt, its status callback may still come: the job
   comes back then;
2. Twilio's list is read (``worker/lookup.py``): a message or call found there is adopted;
3. nothing found: after ``worker.max_attempts`` unanswered attempts the delivery fails; otherwise it
   is claimed again (``Store.reclaim_ambiguous``, one worker wins) and the dispatcher sends it, paced
   (``Resend``).

A look-up that fails is never read as "nothing found": the job looks again after its backoff, or the
reconciler brings the delivery back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from notifyq import statuses as st
from notifyq.classify import Action
from notifyq.errors import ProviderError, TransportError, TwilioApiError
from notifyq.pacing import Pacer, Wait
from notifyq.provider.twilio import TwilioClient
from notifyq.provider.twilio_values import SID, SID_CHARS, STATUS_CHARS, bounded
from notifyq.queue.jobs import JobQueue, SendJob
from notifyq.settings import WorkerSettings
from notifyq.store import Claim, DeliveryRow, Store
from notifyq.worker.events import DeliveryEvent
from notifyq.worker.lookup import after_failure, find_attempt
from notifyq.worker.metrics import WorkerMetrics
from notifyq.worker.outcomes import Deferred, Done, Outcome
from notifyq.worker.prepared import PreparedBatch

log = structlog.get_logger("notifyq.worker")


@dataclass(frozen=True, slots=True)
class Resend:
    """Twilio's list shows nothing of the unanswered attempt: the delivery, claimed again, is to be sent."""

    claim: Claim
    suppressed: bool  # the recipient has opted out


class Settler:
    """Settles the deliveries send jobs could not claim; one per worker process."""

    def __init__(
        self,
        cfg: WorkerSettings,
        store: Store,
        twilio: TwilioClient,
        pacer: Pacer,
        jobs: JobQueue,
        metrics: WorkerMetrics,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.twilio = twilio
        self.pacer = pacer
        self.jobs = jobs
        self.metrics = metrics

    async def unclaimed(self, delivery_id: str, batch: PreparedBatch) -> Done | Deferred | Resend:
        """A delivery job's delivery that was not claimable: settle an earlier attempt whose outcome is unknown."""
        row = await self.store.get_delivery(delivery_id)
        if row.status != st.DISPATCHING or row.twilio_sid is not None:
            return Done(Outcome.ALREADY_HANDLED, row.status)
        dispatched = row.dispatched_at or 0.0
        grace_ends = dispatched + self.cfg.callback_grace_s
        if grace_ends > time.time():
            return Deferred(grace_ends, "the unanswered attempt's callback may still come")
        try:
            found = await find_attempt(self.twilio, self.pacer, row, batch)
        except ProviderError as exc:
            return await self._look_up_failed(row, batch, exc)
        if isinstance(found, Wait):
            return Deferred(found.until, f"look-up waits for the account: {found.reason}")
        if found is not None:
            return await self._adopt(row, batch, found)
        return await self._not_found(row, batch, dispatched)

    async def _adopt(self, row: DeliveryRow, batch: PreparedBatch, found: dict[str, Any]) -> Done | Deferred:
        """Take the message or call found in Twilio's list as the attempt's: its SID and status.

        The record is checked as a callback is: a SID that is not one cannot be adopted (the look-up
        failed, and is tried again; the delivery is not sent again on its account), and a status that is
        not one of Twilio's for the channel is taken as ``queued``, the first, for callbacks to move on.
        """
        sid, status = found.get("sid"), found.get("status")
        if not (isinstance(sid, str) and SID.fullmatch(sid)):
            shown = bounded(str(sid), SID_CHARS)
            unusable = TransportError(f"malformed list record: no valid sid ({shown!r})", batch.resource)
            return await self._look_up_failed(row, batch, unusable)
        adopted = status if isinstance(status, str) and _twilios(batch.channel, status) else "queued"
        await self.store.record_accepted(
            row.id,
            channel=batch.channel,
            sid=sid,
            status=adopted,
            segments=_segments(found.get("num_segments")),
            event=DeliveryEvent(
                "attempt", time.time(), "found in Twilio's list; adopted", status=bounded(str(status), STATUS_CHARS)
            ).row(),
        )
        return Done(Outcome.ADOPTED, adopted)

    async def _not_found(self, row: DeliveryRow, batch: PreparedBatch, dispatched: float) -> Done | Resend:
        """Twilio's list shows nothing of the attempt: give up after ``max_attempts``, else claim it again."""
        if row.attempts >= self.cfg.max_attempts:
            return await self._give_up(row, dispatched)
        now = time.time()
        if not await self.store.reclaim_ambiguous(row.id, dispatched, now=now):
            # another worker took it over, or its batch was canceled (then nothing was sent, and nothing will be)
            canceled = await self.store.cancel_ambiguous(row.id, dispatched)
            return Done(Outcome.CANCELED if canceled else Outcome.TAKEN_BY_ANOTHER_WORKER)
        claim = Claim(
            id=row.id,
            batch_id=row.batch_id,
            channel=row.channel,
            to_number=row.to_number,
            variables=row.variables,
            attempts=row.attempts + 1,
            valid_until=row.valid_until,
            dispatched_at=now,  # as stored: later writes of this attempt are guarded on it
        )
        sending_again = DeliveryEvent("state", time.time(), "not found in Twilio's list; sending again", data={})
        await self.store.add_event(sending_again.row(row.id))
        suppressed = batch.channel.is_message and await self.store.is_suppressed(
            batch.account.account_sid, claim.to_number
        )
        return Resend(claim, suppressed)

    async def unclaimed_in_chunk(self, batch: PreparedBatch, delivery_ids: list[str]) -> list[Done]:
        """Chunk deliveries that were not claimable: an earlier attempt left unanswered gets a job to settle it."""
        done = []
        for row in await self.store.get_deliveries(delivery_ids):
            if row.status == st.DISPATCHING and row.twilio_sid is None:
                due = (row.dispatched_at or 0.0) + self.cfg.callback_grace_s
                job = SendJob(row.id, row.batch_id, batch.cost(row.variables))
                await self.jobs.defer(batch.row.priority, job, at_s=due)
                done.append(Done(Outcome.DEFERRED))
            else:
                done.append(Done(Outcome.ALREADY_HANDLED, row.status))
        return done

    async def _give_up(self, row: DeliveryRow, dispatched: float) -> Done:
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
            return Done(Outcome.GAVE_UP, st.FAILED)
        canceled = await self.store.cancel_ambiguous(row.id, dispatched)
        return Done(Outcome.CANCELED if canceled else Outcome.TAKEN_BY_ANOTHER_WORKER)

    async def _look_up_failed(self, row: DeliveryRow, batch: PreparedBatch, exc: ProviderError) -> Done | Deferred:
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
            await self.pacer.admin.pause_account(batch.account.account_sid, f"{code}: {message}")
            log.error("account paused", account_sid=batch.account.account_sid, code=code, reason=message)
        log.warning("look-up failed", delivery_id=row.id, error=message, decision=decision.reason)
        await self.store.record_outcome(
            row.id,
            channel=batch.channel,
            status=st.DISPATCHING,
            error_code=code,
            error_message=message,
            event=DeliveryEvent("lookup", now, decision.reason, http_status=api.status if api else None).row(),
        )
        if decision.again_at is None:
            return Done(Outcome.LOOKUP_FAILED, st.DISPATCHING, code)
        return Deferred(decision.again_at, decision.reason)


def _twilios(channel: st.Channel, status: str) -> bool:
    """Whether ``status`` is one Twilio reports for ``channel`` past its creation (not one of notifyq's own)."""
    found = st.rank(channel, status)
    ours = st.ranks(channel)[st.DISPATCHING]
    return found is not None and found > ours and status not in (st.EXPIRED, st.SUPPRESSED)


def _segments(raw: Any) -> int | None:
    """A record's ``num_segments`` (Twilio sends it as a string), or None when it is missing or not a number."""
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None
