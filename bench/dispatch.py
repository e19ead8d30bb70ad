"""Dispatch: SMS sent per second by notifyq worker processes, next to arq's no-op ceiling, a bare
aiohttp client and a naive Celery + twilio baseline, all against one simulator and one Redis.

Every run sends its messages from a backlog that is queued before the senders start, and its rate is
(messages - 1) / (last creation - first creation) as the simulator recorded them, so start-up is not
counted. CPU per send is the machine's (senders, simulator, Redis) between the first message the
simulator reports and the last (polled every 50 ms).

notifyq runs: one worker process at 0 and 100 ms of simulator latency with callbacks off (the
receiver is measured by ``bench.callbacks``); one worker with the simulator's status callbacks on,
posted to a running ``notifyq api`` that makes them durable and applies them; two workers with
callbacks on and a sender limit below what they could do (``PACED_LIMIT`` segments/s), judged by the
rate achieved against the limit and the 1-second windows over it; two workers unpaced, callbacks off,
against Celery.

Celery gets the same messages as notifyq, warm (see ``celery_tasks.py``): prefork at 2, 3, 4 and 8
processes and a threads pool are swept, widened while the best prefork setting is at an end of the
range; then two notifyq workers and Celery at its best setting take turns ``PAIRS`` times, and the
figures are the medians over the pairs.
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
from bench import postgres as pg
from bench import profiling
from bench.pacing import window_stats
from notifyq.queue.jobs import CHUNK_SIZE
from notifyq.statuses import is_final

N = int(os.environ.get("NOTIFYQ_BENCH_DISPATCH_N", "20000"))
CELERY_N = int(os.environ.get("NOTIFYQ_BENCH_CELERY_N", str(N)))
PACED_N = int(os.environ.get("NOTIFYQ_BENCH_DISPATCH_PACED_N", "10000"))
PACED_LIMIT = 500.0  # segments/s for the one sender: below what two workers do unpaced
MAX_JOBS = 500
MAX_WORKERS = 2  # the most notifyq worker processes a run starts
PAIRS = int(os.environ.get("NOTIFYQ_BENCH_DISPATCH_PAIRS", "3"))
POLL_DELAY_S = 0.05
RUN_TIMEOUT_S = 600.0  # bounds a stuck run; a slow one on a busy machine takes a few minutes
CALLBACKS_TIMEOUT_S = 120.0
BENCH_DIR = Path(__file__).resolve().parent
CELERY_VENV = BENCH_DIR / ".venvs" / "celery"
# kombu 5.6's Redis transport imports `packaging` without declaring it: install it too
CELERY_REQUIREMENTS = ("celery==5.7.0", "redis>=6.1", "twilio==9.13.0", "packaging")
CELERY_PREFORK = (2, 3, 4, 8)  # widened below 2 or above 8 while the best is at an end
CELERY_PREFORK_LIMITS = (1, 32)
CELERY_THREADS = 16
CELERY_REAL_QUEUE = "bench.real"
CELERY_WARM_QUEUE = "bench.warm"
CELERY_READY_TIMEOUT_S = 60.0

MEANINGS = {
    "ratio_vs_arq_noop": (
        f"notifyq sends {CHUNK_SIZE} deliveries per arq job, so this is notifyq's sends per second against "
        "the most jobs per second arq itself runs (a no-op job): the ceiling of any design that runs one "
        "arq job per message. It is not a measure of arq's overhead per job."
    ),
    "ratio_vs_celery": (
        "two notifyq worker processes against Celery (one task per message, the official twilio client) at "
        "its best pool setting of the sweep, both sending the same number of messages from a queued backlog "
        "with their libraries imported before the clock starts; the median of alternating pairs."
    ),
    "cpu_ratio_vs_celery": (
        "Celery's CPU per send over two notifyq workers' (the machine's: senders, simulator, Redis), in the same "
        "pairs: what ratio_vs_celery comes to when both are CPU-bound on the same cores, and steadier than it "
        "on a machine shared with other work."
    ),
}


class RunIncompleteError(RuntimeError):
    """A run did not send everything it was given: it yields no figure."""


async def sim_rate(sim_url: str, expected: int) -> dict[str, Any]:
    msgs = await c.sim_get(sim_url, "/_sim/messages")
    times = [m["created_at"] for m in msgs]
    rate, span = c.rate_from_times(times)
    return {"messages": len(msgs), "expected": expected, "seconds": round(span, 3), "per_s": round(rate, 1)}


async def measure(
    sim_url: str, expected: int, meter: c.CpuMeter, children: list[c.Child], timeout_s: float = RUN_TIMEOUT_S
) -> dict[str, Any]:
    """Wait (bounded) for ``expected`` messages at the simulator; the machine's CPU per send between the
    first poll that saw a message and the one that saw them all."""
    first: tuple[int, dict[str, float]] | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = (await c.sim_get(sim_url, "/_sim/stats"))["messages"]
        if first is None and count > 0:
            first = (count, await meter.read())
        if count >= expected:
            break
        if children and all(ch.poll() is not None for ch in children):
            return {"complete": False}
        await asyncio.sleep(0.05)
    else:
        return {"complete": False}
    last = await meter.read()
    if first is None:  # expected was 0: no window
        return {"complete": True}
    sends = max(count - first[0], 1)
    per_send = {name: round(1000 * (last[name] - first[1][name]) / sends, 3) for name in last}
    return {
        "complete": True,
        "cpu_ms_per_send": per_send,
        "machine_cpu_ms_per_send": round(sum(per_send.values()), 3),
        "cpu_window_sends": sends,
    }


async def redis_commands(redis_url: str, per: int) -> dict[str, float]:
    """Redis commands per job/send since the last CONFIG RESETSTAT, by command (EVALSHA = one Lua call)."""
    r = Redis.from_url(redis_url)
    try:
        stats = await r.info("commandstats")
    finally:
        await r.aclose()
    counts = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if isinstance(v, dict)}
    for key in ("info", "config|resetstat", "xlen"):
        counts.pop(key, None)
    out = {k: round(v / max(per, 1), 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= per / 20}
    out["total"] = round(sum(counts.values()) / max(per, 1), 2)
    return out


async def notifyq_run(
    procs: c.Procs,
    env: dict[str, str],
    sim_url: str,
    *,
    workers: int,
    n: int,
    api: c.Child | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Queue a batch of ``n``, then start ``workers`` worker processes; raises when not every message went.

    With ``api`` (the process the simulator's callbacks go to, when they are on) its CPU counts too, the
    workers run until every message went (a paced run defers jobs), and the run is complete once every
    callback is applied. Without, burst workers exit once the lanes are empty.
    """
    callbacks = api is not None
    await c.sim_post(sim_url, "/_sim/reset")
    batch_id, submit_s = await c.submit_in_process(env, c.sms_batch(n))
    await c.redis_cpu(env["NOTIFYQ_REDIS_URL"], reset_stats=True)
    kids = [procs.spawn("worker", c.worker_argv(burst=not callbacks), env) for _ in range(workers)]
    pids = {"simulator": procs.children[0].pid} | _pids("worker", kids) | ({"api": api.pid} if api else {})
    meter = c.CpuMeter(env["NOTIFYQ_REDIS_URL"], pids, env.get("NOTIFYQ_DATABASE_URL"))
    with profiling.record(kids[0].pid, profile or "none", duration_s=120, enabled=profile is not None) as prof:
        async with pg.connections_sampled(env.get("NOTIFYQ_DATABASE_URL")) as connections:
            window = await measure(sim_url, n, meter, kids)
        if not callbacks:
            for kid in kids:
                await c.wait_exit(kid, 30)
    for kid in kids:
        procs.stop(kid)
    result = await sim_rate(sim_url, n)
    result.update({"batch_id": batch_id, "submit_s": round(submit_s, 2), "workers": workers, **window})
    result["arq_jobs_per_s"] = round(result["per_s"] / CHUNK_SIZE, 1)
    result["redis_commands_per_send"] = await redis_commands(env["NOTIFYQ_REDIS_URL"], n)
    if connections is not None:
        result["postgres_connections"] = connections.figures()
    if callbacks:
        result["callbacks"] = await settled_callbacks(env, sim_url, batch_id, n)
    if prof is not None:
        result["profile"] = str(prof)
        result["profile_summary"] = profiling.summarize(prof, top=15)
    if not result["complete"] or not result.get("callbacks", {}).get("complete", True):
        raise RunIncompleteError(f"notifyq run incomplete: {_brief(result)}\n{kids[0].tail(1500)}")
    return result


