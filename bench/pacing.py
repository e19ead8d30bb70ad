"""Pacing, counted at the simulator: 4 worker processes share one sender's 50 segments/s, and an
account's in-flight cap that the simulator enforces with 429.

Sender part: 5,000 messages whose bodies are 100, 250 or 400 GSM characters (1, 2 or 3 segments),
all from one sender limited to 50 segments/s. From the simulator's records (creation time, segments):
the number of 1-second windows over the limit, sliding (every window that ends at a message) and
fixed (calendar seconds), and the utilisation: segments / (50 x seconds) while there was backlog.

Account part: the simulator refuses more than CAP requests in flight per account (429 / 20429) with
50 ms latency; notifyq's own account limit is set higher (60), so only its 429 adaptation holds it.
The simulator samples its in-flight count every 10 ms (``/_sim/gauge``); utilisation is the mean
over the backlog / CAP.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import time
from typing import Any

from bench import common as c

N = int(os.environ.get("NOTIFYQ_BENCH_PACING_N", "5000"))
LIMIT = 50.0
WORKERS = 4
# the workers' arq poll delay (how late chunks come back from the sender's line; the pacer's tolerances
# are its defaults: held reservations do not depend on it)
POLL_DELAY_S = float(os.environ.get("NOTIFYQ_BENCH_PACING_POLL_DELAY_S", "0.05"))
CAP_N = int(os.environ.get("NOTIFYQ_BENCH_PACING_CAP_N", "4000"))
CAP = 20
CAP_NOTIFYQ = 60
CAP_LATENCY_S = 0.05
BODIES = ("a" * 100, "b" * 250, "c" * 400)  # GSM-7: 1, 2 and 3 segments


def window_stats(msgs: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    msgs = sorted(msgs, key=lambda m: m["created_at"])
    times = [m["created_at"] for m in msgs]
    segs = [int(m["num_segments"]) for m in msgs]
    prefix = [0]
    for s in segs:
        prefix.append(prefix[-1] + s)
    # sliding: the window (t - 1 s, t] ending at each message
    over_sliding = 0
    worst = 0
    for i, t in enumerate(times):
        lo = bisect.bisect_right(times, t - 1.0)
        in_window = prefix[i + 1] - prefix[lo]
        worst = max(worst, in_window)
        if in_window > limit:
            over_sliding += 1
    by_second: dict[int, int] = {}
    for t, s in zip(times, segs, strict=True):
        by_second[math.floor(t)] = by_second.get(math.floor(t), 0) + s
    over_fixed = sum(1 for v in by_second.values() if v > limit)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    # segments sent strictly after the first message, over the time they took: the backlog rate
    rate = (prefix[-1] - segs[0]) / span if span > 0 else 0.0
    return {
        "messages": len(msgs),
        "segments": prefix[-1],
        "seconds": round(span, 2),
        "segments_per_s": round(rate, 2),
        "windows_over_limit_sliding": over_sliding,
        "windows_over_limit_fixed": over_fixed,
        "worst_sliding_window_segments": worst,
        "worst_fixed_second_segments": max(by_second.values(), default=0),
        "utilisation": round(rate / limit, 3),
    }


async def wait_sent(sim_url: str, n: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await c.sim_get(sim_url, "/_sim/stats"))["messages"] >= n:
            return True
        await asyncio.sleep(0.5)
    return False


async def sender_part(procs: c.Procs, redis_url: str) -> dict[str, Any]:
    _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
    env = c.notifyq_env(
        redis_url=redis_url,
        data_dir=procs.workdir / "data-sender",
        sim_url=sim_url,
        api_port=c.free_port(),
        senders={c.SENDER: LIMIT},
        poll_delay_s=POLL_DELAY_S,
    )
    await c.migrate(env)
    rcpts = [{"to": to, "vars": {"text": BODIES[i % 3]}} for i, to in enumerate(c.recipients(N))]
    await c.submit_in_process(env, {"channel": "sms", "from": c.SENDER, "body": "{text}", "recipients": rcpts})
    workers = [procs.spawn("worker", c.worker_argv(burst=False), env) for _ in range(WORKERS)]
    expected_s = N * 2 / LIMIT
    ok = await wait_sent(sim_url, N, expected_s * 1.5 + 60)
    for w in workers:
        procs.stop(w)
    msgs = await c.sim_get(sim_url, "/_sim/messages")
    stats = window_stats(msgs, LIMIT)
    stats["complete"] = ok
    stats["poll_delay_s"] = POLL_DELAY_S
    return stats


async def sample_pacer(redis_url: str, out: list[tuple[float, float, int]]) -> None:
    """Every 100 ms: the pacer's adaptive in-flight cap for the account and its live leases (bounded)."""
    from redis.asyncio import Redis  # noqa: PLC0415

    acct = f"notifyq:pace:acct:{c.ACCOUNT_SID}"
    r = Redis.from_url(redis_url)
    try:
        for _ in range(6000):
            cap, leases = await asyncio.gather(r.hget(acct, "cap"), r.zcard(f"{acct}:leases"))
            if cap is not None:
                out.append((time.time(), float(cap), int(leases)))
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()


