"""The paced dispatch scenario alone, with the arrivals per quarter second: where a paced run loses its rate.

``python -m bench.paced [--n 5000] [--workers 2] [--no-callbacks]``

One sender limited to ``bench.dispatch.PACED_LIMIT`` segments/s, as ``bench.dispatch``'s paced run, with
status callbacks on (applied by a running API) unless ``--no-callbacks``. Prints the window figures of
``bench.pacing.window_stats``, the messages that arrived in each quarter second, and the CPU per send of
each process. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from typing import Any

from bench import common as c
from bench import dispatch as d
from bench.pacing import window_stats


async def run(n: int, workers: int, callbacks: bool) -> dict[str, Any]:
    with c.workspace("paced") as procs, c.redis_server() as redis_url:
        _sim, sim_url = await c.start_simulator(procs, latency_s=0.0)
        api_port = c.free_port()
        env = d.run_env(procs, redis_url, sim_url, api_port)
        await c.migrate(env)
        await c.sim_post(sim_url, "/_sim/config", {"latency_s": 0.0, "callbacks": callbacks})
        api = procs.spawn("api", c.api_argv(), env)
        await c.wait_http(f"http://127.0.0.1:{api_port}/healthz", child=api)
        result = await d.notifyq_run(procs, d.paced(env), sim_url, workers=workers, n=n, api=api if callbacks else None)
        msgs = await c.sim_get(sim_url, "/_sim/messages")
    first = min(m["created_at"] for m in msgs)
    quarters: dict[int, int] = {}
    for m in msgs:
        q = math.floor((m["created_at"] - first) * 4)
        quarters[q] = quarters.get(q, 0) + 1
    return {
        "pacing": window_stats(msgs, d.PACED_LIMIT),
        "per_quarter_second": [quarters.get(q, 0) for q in range(max(quarters) + 1)],
        "cpu_ms_per_send": result.get("cpu_ms_per_send"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(run(args.n, args.workers, not args.no_callbacks))
    print(json.dumps(out["pacing"]))
    print("per 1/4 s:", " ".join(map(str, out["per_quarter_second"])))
    print("cpu ms per send:", json.dumps(out["cpu_ms_per_send"]))


if __name__ == "__main__":
    main()
