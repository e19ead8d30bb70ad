"""Carry out plans: timers move records forward; a few workers POST the signed callbacks.

One ``Timeline`` per simulator. Steps due in the same ``TICK_S`` share one loop timer (the event
loop keeps the timers in a heap, so 10,000 sends cost nothing per tick, and a busy simulator sets
one timer per tick instead of two per message); a due callback goes on a queue that ``workers``
tasks drain through one shared ``ClientSession``. Like Twilio, a callback whose TCP connection
fails is tried once more; any HTTP answer, even a 5xx, ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from notifyq.provider.signature import compute_signature

if TYPE_CHECKING:
    from notifyq.simulator.config import SimulatorConfig
    from notifyq.simulator.lifecycle import Callback, Step
    from notifyq.simulator.records import SimCounters

USER_AGENT: Final = "TwilioProxy/1.1 (notifyq simulator)"
# steps are run at the end of the tick they fall in, in the order they were scheduled: at most this late
TICK_S: Final = 0.005


def _without_fragment(url: str) -> str:
    # Twilio reads connection overrides (#rc=...) from the fragment and never sends it
    return urlunsplit(urlsplit(url)._replace(fragment=""))


def signed_request(callback: Callback) -> tuple[str, dict[str, str], list[tuple[str, str]] | None]:
    """The URL, headers and form body Twilio would send for ``callback``."""
    url = _without_fragment(callback.url)
    body: list[tuple[str, str]] | None = callback.params
    if callback.method == "GET":
        url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(callback.params)}"
        body = None
    headers = {
        "X-Twilio-Signature": compute_signature(callback.auth_token, url, body or ()),
        "I-Twilio-Idempotency-Token": callback.idempotency_token,
        "User-Agent": USER_AGENT,
    }
    return url, headers, body


class Timeline:
    """Timers for plan steps, a queue of due callbacks, and the workers that send them."""

    def __init__(self, config: SimulatorConfig, counters: SimCounters) -> None:
        self.config = config
        self._counters = counters
        self._timers: dict[int, asyncio.TimerHandle] = {}  # per tick with steps due
        self._due: dict[int, list[Step]] = {}  # the steps of each tick, in order
        self._queue: asyncio.Queue[Callback] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._outstanding = 0  # timers + queued or in-flight callbacks
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Open the session and start the senders."""
        timeout = aiohttp.ClientTimeout(total=self.config.callback_timeout_s, connect=5.0)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._workers = [
            asyncio.create_task(self._work(), name=f"sim-callbacks-{n}") for n in range(self.config.callback_workers)
        ]

    def schedule(self, steps: list[Step]) -> None:
        """Run each step after its delay (at the end of the tick it falls in)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for step in steps:
            tick = math.ceil((now + step.delay) / TICK_S)
            due = self._due.get(tick)
            if due is None:
                due = self._due[tick] = []
                self._timers[tick] = loop.call_at(tick * TICK_S, self._fire, tick)
            due.append(step)
        self._add(len(steps))

    def _fire(self, tick: int) -> None:
        self._timers.pop(tick, None)
        steps = self._due.pop(tick, [])
        for step in steps:
            step.apply()
            if step.callback is not None and self._session is not None:
                for _ in range(step.copies):
                    self._queue.put_nowait(step.callback)
                    self._add(1)
        self._add(-len(steps))

    def _add(self, n: int) -> None:
        self._outstanding += n
        if self._outstanding:
            self._idle.clear()
        else:
            self._idle.set()

    async def settle(self, timeout_s: float) -> bool:
        """Wait until every step has run and every callback is done; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._add(-sum(len(steps) for steps in self._due.values()))
        self._timers.clear()
        self._due.clear()

    def forget(self) -> None:
        """Cancel every pending step and queued callback (callbacks already being sent finish)."""
        self._cancel_timers()
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            dropped += 1
        self._add(-dropped)

    async def stop(self, drain_timeout: float) -> None:
        """Cancel pending steps, give due callbacks ``drain_timeout`` seconds, then stop the senders."""
        self._cancel_timers()
        await self.settle(drain_timeout)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        self.forget()  # what is still queued now will never be sent
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self) -> None:
        while True:
            callback = await self._queue.get()
            try:
                await self._send(callback)
            finally:
                self._add(-1)

    async def _send(self, callback: Callback) -> None:
        if self._session is None:
            return
        url, headers, body = signed_request(callback)
        # encoded=True: send the URL byte for byte as signed, without yarl's normalisation
        target = URL(url, encoded=True)
        counters = self._counters
        for attempt in range(2):
            try:
                async with self._session.request(callback.method, target, data=body, headers=headers) as response:
                    await response.read()
            except aiohttp.ClientConnectorError:
                if attempt == 0:
                    counters.callbacks_retried += 1
                    await asyncio.sleep(self.config.callback_retry_delay_s)
                    continue
            except (aiohttp.ClientError, TimeoutError):
                pass
            else:
                counters.callbacks_sent += 1
                if response.status >= 300:
                    counters.callbacks_rejected += 1
                return
            break
        counters.callbacks_failed += 1