async def account_part(procs: c.Procs, redis_url: str) -> dict[str, Any]:
    _sim, sim_url = await c.start_simulator(procs, latency_s=CAP_LATENCY_S, max_concurrency=CAP)
    env = c.notifyq_env(
        redis_url=redis_url,
        data_dir=procs.workdir / "data-account",
        sim_url=sim_url,
        api_port=c.free_port(),
        max_in_flight=CAP_NOTIFYQ,
    )
    await c.migrate(env)
    await c.submit_in_process(env, c.sms_batch(CAP_N))
    await c.sim_post(sim_url, "/_sim/gauge", {"interval_s": 0.01, "max_samples": 200_000})
    workers = [procs.spawn("worker", c.worker_argv(burst=False), env) for _ in range(WORKERS)]
    pacer_samples: list[tuple[float, float, int]] = []
    sampler = asyncio.create_task(sample_pacer(redis_url, pacer_samples))
    try:
        ok = await wait_sent(sim_url, CAP_N, 240)
    finally:
        sampler.cancel()
    for w in workers:
        procs.stop(w)
    gauge = await c.sim_delete(sim_url, "/_sim/gauge")
    stats = await c.sim_get(sim_url, "/_sim/stats")
    msgs = await c.sim_get(sim_url, "/_sim/messages")
    times = sorted(m["created_at"] for m in msgs)
    first, last = (times[0], times[-1]) if times else (0.0, 0.0)
    inside = [s[1] for s in gauge["samples"] if first <= s[0] <= last]
    mean = sum(inside) / len(inside) if inside else 0.0
    return {
        "messages": len(msgs),
        "complete": ok,
        "seconds": round(last - first, 2),
        "sends_per_s": round((len(times) - 1) / (last - first), 1) if last > first else 0.0,
        "http_429": stats.get("http_429"),
        "requests": stats.get("requests"),
        "mean_in_flight": round(mean, 2),
        "max_in_flight": max(inside, default=0),
        "gauge_samples": len(inside),
        "cap_utilisation": round(mean / CAP, 3),
        "pacer_cap_mean": round(sum(x[1] for x in pacer_samples) / max(len(pacer_samples), 1), 2),
        "pacer_leases_mean": round(sum(x[2] for x in pacer_samples) / max(len(pacer_samples), 1), 2),
        "pacer_cap_trace": [round(x[1], 1) for x in pacer_samples[:: max(1, len(pacer_samples) // 40)]],
        "cap": CAP,
        "notifyq_max_in_flight": CAP_NOTIFYQ,
        "latency_s": CAP_LATENCY_S,
    }


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    del opts
    parts = os.environ.get("NOTIFYQ_BENCH_PACING_PARTS", "sender,account").split(",")
    details: dict[str, Any] = {"n": N, "limit": LIMIT, "workers": WORKERS, "cap_n": CAP_N}
    results: dict[str, Any] = {}
    if "sender" in parts:
        with c.workspace("pacing") as procs, c.redis_server() as redis_url:
            details["sender"] = await sender_part(procs, redis_url)
        print(f"  sender: {details['sender']}", flush=True)
        results["pacing.windows_over_limit"] = details["sender"]["windows_over_limit_sliding"]
        results["pacing.limit_utilisation"] = details["sender"]["utilisation"]
    if "account" in parts:
        with c.workspace("pacing-cap") as procs, c.redis_server() as redis_url:
            details["account"] = await account_part(procs, redis_url)
        print(f"  account: {details['account']}", flush=True)
        results["pacing.simulator_429s"] = details["account"]["http_429"]
        results["pacing.account_cap_utilisation"] = details["account"]["cap_utilisation"]
    return results, details
