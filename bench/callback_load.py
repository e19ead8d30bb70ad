"""Load generator for the callback receiver, in its own process (run by ``bench.callbacks``).

``python -m bench.callback_load REQUESTS.json MODE ARG DURATION_S`` where REQUESTS.json is a list of
``[url, signature, form]`` (signed beforehand, so the generator spends no CPU on HMAC), each sent at
most once, MODE is ``closed`` (ARG = concurrency: as fast as answers come, until DURATION_S or the
requests run out) or ``open`` (ARG = requests per second, sent on schedule whatever the answers;
latency is measured from the scheduled time, so queueing counts). Prints one JSON line: counts by
status, the rate answered 200, latency percentiles in ms, and whether the requests ran out.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import uvloop


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def p(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)

    return {"p50_ms": p(0.50), "p90_ms": p(0.90), "p99_ms": p(0.99), "max_ms": round(values[-1] * 1000, 2)}


async def main(raw: list[Any], mode: str, arg: float, duration_s: float) -> dict[str, Any]:
    reqs = [
        (
            url,
            urlencode(form).encode(),
            {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
        )
        for url, sig, form in raw
    ]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0 if mode == "open" else int(arg))

    async def one(session: aiohttp.ClientSession, i: int, scheduled: float) -> None:
        nonlocal errors
        url, body, headers = reqs[i]
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        except (aiohttp.ClientError, OSError, TimeoutError):
            errors += 1
            return
        latencies.append(time.perf_counter() - scheduled)

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        t0 = time.perf_counter()
        end = t0 + duration_s
        sent = 0
        if mode == "closed":
            counter = iter(range(len(reqs)))

            async def lane() -> None:
                nonlocal sent
                for i in counter:
                    if time.perf_counter() >= end:
                        return
                    sent += 1
                    await one(session, i, time.perf_counter())

            await asyncio.gather(*(lane() for _ in range(int(arg))))
        else:
            interval = 1.0 / arg
            tasks = set()
            total = min(len(reqs), int(arg * duration_s))
            for i in range(total):
                scheduled = t0 + i * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(session, i, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if tasks:
                await asyncio.wait(tasks, timeout=60)
        elapsed = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {
        "mode": mode,
        "arg": arg,
        "sent": sent,
        "statuses": statuses,
        "errors": errors,
        "ok": ok,
        "exhausted": mode == "closed" and sent >= len(reqs),
        "seconds": round(elapsed, 3),
        "ok_per_s": round(ok / elapsed, 1),
        **percentiles(latencies),
    }


if __name__ == "__main__":
    out = uvloop.run(
        main(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    )
    print(json.dumps(out))
