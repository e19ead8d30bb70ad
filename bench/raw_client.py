"""A bare aiohttp client posting Messages.json to the simulator: no queue, no store (run by ``bench.dispatch``).

``python -m bench.raw_client SIM_URL REQUESTS CONCURRENCY`` prints one JSON line. The form body and the
Authorization header are encoded once, so this is the HTTP ceiling of one client process on this machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlencode

import aiohttp
import uvloop

from bench.common import ACCOUNT_SID, AUTH_TOKEN, SENDER


async def main(sim_url: str, total: int, concurrency: int) -> dict[str, float]:
    url = f"{sim_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    auth = aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    body = urlencode({"To": "+14152001234", "From": SENDER, "Body": "Your code is 123456."}).encode()
    remaining = total
    errors = 0

    async def one_lane(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 201:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one_lane(session) for _ in range(concurrency))), timeout=300)
        elapsed = time.perf_counter() - t0
    return {"requests": total, "seconds": elapsed, "per_s": total / elapsed, "errors": errors}


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
