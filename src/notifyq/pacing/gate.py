"""The account's pacing for requests that send nothing: its request budget, then a lease, per attempt.

The operators' REST requests (``notifyq twilio ...``: look-ups, Applications, Connect Apps, raw
requests and each of their retries) send no message, so they book no sender slot. What they share
with everything else on the account is what Twilio limits per account: requests in flight (a lease
from the pacer, as a look-up takes) and the rate of requests (a ``RequestBudget`` per account,
``twilio.connector_requests_per_minute``, the reconciler's GCRA under a name of its own). A paused
account is refused, as it is for sends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

from notifyq.errors import Conflict
from notifyq.pacing.budget import RequestBudget
from notifyq.pacing.types import Grant, Wait

if TYPE_CHECKING:
    from notifyq.pacing.pacer import Pacer

BUDGET_NAME: Final = "connector"


class AccountGate:
    """``enter``: a request may go for the account (waiting its turn up to ``max_wait_s``); ``leave``: it is over."""

    def __init__(self, pacer: Pacer, *, per_minute: float, burst: int, max_wait_s: float = 30.0) -> None:
        self.pacer = pacer
        self.budget = RequestBudget(pacer.redis, BUDGET_NAME)
        self.per_minute = per_minute
        self.burst = burst
        self.max_wait_s = max_wait_s

    async def enter(self, account_sid: str) -> object:
        """A lease on the account once its budget allows one more request; Conflict when paused or kept waiting."""
        paused = await self.pacer.admin.paused(account_sid)
        if paused:
            raise Conflict(
                f"account {account_sid} is paused ({paused}); `notifyq accounts resume {account_sid}` resumes it"
            )
        deadline = time.monotonic() + self.max_wait_s
        interval = 60.0 / self.per_minute
        while not await self.budget.take(account_sid, 1, per_minute=self.per_minute, burst=self.burst):
            if time.monotonic() + interval > deadline:
                raise Conflict(f"account {account_sid}'s request budget stays spent: try again in a minute")
            await asyncio.sleep(interval)
        lease = await self.pacer.lease(account_sid, wait_s=max(deadline - time.monotonic(), 0.0))
        if isinstance(lease, Wait):
            raise Conflict(f"account {account_sid} has no request to spare: {lease.reason}")
        return lease

    async def leave(self, account_sid: str, ticket: object, *, throttled: bool) -> None:
        """Give the lease back; a throttled answer lowers the account's in-flight cap, as for sends."""
        if isinstance(ticket, Grant):
            await self.pacer.release(ticket, account_sid=account_sid, throttled=throttled)
