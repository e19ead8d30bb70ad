"""Bounded waits for what a test can observe, instead of sleeps that guess how long something takes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(predicate: Predicate, what: str, *, timeout_s: float = 60.0, every_s: float = 0.01) -> None:
    """Poll ``predicate`` (plain or async) until it is true; fail naming ``what`` once ``timeout_s`` has passed.

    The bound is a safety net for a broken system, far above what the condition takes on a loaded
    machine (starting a notifyq process there can take 15 s): a test fails on the condition, not on
    the clock.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)


async def holds(predicate: Predicate, *, timeout_s: float = 60.0, every_s: float = 0.01) -> bool:
    """``wait_until`` that answers instead of failing: whether ``predicate`` came true within ``timeout_s``."""
    try:
        await wait_until(predicate, "", timeout_s=timeout_s, every_s=every_s)
    except AssertionError:
        return False
    return True


def holds_sync(predicate: Callable[[], bool], *, timeout_s: float = 60.0, every_s: float = 0.01) -> bool:
    """``holds`` outside an event loop (a process' state, files a child process writes)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)
    return True
