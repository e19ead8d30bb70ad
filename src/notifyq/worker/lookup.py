"""The look-up of an unanswered create: its message or call in Twilio's list (``worker/settle.py`` uses it).

A create that got no answer (``AmbiguousSend``, or a worker killed mid-request) leaves its delivery
``dispatching`` without a SID. After the callback grace the worker looks in Twilio's list (the same
To and From, sent on or after the attempt's day, the same body) and adopts what it finds; only when
the list shows nothing may the delivery be sent again (invariant 2).

The look-up is a REST request like any other. It holds an account lease while it is in flight (it
counts against the account's requests in flight; a paused account is not asked), and its errors are
classified by ``classify`` and retried with ``backoff`` (``after_failure``):

* retryable (429/20429, 5xx, no answer, a page that is not Twilio's): the job comes back after its
  backoff, up to ``worker.max_attempts`` failed look-ups of one attempt; then the job ends and the
  reconciler queues the delivery again once it has not changed for ``reconcile.unanswered_after_s``;
* the credentials refused (401, 20003): the account is paused, as a send would pause it, and the job
  looks again after ``worker.paused_recheck_s``;
* any other refusal (a 4xx: the query itself was refused), or a list of more than ``LIST_MAX_PAGES``
  pages since the attempt (``ListTooLong``: reading it again would not end sooner): left to the
  reconciler at once.

The list is read newest first, and its pages stop at the first record made before the attempt.

A failed look-up is never read as "nothing found"; nothing is sent again until a look-up succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from notifyq.backoff import next_attempt_at
from notifyq.classify import Action, Verdict, classify
from notifyq.errors import ListTooLong, ProviderError, TwilioApiError, Unsendable
from notifyq.pacing import Wait
from notifyq.provider.twilio import record_created
from notifyq.statuses import Channel

if TYPE_CHECKING:
    from notifyq.pacing import Pacer
    from notifyq.provider.twilio import TwilioClient
    from notifyq.settings import WorkerSettings
    from notifyq.store import DeliveryRow
    from notifyq.worker.prepared import PreparedBatch

LEASE_HOLD_S: Final = 0.25  # a full account's turn is waited for in process this long; later, the job comes back
HTTP_TOO_MANY_REQUESTS: Final = 429
TWILIO_TOO_MANY_REQUESTS: Final = 20429


async def find_attempt(
    twilio: TwilioClient, pacer: Pacer, row: DeliveryRow, batch: PreparedBatch
) -> dict[str, Any] | Wait | None:
    """The message or call an unanswered attempt may have created (same To/From, after the attempt), or None.

    The pacer's ``Wait`` when the account has no room for the request (or is paused): nothing was
    asked. Raises ``ProviderError`` when Twilio's list could not be read.
    """
    account_sid = batch.account.account_sid
    lease = await pacer.lease(account_sid, wait_s=LEASE_HOLD_S)
    if isinstance(lease, Wait):
        return lease
    throttled = False
    try:
        return await _look_up(twilio, row, batch)
    except TwilioApiError as exc:
        throttled = exc.status == HTTP_TOO_MANY_REQUESTS or exc.code == TWILIO_TOO_MANY_REQUESTS
        raise
    finally:
        await pacer.release(lease, account_sid=account_sid, throttled=throttled)


async def _look_up(twilio: TwilioClient, row: DeliveryRow, batch: PreparedBatch) -> dict[str, Any] | None:
    since = datetime.fromtimestamp((row.dispatched_at or 0) - 60, tz=UTC)
    filters = {"To": row.to_number}
    if batch.row.sender:
        filters["From"] = batch.row.sender
    # the list filters by day only; the pages stop at the first record made before the attempt
    if batch.channel is Channel.CALL:
        filters["StartTime>"] = since.strftime("%Y-%m-%d")
        items = await twilio.list(batch.account, "Calls.json", filters, newer_than=since)
    else:
        try:
            body = batch.body(row.variables)
        except Unsendable:  # no request can have been built for it: nothing to find, and the next try fails it
            return None
        filters["DateSent>"] = since.strftime("%Y-%m-%d")
        items = await twilio.list(batch.account, "Messages.json", filters, newer_than=since)
        items = [m for m in items if body is None or m.get("body") == body]
    recent = [i for i in items if (made := record_created(i)) is None or made >= since]
    return recent[0] if recent else None


@dataclass(frozen=True, slots=True)
class LookUpFailure:
    """What to do after a look-up failed: when to look again (None: the reconciler brings it back), and why."""

    verdict: Verdict
    again_at: float | None
    reason: str


def after_failure(exc: ProviderError, failed_before: int, *, now: float, worker: WorkerSettings) -> LookUpFailure:
    """The decision after a look-up of one attempt failed with ``exc``, ``failed_before`` having failed already.

    A GET changes nothing at Twilio, so one that got no answer (even after the request was written) is
    as safe to repeat as one that never left.
    """
    if isinstance(exc, ListTooLong):  # the same pages again would not end sooner
        verdict = Verdict(Action.FAIL, str(exc), None, None)
        return LookUpFailure(verdict, None, f"look-up incomplete ({exc}); left to the reconciler")
    api = exc if isinstance(exc, TwilioApiError) else None
    verdict = classify(api.status, api.code) if api else classify(None, None)
    failed = failed_before + 1
    if verdict.action is Action.RETRY:
        again = next_attempt_at(
            now,
            failed,
            deadline=None,
            max_attempts=worker.max_attempts,
            base_s=worker.backoff_base_s,
            cap_s=worker.backoff_cap_s,
            retry_after_s=api.retry_after_s if api else None,
        )
        if again is None:
            reason = f"look-up failed {failed} times ({verdict.reason}); left to the reconciler"
        else:
            reason = f"look-up failed ({verdict.reason}); looking again in {again - now:.1f} s"
        return LookUpFailure(verdict, again, reason)
    if verdict.action is Action.PAUSE_ACCOUNT:
        again = now + worker.paused_recheck_s
        return LookUpFailure(verdict, again, f"look-up refused ({verdict.reason}); the account is paused")
    return LookUpFailure(verdict, None, f"look-up refused ({verdict.reason}); left to the reconciler")
