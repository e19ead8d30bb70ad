"""A lane's sends in flight in this process (``worker.max_jobs``, ``worker.urgent_max_jobs``)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque


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
