"""Dispatch: SMS sent per second by notifyq worker processes, next to arq's no-op ceiling, a bare
aiohttp client and a naive Celery + twilio baseline, all against one simulator and one Redis.

A notifyq run: create the batch first (in-process Producer: rows and jobs), then start
``notifyq worker --burst``; the rate is (messages - 1) / (last creation - first creation) as the
simulator recorded them, so process start-up is not counted. The simulator's callbacks are off:
the receiver is measured by ``bench.callbacks``.

Two workers against Celery: Celery runs at prefork -c 4, 8 and 16 after the first two-worker run; then
the two-worker run and Celery at its best concurrency take turns ``PAIRS - 1`` more times. One run of
either moves by 10-20 % on this shared machine, so a single pair said 3.9 and the next 4.8 for the same code;
the reported figures are the medians over the pairs (every pair is in the details).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import common as c
from bench import profiling

N = int(os.environ.get("NOTIFYQ_BENCH_DISPATCH_N", "20000"))
CELERY_N = int(os.environ.get("NOTIFYQ_BENCH_CELERY_N", "6000"))
MAX_JOBS = 500
MAX_WORKERS = 2  # the most notifyq worker processes a run starts
# two workers against Celery: this many runs of each, in turns (the first Celery run of a pair is the best of
# the concurrency sweep); the ratio is the median of the pairs' ratios, each measured a minute or less apart
PAIRS = int(os.environ.get("NOTIFYQ_BENCH_DISPATCH_PAIRS", "3"))
POLL_DELAY_S = 0.05
RUN_TIMEOUT_S = 300.0
BENCH_DIR = Path(__file__).resolve().parent
CELERY_VENV = BENCH_DIR / ".venvs" / "celery"
# kombu 5.6's Redis transport imports `packaging` without declaring it: install it too
CELERY_REQUIREMENTS = ("celery==5.7.0", "redis>=6.1", "twilio==9.13.0", "packaging")


async def sim_rate(sim_url: str, expected: int) -> dict[str, Any]:
    msgs = await c.sim_get(sim_url, "/_sim/messages")
    times = [m["created_at"] for m in msgs]
    rate, span = c.rate_from_times(times)
    return {"messages": len(msgs), "expected": expected, "seconds": round(span, 3), "per_s": round(rate, 1)}


async def wait_messages(sim_url: str, expected: int, timeout_s: float, children: list[c.Child]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await c.sim_get(sim_url, "/_sim/stats")
        if stats["messages"] >= expected:
            return True
        if children and all(ch.poll() is not None for ch in children):
            return False
        await asyncio.sleep(0.25)
    return False


async def redis_cpu(redis_url: str, *, reset_stats: bool = False) -> float:
    r = Redis.from_url(redis_url)
    try:
        info = await r.info("cpu")
        if reset_stats:
            await r.config_resetstat()
    finally:
        await r.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def redis_commands(redis_url: str, per: int) -> dict[str, float]:
    """Redis commands per job/send since the last CONFIG RESETSTAT, by command (EVALSHA = one Lua call)."""
    r = Redis.from_url(redis_url)
    try:
        stats = await r.info("commandstats")
    finally:
        await r.aclose()
    counts = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if isinstance(v, dict)}
    counts.pop("info", None)
    counts.pop("config|resetstat", None)
    out = {k: round(v / max(per, 1), 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= per / 20}
    out["total"] = round(sum(counts.values()) / max(per, 1), 2)
    return out


async def notifyq_run(
    procs: c.Procs, env: dict[str, str], sim_url: str, *, workers: int, n: int, profile: str | None = None
) -> dict[str, Any]:
    await c.sim_post(sim_url, "/_sim/reset")
    batch_id, submit_s = await c.submit_in_process(env, c.sms_batch(n))
    redis_cpu0 = await redis_cpu(env["NOTIFYQ_REDIS_URL"], reset_stats=True)
    sim_cpu0 = c.cpu_seconds(procs.children[0].pid)
    kids = [procs.spawn("worker", c.worker_argv(burst=True), env) for _ in range(workers)]
    with profiling.record(kids[0].pid, profile or "none", duration_s=120, enabled=profile is not None) as prof:
        ok = await wait_messages(sim_url, n, RUN_TIMEOUT_S, kids)
        for kid in kids:
            await c.wait_exit(kid, 30)
    for kid in kids:
        procs.stop(kid)
    cpu = [k.cpu_s if k.cpu_s is not None else 0.0 for k in kids]
    redis_cpu_s = await redis_cpu(env["NOTIFYQ_REDIS_URL"]) - redis_cpu0
    sim_cpu_s = c.cpu_seconds(procs.children[0].pid) - sim_cpu0
    result = await sim_rate(sim_url, n)
    result.update({"batch_id": batch_id, "submit_s": round(submit_s, 2), "complete": ok, "workers": workers})
    result["worker_cpu_s"] = [round(x, 1) for x in cpu]
    result["redis_cpu_s"] = round(redis_cpu_s, 1)
    result["redis_commands_per_send"] = await redis_commands(env["NOTIFYQ_REDIS_URL"], n)
    result["simulator_cpu_s"] = round(sim_cpu_s, 1)
    result["worker_cpu_ms_per_send"] = _per_send(result, sum(cpu))
    result["machine_cpu_ms_per_send"] = _per_send(result, sum(cpu) + redis_cpu_s + sim_cpu_s)
    if prof is not None:
        result["profile"] = str(prof)
        result["profile_summary"] = profiling.summarize(prof, top=15)
    if not ok:
        result["worker_log_tail"] = kids[0].tail(1500)
    return result


async def arq_noop(procs: c.Procs, redis_url: str, n: int) -> dict[str, Any]:
    from arq.jobs import serialize_job  # noqa: PLC0415

    queue = "bench:noop"
    redis = Redis.from_url(redis_url)
    try:
        now_ms = int(time.time() * 1000)
        for start in range(0, n, 1000):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, min(n, start + 1000)):
                job_id = f"noop-{i}"
                pipe.psetex(
                    f"arq:job:{job_id}", 86_400_000, serialize_job("noop", (), {}, None, now_ms, serializer=None)
                )
                pipe.zadd(queue, {job_id: now_ms + i})
            await pipe.execute()
    finally:
        await redis.aclose()
    await redis_cpu(redis_url, reset_stats=True)
    out = procs.workdir / "arq-noop.json"
    argv = [c.PY, "-m", "bench.arq_noop_worker", redis_url, queue, str(MAX_JOBS), str(POLL_DELAY_S), str(out)]
    kid = procs.spawn("arq-noop", argv, {**os.environ, "PYTHONPATH": str(c.ROOT)})
    done = await c.wait_exit(kid, RUN_TIMEOUT_S)
    procs.stop(kid)
    if not done or not out.exists():
        return {"error": "arq no-op worker did not finish", "log": kid.tail()}
    data = json.loads(out.read_text())
    span = data["last"] - data["first"]
    return {
        "jobs": data["count"],
        "seconds": round(span, 3),
        "per_s": round((data["count"] - 1) / span, 1),
        "worker_cpu_ms_per_job": round(1000 * (kid.cpu_s or 0.0) / max(data["count"], 1), 2),
        "redis_commands_per_job": await redis_commands(redis_url, n),
    }


async def raw_client(procs: c.Procs, sim_url: str, n: int) -> dict[str, Any]:
    await c.sim_post(sim_url, "/_sim/reset")
    kid = procs.spawn(
        "raw-client",
        [c.PY, "-m", "bench.raw_client", sim_url, str(n), "100"],
        {**os.environ, "PYTHONPATH": str(c.ROOT)},
    )
    await c.wait_exit(kid, RUN_TIMEOUT_S)
    procs.stop(kid)
    lines = [ln for ln in kid.tail(4000).splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": kid.tail()}


def _uv() -> str:
    """The uv the Makefile uses: on PATH, or the one it bootstrapped into .tools/."""
    return shutil.which("uv") or str(c.ROOT / ".tools" / "bin" / "uv")


def celery_ready() -> bool:
    """Build bench/.venvs/celery (uv) when it is missing; True when it is usable."""
    py = CELERY_VENV / "bin" / "python"
    if not (CELERY_VENV / "bin" / "celery").exists():
        uv = _uv()
        print(f"  building {CELERY_VENV} with {uv} ...", flush=True)
        try:
            subprocess.run([uv, "venv", "-q", "-p", "3.11", str(CELERY_VENV)], check=True, timeout=300)
            subprocess.run([uv, "pip", "install", "-q", "-p", str(py), *CELERY_REQUIREMENTS], check=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"  could not build the Celery venv: {exc}", flush=True)
            return False
    check = subprocess.run([str(py), "-c", "import celery, kombu.transport.redis, twilio"], check=False, timeout=60)
    return check.returncode == 0


async def celery_run(procs: c.Procs, redis_url: str, sim_url: str, concurrency: int, n: int) -> dict[str, Any]:
    broker = c.redis_db_url(redis_url, 1)
    bench_dir = str(BENCH_DIR)
    env = {**os.environ, "BENCH_BROKER_URL": broker, "BENCH_SIM_URL": sim_url, "PYTHONPATH": bench_dir}
    env.pop("VIRTUAL_ENV", None)
    await c.sim_post(sim_url, "/_sim/reset")
    r = Redis.from_url(broker)
    await r.flushdb()
    await r.aclose()
    py = str(CELERY_VENV / "bin" / "python")
    enq = procs.spawn("celery-enqueue", [py, f"{bench_dir}/celery_tasks.py", "enqueue", str(n)], env)
    if not await c.wait_exit(enq, 300) or enq.proc.returncode != 0:
        return {"error": "enqueue failed", "log": enq.tail()}
    argv = [
        str(CELERY_VENV / "bin" / "celery"), "-A", "celery_tasks", "worker", "--pool", "prefork",
        "-c", str(concurrency), "-l", "warning", "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    redis_cpu0 = await redis_cpu(redis_url)
    sim_cpu0 = c.cpu_seconds(procs.children[0].pid)
    kid = procs.spawn(f"celery-c{concurrency}", argv, {**env, "PWD": bench_dir})
    ok = await wait_messages(sim_url, n, RUN_TIMEOUT_S, [kid])
    procs.stop(kid)  # a warm shutdown: the pool's processes are reaped first, so their CPU counts too
    redis_cpu_s = await redis_cpu(redis_url) - redis_cpu0
    sim_cpu_s = c.cpu_seconds(procs.children[0].pid) - sim_cpu0
    result = await sim_rate(sim_url, n)
    result.update({"concurrency": concurrency, "pool": "prefork", "complete": ok})
    result["worker_cpu_s"] = round(kid.cpu_s or 0.0, 1)
    result["redis_cpu_s"] = round(redis_cpu_s, 1)
    result["simulator_cpu_s"] = round(sim_cpu_s, 1)
    result["machine_cpu_ms_per_send"] = _per_send(result, (kid.cpu_s or 0.0) + redis_cpu_s + sim_cpu_s)
    if not ok:
        result["log"] = kid.tail(1500)
    return result


def _per_send(result: dict[str, Any], cpu_s: float) -> float:
    """CPU milliseconds of the machine per message sent (the senders' start-up included)."""
    return round(1000 * cpu_s / max(int(result.get("messages", 0)), 1), 2)


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    profile = bool(opts.get("profile"))
    details: dict[str, Any] = {
        "n": N,
        "max_jobs": MAX_JOBS,
        "poll_delay_s": POLL_DELAY_S,
        "account_max_in_flight": MAX_WORKERS * MAX_JOBS,
    }
    with c.workspace("dispatch") as procs, c.redis_server() as redis_url:
        _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        env = c.notifyq_env(
            redis_url=redis_url,
            data_dir=procs.workdir / "data",
            sim_url=sim_url,
            api_port=c.free_port(),
            # the account's in-flight cap must not bind either: every worker's sends may be in flight at once
            # (with a cap of one worker's max_jobs, two workers wait on it and hand chunks back)
            max_in_flight=MAX_WORKERS * MAX_JOBS,
            max_jobs=MAX_JOBS,
            poll_delay_s=POLL_DELAY_S,
        )
        await c.migrate(env)
        details["raw_aiohttp"] = await raw_client(procs, sim_url, N)
        print(f"  raw aiohttp: {details['raw_aiohttp']}", flush=True)
        details["arq_noop"] = await arq_noop(procs, redis_url, N)
        print(f"  arq no-op: {details['arq_noop']}", flush=True)
        details["notifyq_0ms"] = await notifyq_run(
            procs, env, sim_url, workers=1, n=N, profile="dispatch-0ms" if profile else None
        )
        print(f"  notifyq 1 worker 0 ms: {_brief(details['notifyq_0ms'])}", flush=True)
        await c.sim_post(sim_url, "/_sim/config", {"latency_s": 0.1})
        details["notifyq_100ms"] = await notifyq_run(
            procs, env, sim_url, workers=1, n=N, profile="dispatch-100ms" if profile else None
        )
        print(f"  notifyq 1 worker 100 ms: {_brief(details['notifyq_100ms'])}", flush=True)
        await c.sim_post(sim_url, "/_sim/config", {"latency_s": 0.0})
        details["notifyq_2workers_0ms"] = await notifyq_run(procs, env, sim_url, workers=MAX_WORKERS, n=N)
        print(f"  notifyq 2 workers 0 ms: {_brief(details['notifyq_2workers_0ms'])}", flush=True)
        celery: list[dict[str, Any]] = []
        pairs: list[dict[str, Any]] = []
        if celery_ready() and not opts.get("skip_celery"):
            for conc in (4, 8, 16):
                celery.append(await celery_run(procs, redis_url, sim_url, conc, CELERY_N))
                print(f"  celery prefork -c {conc}: {_brief(celery[-1])}", flush=True)
            best = max(celery, key=lambda r: r.get("per_s", 0.0))
            pairs.append(_pair(details["notifyq_2workers_0ms"], best))
            for _ in range(PAIRS - 1):
                notifyq = await notifyq_run(procs, env, sim_url, workers=MAX_WORKERS, n=N)
                again = await celery_run(procs, redis_url, sim_url, best["concurrency"], CELERY_N)
                pairs.append(_pair(notifyq, again))
                print(f"  pair {len(pairs)}: {json.dumps(pairs[-1])}", flush=True)
            # the details file is merged run over run: a note from a run without Celery must not stay
            details["celery_note"] = f"prefork -c 4 / 8 / 16 swept; -c {best['concurrency']} best, then {PAIRS} pairs"
        else:
            details["celery_note"] = f"no Celery venv at {CELERY_VENV}; see docs/benchmarks.md"
        details["celery"] = celery
        details["pairs_2workers_vs_celery"] = pairs
    arq_rate = details["arq_noop"].get("per_s", 0.0)
    best_celery = max(celery, key=lambda r: r.get("per_s", 0.0), default={})
    two_workers = _median([p["notifyq_2workers_per_s"] for p in pairs]) or details["notifyq_2workers_0ms"]["per_s"]
    results: dict[str, Any] = {
        "dispatch.notifyq_sends_per_s_0ms": details["notifyq_0ms"]["per_s"],
        "dispatch.notifyq_sends_per_s_100ms": details["notifyq_100ms"]["per_s"],
        "dispatch.arq_noop_jobs_per_s": arq_rate,
        "dispatch.notifyq_2workers_sends_per_s_0ms": two_workers,
        "dispatch.celery_twilio_sends_per_s": _median([p["celery_per_s"] for p in pairs]),
        "dispatch.raw_aiohttp_requests_per_s": round(details["raw_aiohttp"].get("per_s", 0.0), 1),
        "dispatch.ratio_vs_arq_noop_0ms": _ratio(details["notifyq_0ms"]["per_s"], arq_rate),
        "dispatch.ratio_vs_arq_noop_100ms": _ratio(details["notifyq_100ms"]["per_s"], arq_rate),
        "dispatch.ratio_vs_celery": _median([p["ratio"] for p in pairs]),
    }
    details["celery_best"] = {k: best_celery.get(k) for k in ("concurrency", "pool", "per_s")}
    return results, details


def _pair(notifyq: dict[str, Any], celery: dict[str, Any]) -> dict[str, Any]:
    """Two notifyq workers and Celery at its best concurrency, run one after the other."""
    ratio = _ratio(notifyq.get("per_s"), celery.get("per_s"))
    return {
        "notifyq_2workers_per_s": notifyq.get("per_s"),
        "celery_per_s": celery.get("per_s"),
        "celery_concurrency": celery.get("concurrency"),
        "ratio": ratio,
        # both CPU-bound on the same 2 cores: the ratio can be at most about the inverse ratio of these
        "notifyq_machine_cpu_ms_per_send": notifyq.get("machine_cpu_ms_per_send"),
        "celery_machine_cpu_ms_per_send": celery.get("machine_cpu_ms_per_send"),
        "complete": bool(notifyq.get("complete") and celery.get("complete")),
    }


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _brief(r: dict[str, Any]) -> str:
    keys = (
        "messages", "seconds", "per_s", "complete", "worker_cpu_s", "redis_cpu_s", "simulator_cpu_s",
        "machine_cpu_ms_per_send", "concurrency",
    )  # fmt: skip
    return json.dumps({k: r[k] for k in keys if k in r})
