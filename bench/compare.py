"""Two versions of the worker side by side: the machine's CPU per send, in alternating runs.

``python -m bench.compare REV [--against REV2] [--pairs 4] [--workers 2] [--n 20000]``

One machine of this kind drifts by 10-20 % within minutes, more than most changes move a figure, so
a change is judged by runs of the old and the new code taken in turns (A B, B A, A B, ...) against
one simulator and one Redis. ``REV`` (a git revision) is checked out into a scratch worktree and its
``src`` goes first on the workers' ``PYTHONPATH``; ``--against`` does the same for the other side
(default: this checkout, as it is). Each run sends ``--n`` SMS of a fresh batch with ``--workers``
worker processes, as ``bench.dispatch``'s two-worker run does; the CPU counted is the steady state's,
from 5 % to 95 % of the messages recorded by the simulator (start-up and shutdown left out), of every
worker, the simulator and Redis. It prints every run and then the medians of each side.

The batch is created by this checkout's code and the simulator is this checkout's: only the workers
differ. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import common as c

LOW, HIGH = 0.05, 0.95  # the part of the run that counts: from 5 % to 95 % of the messages
POLL_S = 0.05
RUN_TIMEOUT_S = 300.0


def _cpu(pid: int) -> float:
    return c.cpu_seconds(pid)


async def _run(
    procs: c.Procs, env: dict[str, str], sim: c.Child, sim_url: str, redis_pid: int, src: str | None, opts: Any
) -> dict[str, float]:
    worker_env = dict(env)
    if src is not None:
        worker_env["PYTHONPATH"] = src
    await c.sim_post(sim_url, "/_sim/reset")
    await c.submit_in_process(env, c.sms_batch(opts.n))
    kids = [procs.spawn("worker", c.worker_argv(burst=True), worker_env) for _ in range(opts.workers)]
    pids = {"simulator": sim.pid, "redis": redis_pid} | {f"worker{i}": k.pid for i, k in enumerate(kids)}
    first: tuple[float, int, dict[str, float]] | None = None
    last: tuple[float, int, dict[str, float]] | None = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while last is None:
        if time.monotonic() > deadline or all(k.poll() is not None for k in kids):
            raise RuntimeError(f"the run did not finish: {kids[0].tail(1500)}")
        sent = (await c.sim_get(sim_url, "/_sim/stats"))["messages"]
        snap = (time.monotonic(), sent, {name: _cpu(pid) for name, pid in pids.items()})
        if first is None and sent >= opts.n * LOW:
            first = snap
        if sent >= opts.n * HIGH:
            last = snap
        await asyncio.sleep(POLL_S)
    for kid in kids:
        await c.wait_exit(kid, 30)
        procs.stop(kid)
    if first is None:  # the 95 % snapshot is taken after the 5 % one, in the same loop
        raise RuntimeError("no snapshot at 5 % of the messages")
    sends = last[1] - first[1]
    cpu = {name: (last[2][name] - first[2][name]) * 1000 / sends for name in pids}
    workers = sum(v for name, v in cpu.items() if name.startswith("worker"))
    return {
        "sends_per_s": sends / (last[0] - first[0]),
        "machine_ms": workers + cpu["simulator"] + cpu["redis"],
        "workers_ms": workers,
        "simulator_ms": cpu["simulator"],
        "redis_ms": cpu["redis"],
    }


def _worktree(rev: str, into: Path) -> str:
    subprocess.run(["git", "-C", str(c.ROOT), "worktree", "add", "--detach", str(into), rev], check=True)
    return str(into / "src")


async def compare(opts: Any, src_a: str, src_b: str | None) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with c.workspace("compare") as procs, c.redis_server() as redis_url:
        sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        redis = Redis.from_url(redis_url)
        try:
            redis_pid = int((await redis.info("server"))["process_id"])
        finally:
            await redis.aclose()
        env = c.notifyq_env(
            redis_url=redis_url,
            data_dir=procs.workdir / "data",
            sim_url=sim_url,
            api_port=c.free_port(),
            max_in_flight=opts.workers * 500,
        )
        await c.migrate(env)
        for i in range(opts.pairs):
            order = [("A", src_a), ("B", src_b)]
            for side, src in order if i % 2 == 0 else order[::-1]:
                result = await _run(procs, env, sim, sim_url, redis_pid, src, opts)
                runs[side].append(result)
                print(side, {k: round(v, 3) for k, v in result.items()}, flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="side A: a git revision (its src/ runs the workers)")
    parser.add_argument("--against", help="side B: another revision (default: this checkout as it is)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=20_000)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="notifyq-compare-") as tmp:
        trees: list[Path] = []
        try:
            trees.append(Path(tmp) / "a")
            src_a = _worktree(opts.rev, trees[-1])
            src_b = None
            if opts.against:
                trees.append(Path(tmp) / "b")
                src_b = _worktree(opts.against, trees[-1])
            runs = asyncio.run(compare(opts, src_a, src_b))
        finally:
            for tree in trees:
                subprocess.run(["git", "-C", str(c.ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    names = {"A": opts.rev, "B": opts.against or "this checkout"}
    print()
    for side in "AB":
        medians = {k: round(statistics.median(r[k] for r in runs[side]), 3) for k in runs[side][0]}
        print(f"{side} ({names[side]}), median of {len(runs[side])}: {medians}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
