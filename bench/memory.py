"""Memory: a 1,000,000-recipient batch through the API; peak RSS of the api, of a worker on that backlog, Redis.

The api's peak is VmHWM after the 202. Then one worker (not burst) sends from the backlog for
WORKER_S seconds against the simulator (latency 0, callbacks off) and its VmHWM is read before it
is stopped. Redis ``used_memory`` is read once every job is queued.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from redis.asyncio import Redis

from bench import common as c
from bench import profiling
from bench.enqueue import batch_body, jobs_for, post_batch, start_api, used_memory

N = int(os.environ.get("NOTIFYQ_BENCH_MEMORY_N", "1000000"))
WORKER_S = float(os.environ.get("NOTIFYQ_BENCH_MEMORY_WORKER_S", "30"))


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    details: dict[str, Any] = {"n": N, "worker_s": WORKER_S}
    with c.workspace("memory") as procs, c.redis_server() as redis_url:
        _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        api, api_url, env = await start_api(procs, redis_url, sim_url=sim_url)
        details["api_rss_idle_mb"] = round(c.proc_status(api.pid, "VmRSS") / 1024, 1)
        body = batch_body(N)
        details["body_mb"] = round(len(body) / 1e6, 1)
        with profiling.record(api.pid, "memory-api", 240, enabled=bool(opts.get("profile"))):
            status, data, accept_s = await post_batch(api_url, body, 600)
        del body
        details.update({"status": status, "accept_s": round(accept_s, 2), "total": data.get("total")})
        redis = Redis.from_url(redis_url)
        try:
            # the API enqueues after the 202, in the background: wait for every job before measuring
            t0 = time.monotonic()
            while await redis.zcard(c.BULK_QUEUE) < jobs_for(N) and time.monotonic() - t0 < 600:  # noqa: ASYNC110
                await asyncio.sleep(0.25)
            details["queued_after_accept_s"] = round(time.monotonic() - t0, 1)
            details["api_vmhwm_mb"] = round(c.proc_status(api.pid, "VmHWM") / 1024, 1)
            details["zcard"] = await redis.zcard(c.BULK_QUEUE)
            details["redis_used_mb"] = round(await used_memory(redis) / 2**20, 1)
            details["redis_peak_mb"] = round(int((await redis.info("memory"))["used_memory_peak"]) / 2**20, 1)
            worker = procs.spawn("worker", c.worker_argv(burst=False), env)
            t0 = time.monotonic()
            samples = []
            while time.monotonic() - t0 < WORKER_S and worker.poll() is None:
                await asyncio.sleep(1.0)
                samples.append(c.proc_status(worker.pid, "VmRSS"))
            details["worker_vmhwm_mb"] = round(c.proc_status(worker.pid, "VmHWM") / 1024, 1)
            details["worker_rss_samples_mb"] = [round(s / 1024, 1) for s in samples[:: max(1, len(samples) // 10)]]
            stats = await c.sim_get(sim_url, "/_sim/stats")
            details["worker_sent"] = stats["messages"]
            details["worker_alive_at_end"] = worker.poll() is None
            if worker.poll() is not None:
                details["worker_log"] = worker.tail(1500)
            procs.stop(worker)
        finally:
            await redis.aclose()
    print(
        f"  api {details['api_vmhwm_mb']} MB, worker {details['worker_vmhwm_mb']} MB "
        f"({details['worker_sent']} sent in {WORKER_S:g} s), redis {details['redis_used_mb']} MB, "
        f"202 after {details['accept_s']} s",
        flush=True,
    )
    results = {
        "memory.peak_rss_mb_api": details["api_vmhwm_mb"],
        "memory.peak_rss_mb_worker": details["worker_vmhwm_mb"],
        "memory.redis_used_mb": details["redis_used_mb"],
    }
    return results, details