async def settled_callbacks(env: dict[str, str], sim_url: str, batch_id: str, n: int) -> dict[str, Any]:
    """Wait (bounded) until the simulator has posted every status callback and the API has applied them all."""
    expected = 2 * n  # sent, then delivered
    deadline = time.monotonic() + CALLBACKS_TIMEOUT_S
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = await c.sim_get(sim_url, "/_sim/stats")
        if stats["callbacks_sent"] + stats["callbacks_failed"] >= expected:
            break
        await asyncio.sleep(0.25)
    left = await c.callback_stream_left(env["NOTIFYQ_REDIS_URL"], max(deadline - time.monotonic(), 1.0))
    counts = await c.store_counts(env, batch_id)
    out = {
        "expected": expected,
        "answered": stats.get("callbacks_sent"),
        "not_2xx": stats.get("callbacks_rejected"),
        "failed": stats.get("callbacks_failed"),
        "stream_left": left,
        "applied_events": counts["callback_events"],
        "deliveries_by_status": counts["deliveries_by_status"],
    }
    out["complete"] = (
        out["answered"] == expected
        and out["not_2xx"] == 0
        and counts["callback_events"] == expected
        # every delivery final (the simulator makes a few of its recipients undelivered or failed)
        and sum(k for status, k in counts["deliveries_by_status"].items() if is_final("sms", status)) == n
    )
    return out


