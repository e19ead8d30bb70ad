"""What the invariant tests share: a simulator in a process of its own, arrivals per second."""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from helpers import notifyq_process, wait_until
from notifyq.testing import ACCOUNT_SID, AUTH_TOKEN, free_port

SENDER = "+15005550006"


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
async def simulator_process(**config: Any) -> AsyncIterator[str]:
    """``notifyq simulator`` in a process (and so a core) of its own, for the local stack's account; its URL.

    ``config`` goes to ``POST /_sim/config`` once it listens. Arrival times are stamped there, away
    from the test's own event loop.
    """
    port = free_port()
    argv = ("simulator", "--port", str(port), "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN)
    env = {**os.environ, "NOTIFYQ_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    async with notifyq_process(*argv, env=env) as sim, aiohttp.ClientSession() as session:

        async def configured() -> bool:
            assert sim.proc.returncode is None, f"the simulator exited: {sim.tail()}"
            try:
                async with session.post(f"{url}/_sim/config", json=config) as resp:
                    resp.raise_for_status()
                    return True
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(configured, "the simulator to listen", timeout_s=30, every_s=0.05)
        yield url


async def sim_get(url: str, path: str) -> Any:
    """GET one of the simulator's ``/_sim`` views."""
    async with aiohttp.ClientSession() as session, session.get(url + path) as resp:
        resp.raise_for_status()
        return await resp.json()
