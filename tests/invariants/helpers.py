"""What the invariant tests share: a stored batch, processes of notifyq's own, arrivals per second."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from notifyq.ids import new_ids
from notifyq.store import Store
from notifyq.testing import ACCOUNT_SID, AUTH_TOKEN, free_port

SENDER = "+15005550006"


async def stored_batch(store: Store, numbers: Sequence[str], *, channel: str = "sms") -> list[str]:
    """A batch written straight to the store (no job); the ids of its deliveries, in order."""
    ids = new_ids(len(numbers))
    batch = {
        "id": new_ids(1)[0], "created_at": 1.0, "idempotency_key": None, "channel": channel, "account": "main",
        "account_sid": ACCOUNT_SID, "sender": SENDER, "messaging_service_sid": None, "priority": "bulk",
        "content": {}, "send_at": None, "valid_until": 4e9, "total": 0, "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip
    await store.create_batch(batch, [[(d, n, None) for d, n in zip(ids, numbers, strict=True)]])
    return ids


def busiest_second(arrivals: Sequence[tuple[float, int]]) -> int:
    """The most segments in any 1-second window ``(t - 1 s, t]``; ``arrivals`` are (time, segments).

    Every window that holds the most ends at an arrival, so checking those windows checks them all.
    """
    ordered = sorted(arrivals)
    times = [t for t, _ in ordered]
    total = [0]
    for _, segments in ordered:
        total.append(total[-1] + segments)
    worst = 0
    for i, t in enumerate(times):
        first = bisect.bisect_right(times, t - 1.0)
        worst = max(worst, total[i + 1] - total[first])
    return worst


@contextlib.asynccontextmanager
async def notifyq_process(
    *args: str, env: dict[str, str], log: Path | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m notifyq ARGS`` in a child process (its log to ``log``); SIGTERM at the end, SIGKILL if need be."""
    with Path(os.devnull if log is None else log).open("wb") as out:  # noqa: ASYNC230 - opening is instant
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifyq", *args, env=env, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def simulator_process(**config: Any) -> AsyncIterator[str]:
    """``notifyq simulator`` in a process (and so a core) of its own, for the local stack's account; its URL.

    ``config`` goes to ``POST /_sim/config`` once it listens. Arrival times are stamped there, away
    from the test's own event loop.
    """
    port = free_port()
    argv = ("simulator", "--port", str(port), "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN)
    env = {**os.environ, "NOTIFYQ_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    async with notifyq_process(*argv, env=env) as proc, aiohttp.ClientSession() as session:
        for _ in range(300):  # up to 15 s to start listening
            assert proc.returncode is None, "the simulator exited"
            try:
                async with session.post(f"{url}/_sim/config", json=config) as resp:
                    resp.raise_for_status()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the simulator did not start")
        yield url


async def sim_get(url: str, path: str) -> Any:
    """GET one of the simulator's ``/_sim`` views."""
    async with aiohttp.ClientSession() as session, session.get(url + path) as resp:
        resp.raise_for_status()
        return await resp.json()