def run_env(
    procs: c.Procs, redis_url: str, sim_url: str, api_port: int, database_url: str | None = None
) -> dict[str, str]:
    """The notifyq processes' environment for a dispatch run (SQLite in the scratch directory, or
    ``database_url``)."""
    return c.notifyq_env(
        redis_url=redis_url,
        data_dir=procs.workdir / "data",
        sim_url=sim_url,
        api_port=api_port,
        # the account's in-flight cap must not bind either: every worker's sends may be in flight at once
        max_in_flight=MAX_WORKERS * MAX_JOBS,
        max_jobs=MAX_JOBS,
        poll_delay_s=POLL_DELAY_S,
        database_url=database_url,
    )


def paced(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the one sender limited to ``PACED_LIMIT`` segments/s."""
    return {**env, "NOTIFYQ_PACING__SENDERS": json.dumps({c.SENDER: PACED_LIMIT})}


async def paced_run(procs: c.Procs, env: dict[str, str], sim_url: str, n: int, api: c.Child) -> dict[str, Any]:
    """Two workers, callbacks on, one sender limited to ``PACED_LIMIT`` segments/s."""
    paced_env = paced(env)
    result = await notifyq_run(procs, paced_env, sim_url, workers=MAX_WORKERS, n=n, api=api)
    msgs = await c.sim_get(sim_url, "/_sim/messages")
    result["pacing"] = window_stats(msgs, PACED_LIMIT)
    result["limit_segments_per_s"] = PACED_LIMIT
    return result


async def arq_noop(procs: c.Procs, redis_url: str, n: int) -> dict[str, Any]:
    from arq.jobs import serialize_job  # noqa: PLC0415

    from notifyq.queue.arq_compat import JOB_KEY_PREFIX  # noqa: PLC0415

    queue = "bench:noop"
    redis = Redis.from_url(redis_url)
    try:
        now_ms = int(time.time() * 1000)
        for start in range(0, n, 1000):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, min(n, start + 1000)):
                job_id = f"noop-{i}"
                pipe.psetex(
                    JOB_KEY_PREFIX + job_id, 86_400_000, serialize_job("noop", (), {}, None, now_ms, serializer=None)
                )
                pipe.zadd(queue, {job_id: now_ms + i})
            await pipe.execute()
    finally:
        await redis.aclose()
    await c.redis_cpu(redis_url, reset_stats=True)
    out = procs.workdir / "arq-noop.json"
    argv = [c.PY, "-m", "bench.arq_noop_worker", redis_url, queue, str(MAX_JOBS), str(POLL_DELAY_S), str(out)]
    kid = procs.spawn("arq-noop", argv, {**os.environ, "PYTHONPATH": str(c.ROOT)})
    done = await c.wait_exit(kid, RUN_TIMEOUT_S)
    procs.stop(kid)
    if not done or not out.exists():
        raise RunIncompleteError(f"the arq no-op worker did not finish:\n{kid.tail()}")
    data = json.loads(out.read_text())
    if data["count"] != n:
        raise RunIncompleteError(f"the arq no-op worker ran {data['count']} of {n} jobs")
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
    if not lines:
        raise RunIncompleteError(f"the bare aiohttp client failed:\n{kid.tail()}")
    return dict(json.loads(lines[-1]))


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


async def _celery_script(procs: c.Procs, env: dict[str, str], name: str, *args: str, timeout_s: float = 300) -> None:
    py = str(CELERY_VENV / "bin" / "python")
    kid = procs.spawn(name, [py, str(BENCH_DIR / "celery_tasks.py"), *args], env)
    if not await c.wait_exit(kid, timeout_s) or kid.proc.returncode != 0:
        procs.stop(kid)
        raise RunIncompleteError(f"celery_tasks.py {' '.join(args)} failed:\n{kid.tail()}")


def _names(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()]


async def _wait_ready(ready_dir: Path, worker: c.Child, children: int) -> None:
    """Until the worker consumes and ``children`` pool processes have built their clients (bounded)."""
    deadline = time.monotonic() + CELERY_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        names = _names(ready_dir)
        if "worker" in names and sum(name.startswith("child-") for name in names) >= children:
            return
        if worker.poll() is not None:
            break
        await asyncio.sleep(0.1)
    raise RunIncompleteError(f"the Celery worker did not get ready:\n{worker.tail()}")


async def celery_run(
    procs: c.Procs, redis_url: str, sim_url: str, pool: str, concurrency: int, n: int
) -> dict[str, Any]:
    """Celery, warm, sending ``n`` messages queued beforehand; raises when not every message went."""
    broker = c.redis_db_url(redis_url, 1)
    ready_dir = procs.workdir / f"celery-ready-{len(procs.children)}"
    ready_dir.mkdir()
    env = {**os.environ, "BENCH_BROKER_URL": broker, "BENCH_SIM_URL": sim_url, "PYTHONPATH": str(BENCH_DIR)}
    env["BENCH_READY_DIR"] = str(ready_dir)
    env.pop("VIRTUAL_ENV", None)
    await c.sim_post(sim_url, "/_sim/reset")
    r = Redis.from_url(broker)
    await r.flushdb()
    await r.aclose()
    await _celery_script(procs, env, "celery-enqueue", "enqueue", str(n), CELERY_REAL_QUEUE)
    argv = [
        str(CELERY_VENV / "bin" / "celery"), "-A", "celery_tasks", "worker", "--pool", pool,
        "-c", str(concurrency), "-Q", CELERY_WARM_QUEUE, "-l", "warning",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    # a few real sends on the warm-up queue: the processes have made requests before the clock starts
    warm = 4 * concurrency
    kid = procs.spawn(f"celery-{pool}-{concurrency}", argv, {**env, "PWD": str(BENCH_DIR)})
    try:
        await _wait_ready(ready_dir, kid, concurrency if pool == "prefork" else 0)
        await _celery_script(procs, env, "celery-warm", "enqueue", str(warm), CELERY_WARM_QUEUE)
        await _wait_count(sim_url, warm, kid)
        await c.sim_post(sim_url, "/_sim/reset")
        meter = c.CpuMeter(redis_url, {"simulator": procs.children[0].pid, "celery": kid.pid})
        await _celery_script(procs, env, "celery-consume", "consume", CELERY_REAL_QUEUE, timeout_s=60)
        window = await measure(sim_url, n, meter, [kid])
    finally:
        procs.stop(kid)
    result = await sim_rate(sim_url, n)
    result.update({"pool": pool, "concurrency": concurrency, "warm_up_sends": warm, **window})
    if not result["complete"]:
        raise RunIncompleteError(f"Celery run incomplete: {_brief(result)}\n{kid.tail(1500)}")
    return result


async def _wait_count(sim_url: str, expected: int, worker: c.Child) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if (await c.sim_get(sim_url, "/_sim/stats"))["messages"] >= expected:
            return
        if worker.poll() is not None:
            break
        await asyncio.sleep(0.1)
    raise RunIncompleteError(f"Celery's warm-up did not finish:\n{worker.tail()}")


async def celery_sweep(procs: c.Procs, redis_url: str, sim_url: str) -> list[dict[str, Any]]:
    """Prefork at CELERY_PREFORK, widened until the best is inside the range, and one threads pool."""
    runs: list[dict[str, Any]] = []

    async def one(pool: str, concurrency: int) -> None:
        runs.append(await celery_run(procs, redis_url, sim_url, pool, concurrency, CELERY_N))
        print(f"  celery {pool} -c {concurrency}: {_brief(runs[-1])}", flush=True)

    for conc in CELERY_PREFORK:
        await one("prefork", conc)
    low, high = CELERY_PREFORK_LIMITS
    while True:
        prefork = sorted((r for r in runs if r["pool"] == "prefork"), key=lambda r: r["concurrency"])
        best = max(prefork, key=lambda r: r["per_s"])["concurrency"]
        if best == prefork[0]["concurrency"] and best > low:
            await one("prefork", max(low, best // 2))
        elif best == prefork[-1]["concurrency"] and best < high:
            await one("prefork", min(high, best * 2))
        else:
            break
    await one("threads", CELERY_THREADS)
    return runs


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures and the details; the store is ``opts["database_url"]`` when given (PostgreSQL), else SQLite."""
    database_url: str | None = opts.get("database_url")
    # the baselines touch no store: on PostgreSQL only notifyq's runs are measured
    store_only = database_url is not None
    skip_celery = bool(opts.get("skip_celery")) or store_only
    if not skip_celery and not celery_ready():
        raise RunIncompleteError(f"no usable Celery venv at {CELERY_VENV} (see docs/benchmarks.md)")
    profile = bool(opts.get("profile"))
    details: dict[str, Any] = {
        "n": N,
        "celery_n": CELERY_N,
        "paced_n": PACED_N,
        "max_jobs": MAX_JOBS,
        "poll_delay_s": POLL_DELAY_S,
        "account_max_in_flight": MAX_WORKERS * MAX_JOBS,
        "chunk_size": CHUNK_SIZE,
        "meanings": MEANINGS,
        "store": "postgresql" if store_only else "sqlite",
    }
    with c.workspace("dispatch") as procs, c.redis_server() as redis_url:
        _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        api_port = c.free_port()
        env = run_env(procs, redis_url, sim_url, api_port, database_url)
        await c.migrate(env)
        if not store_only:
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
        await c.sim_post(sim_url, "/_sim/config", {"latency_s": 0.0, "callbacks": True})
        api = procs.spawn("api", c.api_argv(), env)
        await c.wait_http(f"http://127.0.0.1:{api_port}/healthz", child=api)
        details["notifyq_0ms_callbacks"] = await notifyq_run(procs, env, sim_url, workers=1, n=N, api=api)
        print(f"  notifyq 1 worker 0 ms, callbacks on: {_brief(details['notifyq_0ms_callbacks'])}", flush=True)
        details["paced"] = await paced_run(procs, env, sim_url, PACED_N, api)
        print(f"  notifyq 2 workers paced at {PACED_LIMIT:g}/s: {json.dumps(details['paced']['pacing'])}", flush=True)
        await c.sim_post(sim_url, "/_sim/config", {"callbacks": False})
        procs.stop(api)
        details["notifyq_2workers_0ms"] = await notifyq_run(procs, env, sim_url, workers=MAX_WORKERS, n=N)
        print(f"  notifyq 2 workers 0 ms: {_brief(details['notifyq_2workers_0ms'])}", flush=True)
        if not skip_celery:
            details.update(await against_celery(procs, env, redis_url, sim_url, details["notifyq_2workers_0ms"]))
    paced = details["paced"]["pacing"]
    results: dict[str, Any] = {
        "dispatch.notifyq_sends_per_s_0ms": details["notifyq_0ms"]["per_s"],
        "dispatch.notifyq_sends_per_s_100ms": details["notifyq_100ms"]["per_s"],
        "dispatch.notifyq_sends_per_s_0ms_callbacks": details["notifyq_0ms_callbacks"]["per_s"],
        "dispatch.paced_limit_segments_per_s": PACED_LIMIT,
        "dispatch.paced_segments_per_s": paced["segments_per_s"],
        "dispatch.paced_limit_utilisation": paced["utilisation"],
        "dispatch.paced_windows_over_limit": paced["windows_over_limit_sliding"],
        "dispatch.notifyq_machine_cpu_ms_per_send_0ms": details["notifyq_0ms"]["machine_cpu_ms_per_send"],
    }
    if store_only:
        two = details["notifyq_2workers_0ms"]
        results |= {
            "dispatch.notifyq_2workers_sends_per_s_0ms": two["per_s"],
            "dispatch.notifyq_2workers_machine_cpu_ms_per_send": two["machine_cpu_ms_per_send"],
            "dispatch.connections_peak_open_0ms_callbacks": details["notifyq_0ms_callbacks"]["postgres_connections"][
                "peak_open"
            ],
            "dispatch.connections_peak_active_0ms_callbacks": details["notifyq_0ms_callbacks"]["postgres_connections"][
                "peak_active"
            ],
            "dispatch.connections_peak_active_2workers_0ms": two["postgres_connections"]["peak_active"],
            "dispatch.connections_peak_open_paced": details["paced"]["postgres_connections"]["peak_open"],
            "dispatch.connections_peak_active_paced": details["paced"]["postgres_connections"]["peak_active"],
        }
    else:
        arq_rate = details["arq_noop"]["per_s"]
        results |= {
            "dispatch.arq_noop_jobs_per_s": arq_rate,
            "dispatch.raw_aiohttp_requests_per_s": round(details["raw_aiohttp"]["per_s"], 1),
            "dispatch.ratio_vs_arq_noop_0ms": _ratio(details["notifyq_0ms"]["per_s"], arq_rate),
            "dispatch.ratio_vs_arq_noop_100ms": _ratio(details["notifyq_100ms"]["per_s"], arq_rate),
        }
    pairs = details.get("pairs_2workers_vs_celery")
    if pairs:
        results |= {
            "dispatch.notifyq_2workers_sends_per_s_0ms": _median([p["notifyq_2workers_per_s"] for p in pairs]),
            "dispatch.celery_twilio_sends_per_s": _median([p["celery_per_s"] for p in pairs]),
            "dispatch.ratio_vs_celery": _median([p["ratio"] for p in pairs]),
            "dispatch.notifyq_2workers_machine_cpu_ms_per_send": _median(
                [p["notifyq_machine_cpu_ms_per_send"] for p in pairs]
            ),
            "dispatch.celery_machine_cpu_ms_per_send": _median([p["celery_machine_cpu_ms_per_send"] for p in pairs]),
            "dispatch.cpu_ratio_vs_celery": _median([p["cpu_ratio"] for p in pairs]),
        }
    return results, details


async def against_celery(
    procs: c.Procs, env: dict[str, str], redis_url: str, sim_url: str, first: dict[str, Any]
) -> dict[str, Any]:
    """The sweep, then ``PAIRS`` pairs of two notifyq workers and Celery at its best (``first``: the first
    pair's notifyq run, made just before the sweep)."""
    celery = await celery_sweep(procs, redis_url, sim_url)
    best = max(celery, key=lambda r: r["per_s"])
    pairs = [_pair(first, best)]
    print(f"  pair 1: {json.dumps(pairs[-1])}", flush=True)
    for _ in range(PAIRS - 1):
        notifyq = await notifyq_run(procs, env, sim_url, workers=MAX_WORKERS, n=N)
        again = await celery_run(procs, redis_url, sim_url, best["pool"], best["concurrency"], CELERY_N)
        pairs.append(_pair(notifyq, again))
        print(f"  pair {len(pairs)}: {json.dumps(pairs[-1])}", flush=True)
    prefork = sorted((r for r in celery if r["pool"] == "prefork"), key=lambda r: r["concurrency"])
    best_prefork = max(prefork, key=lambda r: r["per_s"])["concurrency"]
    return {
        "celery": celery,
        "celery_best": {
            "pool": best["pool"],
            "concurrency": best["concurrency"],
            "per_s": best["per_s"],
            "prefork_tried": [r["concurrency"] for r in prefork],
            "best_prefork_concurrency": best_prefork,
            # a slower prefork setting on each side of the best one (else it sits at a limit of the widening)
            "prefork_bracketed": prefork[0]["concurrency"] < best_prefork < prefork[-1]["concurrency"],
        },
        "pairs_2workers_vs_celery": pairs,
    }


def _pids(name: str, kids: list[c.Child]) -> dict[str, int]:
    return {f"{name}{i}": kid.pid for i, kid in enumerate(kids)}


def _pair(notifyq: dict[str, Any], celery: dict[str, Any]) -> dict[str, Any]:
    """Two notifyq workers and Celery at its best setting, run one after the other."""
    return {
        "notifyq_2workers_per_s": notifyq["per_s"],
        "celery_per_s": celery["per_s"],
        "celery_pool": celery["pool"],
        "celery_concurrency": celery["concurrency"],
        "ratio": _ratio(notifyq["per_s"], celery["per_s"]),
        # both CPU-bound on the same cores: the ratio can be at most about the inverse ratio of these
        "notifyq_machine_cpu_ms_per_send": notifyq["machine_cpu_ms_per_send"],
        "celery_machine_cpu_ms_per_send": celery["machine_cpu_ms_per_send"],
        "cpu_ratio": _ratio(celery["machine_cpu_ms_per_send"], notifyq["machine_cpu_ms_per_send"]),
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _brief(r: dict[str, Any]) -> str:
    keys = ("messages", "seconds", "per_s", "complete", "machine_cpu_ms_per_send", "cpu_ms_per_send", "callbacks")
    return json.dumps({k: r[k] for k in keys if k in r})
