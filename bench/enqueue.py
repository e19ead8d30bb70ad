"""Enqueue: POST a 100,000-recipient batch to ``notifyq api``; seconds to the 202 and until every job is in Redis.

The request body is encoded before the clock starts. ZCARD of the bulk lane is polled every 20 ms
while the POST runs (a fresh batch is queued as chunk jobs of CHUNK_SIZE deliveries, so "queued" is
ZCARD reaching ``jobs_for(N)``); Redis ``used_memory`` is read before and after (nothing else writes to this
Redis), so the delta per recipient is the jobs' cost: job keys, their payloads and the lane's zset.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench import common as c
from bench import profiling
from notifyq.queue.arq_compat import JOB_KEY_PREFIX
from notifyq.queue.jobs import CHUNK_SIZE

N = int(os.environ.get("NOTIFYQ_BENCH_ENQUEUE_N", "100000"))


def jobs_for(n: int) -> int:
    """Jobs in the lane once a fresh batch of ``n`` deliveries is queued: one chunk job per CHUNK_SIZE."""
    return -(-n // CHUNK_SIZE)


def batch_body(n: int, body: str = "Hi {name}, your code is {code}. Reply STOP to opt out.") -> bytes:
    rcpts = [
        {"to": to, "vars": {"name": f"P{i}", "code": f"{i % 1_000_000:06d}"}} for i, to in enumerate(c.recipients(n))
    ]
    return json.dumps({"channel": "sms", "from": c.SENDER, "body": body, "recipients": rcpts}).encode()


async def post_batch(api_url: str, body: bytes, timeout_s: float) -> tuple[int, dict[str, Any], float]:
    headers = {"Authorization": f"Bearer {c.API_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
        t0 = time.perf_counter()
        async with s.post(api_url + "/v1/batches", data=body, headers=headers) as r:
            data = await r.json(content_type=None)
            return r.status, data, time.perf_counter() - t0


async def enqueued_at(api_url: str, batch_id: str | None, t0_epoch: float) -> float | None:
    """The batch's ``enqueued_at`` (set once every job is in Redis), as seconds after the POST started."""
    if not batch_id:
        return None
    headers = {"Authorization": f"Bearer {c.API_TOKEN}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        for _ in range(300):
            async with s.get(f"{api_url}/v1/batches/{batch_id}", headers=headers) as r:
                at = (await r.json()).get("enqueued_at")
            if at:
                return round(float(at) - t0_epoch, 3)
            await asyncio.sleep(0.1)
    return None


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def start_api(
    procs: c.Procs, redis_url: str, *, sim_url: str = "http://127.0.0.1:9"
) -> tuple[c.Child, str, dict[str, str]]:
    port = c.free_port()
    env = c.notifyq_env(redis_url=redis_url, data_dir=procs.workdir / "data", sim_url=sim_url, api_port=port)
    await c.migrate(env)
    api = procs.spawn("api", c.api_argv(), env)
    url = f"http://127.0.0.1:{port}"
    await c.wait_http(url + "/healthz", child=api)
    return api, url, env


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    details: dict[str, Any] = {"n": N}
    with c.workspace("enqueue") as procs, c.redis_server() as redis_url:
        api, api_url, _env = await start_api(procs, redis_url)
        # warm up: first request pays for imports and connection set-up
        status, _, warm_s = await post_batch(api_url, batch_body(100), 60)
        details["warmup"] = {"status": status, "seconds": round(warm_s, 3)}
        redis = Redis.from_url(redis_url)
        try:
            # the API enqueues in the background after the 202: let the warm-up's jobs land, then drop them
            for _ in range(300):
                if await redis.zcard(c.BULK_QUEUE) >= jobs_for(100):
                    break
                await asyncio.sleep(0.1)
            await redis.delete(c.BULK_QUEUE)
            for key in [k async for k in redis.scan_iter(JOB_KEY_PREFIX + "*", count=1000)]:
                await redis.delete(key)
            before = await used_memory(redis)
            body = batch_body(N)
            details["body_mb"] = round(len(body) / 1e6, 1)
            t0 = time.perf_counter()
            t0_epoch = time.time()
            queued_at: float | None = None

            async def watch() -> None:
                nonlocal queued_at
                while time.perf_counter() - t0 < 300:
                    if await redis.zcard(c.BULK_QUEUE) >= jobs_for(N):
                        queued_at = time.perf_counter() - t0
                        return
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            with profiling.record(api.pid, "enqueue-api", 120, enabled=bool(opts.get("profile"))) as prof:
                cpu_before = c.cpu_seconds(api.pid)
                status, data, accept_s = await post_batch(api_url, body, 300)
                # the API's CPU seconds until the 202 (both its threads): steadier than wall time on a busy machine
                accept_cpu_s = c.cpu_seconds(api.pid) - cpu_before
                await asyncio.wait_for(watcher, 300)
            after = await used_memory(redis)
            depth = await redis.zcard(c.BULK_QUEUE)
            details["enqueued_at_after_t0_s"] = await enqueued_at(api_url, data.get("id"), t0_epoch)
        finally:
            await redis.aclose()
        details.update(
            {
                "status": status,
                "total": data.get("total"),
                "accept_s": round(accept_s, 3),
                "api_cpu_to_accept_s": round(accept_cpu_s, 2),
                "queued_s": round(queued_at, 3) if queued_at is not None else None,
                "zcard": depth,
                "redis_used_before": before,
                "redis_used_after": after,
                "api_vmhwm_mb": round(c.proc_status(api.pid, "VmHWM") / 1024, 1),
                "api_cpu_s": round(c.cpu_seconds(api.pid), 1),
            }
        )
        if prof is not None:
            details["profile"] = str(prof)
            details["profile_summary"] = profiling.summarize(prof, top=20)
    results = {
        "enqueue.seconds_to_accept": round(accept_s, 3),
        "enqueue.seconds_to_queued": details["queued_s"],
        "enqueue.redis_bytes_per_recipient": round((after - before) / N, 1),
    }
    print(f"  {json.dumps({k: details[k] for k in ('status', 'total', 'accept_s', 'queued_s', 'zcard')})}", flush=True)
    return results, details
