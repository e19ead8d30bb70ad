"""``python -m bench.run all|dispatch|enqueue|memory|pacing|callbacks [--profile]``.

Runs the benchmarks one after another, prints a table, and merges the figures into
bench/results/latest.json (flat keys, e.g. ``dispatch.notifyq_sends_per_s_0ms``); the details of each
run (counts, spans, CPU seconds, profiles) go to bench/results/details-NAME.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("dispatch", "enqueue", "memory", "pacing", "callbacks")

GOALS: dict[str, tuple[str, float | None]] = {
    "dispatch.ratio_vs_arq_noop_0ms": (">=", 0.9),
    "dispatch.ratio_vs_arq_noop_100ms": (">=", 0.9),
    "dispatch.ratio_vs_celery": (">=", 5.0),
    "enqueue.seconds_to_accept": ("<=", 3.0),
    "enqueue.redis_bytes_per_recipient": ("<=", 300.0),
    "callbacks.per_s": (">=", 3000.0),
    "pacing.windows_over_limit": ("<=", 0.0),
    "pacing.limit_utilisation": (">=", 0.95),
}


def _verdict(key: str, value: Any) -> str:
    goal = GOALS.get(key)
    if goal is None or value is None:
        return ""
    op, target = goal
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'MISSED'} ({op} {target:g})"


def machine() -> dict[str, Any]:
    import os  # noqa: PLC0415

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("which", choices=("all", *NAMES))
    parser.add_argument("--profile", action="store_true", help="py-spy the measured process (where supported)")
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args(argv)
    names = NAMES if args.which == "all" else (args.which,)
    RESULTS.mkdir(exist_ok=True)
    latest_path = RESULTS / "latest.json"
    latest: dict[str, Any] = json.loads(latest_path.read_text()) if latest_path.exists() else {}
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        t0 = time.monotonic()
        try:
            results, details = asyncio.run(module.run({"profile": args.profile, "skip_celery": args.skip_celery}))
        except Exception as exc:  # noqa: BLE001 - report and go on with the next benchmark
            print(f"  {name} failed: {exc!r}", flush=True)
            failed.append(name)
            continue
        details["wall_s"] = round(time.monotonic() - t0, 1)
        details["machine"] = machine()
        details["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        path = RESULTS / f"details-{name}.json"
        merged = json.loads(path.read_text()) if path.exists() else {}  # a partial run keeps the other parts
        merged.update(details)
        path.write_text(json.dumps(merged, indent=2, default=str) + "\n")
        latest.update(results)
        latest_path.write_text(json.dumps(dict(sorted(latest.items())), indent=2) + "\n")
    print()
    print(f"{'key':<46} {'value':>12}  goal")
    for key, value in sorted(latest.items()):
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<46} {shown:>12}  {_verdict(key, value)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
