"""Group commit for the send path: the claims and results of concurrent jobs share transactions.

Hundreds of send jobs run at once in a worker. Giving each its own claim and its own result
transaction costs several round trips apiece (BEGIN, statement, COMMIT, pool reset) and, on
SQLite, serialises them all. Instead each job hands its write to the coalescer and awaits it; one
flusher writes everything waiting in one transaction: all claims as one guarded
``UPDATE ... WHERE id IN (...) RETURNING`` (plus one suppression look-up), all results as one
executemany. When the worker is idle a write waits for nothing but one turn of the event loop;
under load, flushes grow by themselves. A job's write is committed before its await returns, so
the invariants hold exactly as with one transaction per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from notifyq.statuses import Channel
from notifyq.store.records import Claim
from notifyq.store.sends import Sends, accepted_send

MAX_FLUSH = 500  # claims, and results, per flush


@dataclass
class _ClaimReq:
    delivery_id: str
    account_sid: str
    future: asyncio.Future[tuple[Claim, bool] | None]


@dataclass
class _AcceptReq:
    params: dict[str, Any]
    event: dict[str, Any]
    future: asyncio.Future[None]


@dataclass
class WriteCoalescer:
    """Collects send-path writes and commits them together."""

    store: Sends
    max_flush: int = MAX_FLUSH
    _claims: list[_ClaimReq] = field(default_factory=list)
    _accepts: list[_AcceptReq] = field(default_factory=list)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    flushes: int = 0

    async def claim(self, delivery_id: str, account_sid: str) -> tuple[Claim, bool] | None:
        """Claim a delivery for one attempt: (claim, recipient is suppressed), or None if not claimable."""
        return (await self.claim_many([delivery_id], account_sid))[0]

    async def claim_many(self, delivery_ids: Sequence[str], account_sid: str) -> list[tuple[Claim, bool] | None]:
        """``claim`` for each delivery (of one account), in the same flush; answers in the same order."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[tuple[Claim, bool] | None]] = []
        for delivery_id in delivery_ids:
            fut: asyncio.Future[tuple[Claim, bool] | None] = loop.create_future()
            self._claims.append(_ClaimReq(delivery_id, account_sid, fut))
            futures.append(fut)
        self._kick()
        return list(await asyncio.gather(*futures))

    async def accepted(
        self,
        delivery_id: str,
        *,
        channel: Channel,
        sid: str,
        status: str,
        segments: int | None,
        event: dict[str, Any],
    ) -> None:
        """Record Twilio's 201 (SID, initial status) and the attempt event."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        params = accepted_send(delivery_id, channel=channel, sid=sid, status=status, segments=segments)
        self._accepts.append(_AcceptReq(params, event, fut))
        self._kick()
        await fut

    def _kick(self) -> None:
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the flusher once nothing is waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let jobs that are runnable now add their writes to this flush
            while self._claims or self._accepts:
                claims, self._claims = self._claims[: self.max_flush], self._claims[self.max_flush :]
                accepts, self._accepts = self._accepts[: self.max_flush], self._accepts[self.max_flush :]
                await self._flush(claims, accepts)

    async def _flush(self, claims: list[_ClaimReq], accepts: list[_AcceptReq]) -> None:
        self.flushes += 1
        try:
            claimed, suppressed = await self.store.flush_send_writes(
                claim_ids=[(c.delivery_id, c.account_sid) for c in claims],
                accepted=[(a.params, a.event) for a in accepts],
                now=time.time(),
            )
        except Exception as exc:  # noqa: BLE001 - every waiting job must see the failure, then it is re-raised there
            futures: list[asyncio.Future[Any]] = [c.future for c in claims] + [a.future for a in accepts]
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for c in claims:
            if not c.future.done():
                # the UPDATE claimed each row once: it goes to one requester. A job that runs twice at once
                # (arq runs a job at least once) asks again in the same flush, and that request lost
                got = claimed.pop(c.delivery_id, None)
                c.future.set_result(None if got is None else (got, (c.account_sid, got.to_number) in suppressed))
        for a in accepts:
            if not a.future.done():
                a.future.set_result(None)
