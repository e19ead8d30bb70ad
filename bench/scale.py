"""How cost grows as the work grows: ``python -m bench.scale [PART ...]`` (``make bench-scale`` runs all).

Parts (each writes its figures under ``scale.*`` into bench/results/latest.json, other keys kept):

* ``workers``: one unpaced batch sent by 1, 2 and 4 worker processes against the simulator; the
  machine's CPU (workers, simulator, Redis) per send, ``scale.cpu_ms_per_send_workers_N``.
* ``senders``: ``SENDERS`` long codes at 1 segment/s each (one batch per sender, ``PER_SENDER``
  messages each) over 4 workers. From the simulator's arrival times: the sliding 1-second windows over
  a sender's limit, and the utilisation (segments sent / what the limits allow while each sender had
  backlog). Redis' CPU per send against the same number of sends from one sender at
  ``SENDERS`` segments/s: ``scale.pacer_cpu_ratio_1000_vs_1``.
* ``intake``: a batch of ``INTAKE_N`` recipients posted to a running API as one streamed JSON body:
  seconds until it answers (accepted), and the API process' peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from bench import common as c
from bench import profiling
from bench import run as run_mod

SENDERS = int(os.environ.get("NOTIFYQ_BENCH_SCALE_SENDERS", "1000"))
PER_SENDER = int(os.environ.get("NOTIFYQ_BENCH_SCALE_PER_SENDER", "10"))
SENDER_WORKERS = 4
# the account's in-flight cap and each worker's send permits must not bind: a slow sender's chunk holds a
# permit for each of its next two or three booked slots (SENDERS * 3 / 4 workers = 750; docs/deploy.md)
SENDERS_MAX_IN_FLIGHT = 1000
SENDERS_MAX_JOBS = 1000
POLL_DELAY_S = 0.05
WORKER_COUNTS = (1, 2, 4)
WORKERS_N = int(os.environ.get("NOTIFYQ_BENCH_SCALE_WORKERS_N", "10000"))
INTAKE_N = int(os.environ.get("NOTIFYQ_BENCH_SCALE_INTAKE_N", "1000000"))
HTTP_ACCEPTED: Final = 202
PROFILE = {"on": False}  # --profile: py-spy the first worker of each senders run


def sender_numbers(n: int) -> list[str]:
    """``n`` distinct long codes (away from the recipients' numbers)."""
    return c.recipients(n, start=7_000_000)


def per_sender_stats(msgs: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """Windows over ``limit`` (sliding, each ending at a message) and the utilisation, per sender."""
    by_sender: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for m in msgs:
        by_sender[m["from"]].append((float(m["created_at"]), int(m["num_segments"])))
    over = 0
    worst = 0
    sent = 0.0
    allowed = 0.0
    gaps: list[float] = []
    for rows in by_sender.values():
        rows.sort()
        times = [t for t, _ in rows]
        prefix = [0]
        for _, s in rows:
            prefix.append(prefix[-1] + s)
        for i, t in enumerate(times):
            lo = bisect.bisect_right(times, t - 1.0)
            in_window = prefix[i + 1] - prefix[lo]
            worst = max(worst, in_window)
            over += in_window > limit
        gaps += [b - a for a, b in itertools.pairwise(times)]
        # after its first message, a sender with backlog could send `limit` segments per second
        sent += prefix[-1] - rows[0][1]
        allowed += (times[-1] - times[0]) * limit
    gaps.sort()
    return {
        "senders": len(by_sender),
        "messages": len(msgs),
        "windows_over_limit_sliding": over,
        "worst_sliding_window_segments": worst,
        "utilisation": round(sent / allowed, 3) if allowed else 0.0,
        "gap_p50_s": round(gaps[len(gaps) // 2], 3) if gaps else None,
        "gap_p90_s": round(gaps[int(len(gaps) * 0.9)], 3) if gaps else None,
        "gap_max_s": round(gaps[-1], 3) if gaps else None,
    }


async def submit_many(env: dict[str, str], batches: list[dict[str, Any]]) -> float:
    """Create ``batches`` with one in-process Producer; the seconds it took."""
    from notifyq import Producer  # noqa: PLC0415

    settings = c.settings_from_env(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    producer = await Producer.open(settings)
    try:
        for batch in batches:
            await producer.submit(batch)
    finally:
        await producer.close()
    return time.perf_counter() - t0


async def wait_sent(sim_url: str, n: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await c.sim_get(sim_url, "/_sim/stats"))["messages"] >= n:
            return True
        await asyncio.sleep(0.5)
    return False


async def senders_run(senders: list[str], per_sender: int, rate: float) -> dict[str, Any]:
    """Each of ``senders`` (at ``rate`` segments/s) sends ``per_sender`` messages, one batch each, through 4 workers."""
    n = len(senders) * per_sender
    with c.workspace("scale-senders") as procs, c.redis_server() as redis_url:
        _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        env = c.notifyq_env(
            redis_url=redis_url,
            data_dir=procs.workdir / "data",
            sim_url=sim_url,
            api_port=c.free_port(),
            senders=dict.fromkeys(senders, rate),
            max_in_flight=SENDERS_MAX_IN_FLIGHT,
            max_jobs=SENDERS_MAX_JOBS,
            poll_delay_s=POLL_DELAY_S,
        )
        await c.migrate(env)
        to = c.recipients(n)
        batches = [
            {"channel": "sms", "from": s, "body": "Hello", "recipients": to[i * per_sender : (i + 1) * per_sender]}
            for i, s in enumerate(senders)
        ]
        submit_s = await submit_many(env, batches)
        await c.redis_cpu(redis_url, reset_stats=True)
        kids = [procs.spawn("worker", c.worker_argv(burst=False), env) for _ in range(SENDER_WORKERS)]
        pids = {"simulator": procs.children[0].pid} | {f"worker{i}": k.pid for i, k in enumerate(kids)}
        meter = c.CpuMeter(redis_url, pids)
        before = await meter.read()
        t0 = time.monotonic()
        running: list[int] = []
        sampler = asyncio.create_task(sample_running(redis_url, running))
        try:
            with profiling.record(kids[0].pid, f"scale-senders-{len(senders)}", 120, enabled=PROFILE["on"]):
                ok = await wait_sent(sim_url, n, 3 * per_sender / rate + 240)
        finally:
            sampler.cancel()
        wall = time.monotonic() - t0
        after = await meter.read()
        for k in kids:
            procs.stop(k)
        msgs = await c.sim_get(sim_url, "/_sim/messages")
    cpu = {k: round(after[k] - before[k], 2) for k in after}
    return {
        "complete": ok,
        "submit_s": round(submit_s, 1),
        "wall_s": round(wall, 1),
        "cpu_s": cpu,
        "redis_cpu_ms_per_send": round(1000 * cpu["redis"] / max(len(msgs), 1), 4),
        "load_average": list(os.getloadavg()),
        "running_jobs_mean": round(sum(running) / max(len(running), 1), 1),
        "msgs": msgs,
    }


async def sample_running(redis_url: str, out: list[int]) -> None:
    """Every 250 ms (bounded): the jobs running in any worker (arq's in-progress keys)."""
    from redis.asyncio import Redis  # noqa: PLC0415

    r = Redis.from_url(redis_url)
    try:
        for _ in range(4000):
            out.append(len([k async for k in r.scan_iter(match="arq:in-progress:*", count=1000)]))
            await asyncio.sleep(0.25)
    finally:
        await r.aclose()


async def workers_part(n: int) -> dict[str, Any]:
    """The machine's CPU per send, one unpaced batch of ``n`` sent by 1, 2 and 4 burst workers."""
    from bench import dispatch as d  # noqa: PLC0415

    out: dict[str, Any] = {}
    for workers in WORKER_COUNTS:
        with c.workspace(f"scale-workers-{workers}") as procs, c.redis_server() as redis_url:
            _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
            env = c.notifyq_env(
                redis_url=redis_url,
                data_dir=procs.workdir / "data",
                sim_url=sim_url,
                api_port=c.free_port(),
                max_in_flight=max(WORKER_COUNTS) * d.MAX_JOBS,
                max_jobs=d.MAX_JOBS,
                poll_delay_s=POLL_DELAY_S,
            )
            await c.migrate(env)
            load = list(os.getloadavg())
            result = await d.notifyq_run(procs, env, sim_url, workers=workers, n=n)
        out[str(workers)] = {
            "machine_cpu_ms_per_send": result["machine_cpu_ms_per_send"],
            "cpu_ms_per_send": result["cpu_ms_per_send"],
            "per_s": result["per_s"],
            "load_average_at_start": load,
        }
        print(f"  {workers} worker(s): {out[str(workers)]}", flush=True)
    return out


async def senders_part(senders: int, per_sender: int) -> dict[str, Any]:
    """``senders`` at 1 segment/s each, then one sender at ``senders`` segments/s with as many sends."""
    many = await senders_run(sender_numbers(senders), per_sender, 1.0)
    many["pacing"] = per_sender_stats(many.pop("msgs"), 1.0)
    print(f"  {senders} senders: {many}", flush=True)
    one = await senders_run(sender_numbers(1), senders * per_sender, float(senders))
    one["pacing"] = per_sender_stats(one.pop("msgs"), float(senders))
    print(f"  1 sender at {senders}/s: {one}", flush=True)
    return {"many": many, "one": one}


async def intake_part(n: int) -> dict[str, Any]:
    """A batch of ``n`` recipients posted to a running API: seconds to its answer, the API's peak RSS."""
    from bench.enqueue import batch_body, post_batch, start_api  # noqa: PLC0415

    with c.workspace("scale-intake") as procs, c.redis_server() as redis_url:
        api, api_url, _env = await start_api(procs, redis_url)
        idle_mb = round(c.proc_status(api.pid, "VmRSS") / 1024, 1)
        body = batch_body(n)
        load = list(os.getloadavg())
        status, data, accept_s = await post_batch(api_url, body, 600)
        body_mb = round(len(body) / 1e6, 1)
        del body
        peak_mb = round(c.proc_status(api.pid, "VmHWM") / 1024, 1)
    out = {
        "n": n,
        "status": status,
        "total": data.get("total"),
        "accept_s": round(accept_s, 2),
        "api_peak_rss_mb": peak_mb,
        "api_idle_rss_mb": idle_mb,
        "body_mb": body_mb,
        "load_average_at_start": load,
    }
    print(f"  intake: {out}", flush=True)
    return out


PARTS = ("workers", "senders", "intake")


async def run_parts(parts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    figures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if "workers" in parts:
        details["workers"] = w = await workers_part(WORKERS_N)
        for k, v in w.items():
            figures[f"scale.cpu_ms_per_send_workers_{k}"] = v["machine_cpu_ms_per_send"]
    if "senders" in parts:
        details["senders"] = s = await senders_part(SENDERS, PER_SENDER)
        figures["scale.many_senders_windows_over"] = s["many"]["pacing"]["windows_over_limit_sliding"]
        figures["scale.many_senders_utilisation"] = s["many"]["pacing"]["utilisation"]
        one = s["one"]["redis_cpu_ms_per_send"]
        figures["scale.pacer_cpu_ratio_1000_vs_1"] = round(s["many"]["redis_cpu_ms_per_send"] / one, 3) if one else None
    if "intake" in parts:
        details["intake"] = i = await intake_part(INTAKE_N)
        figures["scale.accept_s_1m"] = i["accept_s"] if i["status"] == HTTP_ACCEPTED else None
        figures["scale.api_peak_rss_mb_1m"] = i["api_peak_rss_mb"]
    return figures, details


def write_results(figures: dict[str, Any], details: dict[str, Any], run: dict[str, Any]) -> Path:
    """Merge ``figures`` into bench/results/latest.json under ``scale.*`` (other keys kept); details apart.

    A run with a size override or a failed part is not the benchmark the goals are set for: it goes to
    bench/results/partial-scale.json instead.
    """
    results = run_mod.RESULTS
    results.mkdir(exist_ok=True)
    goals = {key: run_mod.verdict(key, value) for key, value in figures.items() if key in run_mod.GOALS}
    if not run["complete"]:
        path = results / "partial-scale.json"
        run_mod.write_together({path: {"run": run, "figures": figures, "goals": goals, "details": details}})
        return path
    latest_path, details_path = results / "latest.json", results / "details-scale.json"
    latest = json.loads(latest_path.read_text()) if latest_path.exists() else {}
    latest.setdefault("figures", {}).update(figures)
    latest["figures"] = dict(sorted(latest["figures"].items()))
    latest.setdefault("goals", {}).update(goals)
    # the stamp of the run that measured each part's figures (a part can be run alone)
    latest.setdefault("scale_runs", {}).update(dict.fromkeys(run["parts"], run))
    kept = json.loads(details_path.read_text()) if details_path.exists() else {}
    kept.update({part: {"run": run, **found} for part, found in details.items()})
    run_mod.write_together({latest_path: latest, details_path: kept})
    return latest_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"the parts to run, of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--profile", action="store_true", help="py-spy a worker of the senders part")
    args = parser.parse_args(argv)
    PROFILE["on"] = args.profile
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; expected some of {list(PARTS)}")
    parts = args.parts or list(PARTS)
    run = run_mod.stamp(sys.argv if argv is None else ["bench.scale", *argv])
    t0 = time.monotonic()
    failed: dict[str, str] = {}
    try:
        figures, details = asyncio.run(run_parts(parts))
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run
        failed["scale"] = repr(exc)
        figures, details = {}, {}
        print(f"  scale FAILED: {exc!r}", flush=True)
    run |= {
        "ended_at": run_mod.now(),
        "wall_s": round(time.monotonic() - t0, 1),
        "load_average_at_end": list(os.getloadavg()),
        "failed": failed,
        "parts": parts,
    }
    run["complete"] = not failed and not run["size_overrides"]
    written = write_results(figures, details, run)
    run_mod.print_table(figures)
    print(f"\ncommit {run['commit'][:12]}{' (dirty)' if run['dirty'] else ''}; written to {written}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
