"""Callbacks: signed message-status callbacks into one ``notifyq api --no-applier`` process (the receiver),
with ``notifyq applier`` in a process of its own applying them to the store meanwhile, as deployed
for throughput (plain ``notifyq api`` runs both in one process).

The receiver answers 200 once a callback is in a Redis stream, so this Redis runs as a deployment
that makes that claim would: ``appendonly yes``, ``appendfsync everysec`` (set before the API starts,
checked through INFO). Delivery ids come from a real batch (in-process Producer; no worker runs).
Every request is a distinct callback, never a replay: each delivery gets one ``sent`` and one
``delivered`` callback with Twilio's form fields, signed with ``compute_signature`` over
NOTIFYQ_PUBLIC_BASE_URL + path beforehand, and a run that uses up its callbacks yields no figure.

The load generator is a separate process, so the receiver has a core of its own as far as 2 cores
allow. First an open loop at 1,000/s (p99 from the scheduled send time, Python generator), then a
closed loop at concurrency 64 for the most callbacks per second answered 200 (= made durable), with
wrk (installed with apt-get when missing and allowed; else the Python generator, and the run says so).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from redis.asyncio import Redis

from bench import common as c
from bench import profiling

DELIVERIES = int(os.environ.get("NOTIFYQ_BENCH_CALLBACK_DELIVERIES", "100000"))
STATUSES = ("sent", "delivered")
OPEN_RATE = 1000.0
OPEN_S = 10.0
CLOSED_CONCURRENCY = 64
CLOSED_S = 15.0
AOF_READY_TIMEOUT_S = 60.0
APPLY_TIMEOUT_S = 120.0


class OutOfCallbacksError(RuntimeError):
    """The closed loop used every distinct callback before its time was up: more are needed."""


async def delivery_ids(env: dict[str, str], batch_id: str, n: int) -> list[str]:
    from notifyq import Producer  # noqa: PLC0415

    producer = await Producer.open(c.settings_from_env(env))
    ids: list[str] = []
    try:
        after = ""
        for _ in range(n // 1000 + 2):
            page = await producer.deliveries(batch_id, status=None, after=after, limit=1000)
            items = page["items"]
            if not items:
                break
            ids += [d["id"] for d in items]
            after = items[-1]["id"]
    finally:
        await producer.close()
    return ids


def signed_requests(base_url: str, ids: list[str], recipients: list[str]) -> list[list[Any]]:
    from notifyq.provider.signature import compute_signature  # noqa: PLC0415

    out: list[list[Any]] = []
    for status in STATUSES:
        for i, (did, to) in enumerate(zip(ids, recipients, strict=False)):
            sid = f"SM{i:032x}"
            form = {
                "AccountSid": c.ACCOUNT_SID,
                "ApiVersion": "2010-04-01",
                "From": c.SENDER,
                "To": to,
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "NumSegments": "1",
                "NumMedia": "0",
                "ChannelToAddress": to,
                "RawDlrDoneDate": "2611221200",
            }
            url = f"{base_url}/twilio/message-status/{did}"
            out.append([url, compute_signature(c.AUTH_TOKEN, url, form), form])
    return out


async def applied(env: dict[str, str], redis_url: str, batch_id: str, applier: c.Child) -> dict[str, Any]:
    """Wait (bounded) until the applier has emptied the stream; what it applied, and what is left."""
    left = await c.callback_stream_left(redis_url, APPLY_TIMEOUT_S, applier)
    counts = await c.store_counts(env, batch_id)
    return {
        "stream_left": left,
        "callback_events_in_store": counts["callback_events"],
        "applier_alive": applier.poll() is None,
    }


async def enable_aof(redis_url: str) -> dict[str, Any]:
    """Turn on ``appendonly yes`` with ``appendfsync everysec``, wait until the AOF is live, and say where it is."""
    r = Redis.from_url(redis_url, decode_responses=True)
    try:
        await r.config_set("appendfsync", "everysec")
        await r.config_set("appendonly", "yes")  # starts a rewrite; appends go to the AOF once it is done
        for _ in range(int(AOF_READY_TIMEOUT_S * 10)):
            info = await r.info("persistence")
            if info["aof_enabled"] and not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"Redis did not turn on its AOF within {AOF_READY_TIMEOUT_S:g} s: {info}")
        config = {k: v for k, v in (await r.config_get("append*")).items() if k in ("appendonly", "appendfsync")}
        directory = (await r.config_get("dir"))["dir"]
        version = (await r.info("server"))["redis_version"]
    finally:
        await r.aclose()
    if config != {"appendonly": "yes", "appendfsync": "everysec"}:
        raise RuntimeError(f"Redis refused the AOF settings: {config}")
    return {**config, "dir": directory, "filesystem": _filesystem(directory), "redis_version": version}


def _filesystem(path: str) -> str | None:
    """The type of the file system ``path`` is on (the longest mount point that holds it), from /proc/mounts."""
    best: tuple[int, str] | None = None
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fstype, *_ = line.split()
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and (best is None or len(mount) > best[0]):
                best = (len(mount), fstype)
    except (OSError, ValueError):
        return None
    return best[1] if best else None


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path, installing it with apt-get when missing and this runs as root; and what happened."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk -t1 drove the closed loop"
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("  wrk not found: installing it with apt-get install -y wrk ...", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if not _quietly(install):  # the package lists may be missing or stale
            _quietly(["apt-get", "update", "-q"])
            _quietly(install)
        found = shutil.which("wrk")
        if found:
            return found, "wrk -t1 drove the closed loop (installed by this run with apt-get)"
    return None, (
        "FELL BACK to the Python generator: wrk is not installed and could not be (apt-get install wrk, as root); "
        "the generator takes most of a core, so callbacks.per_s understates the receiver"
    )


def _quietly(argv: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(argv, env=env, capture_output=True, check=False, timeout=600).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


async def wrk_closed(
    procs: c.Procs, wrk: str, base: str, reqs: list[list[Any]], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """The closed loop with wrk (one thread: at most one core for the generator), each callback sent once."""
    path = procs.workdir / "closed.tsv"
    with path.open("w") as f:
        for url, sig, form in reqs:
            f.write(f"{url.removeprefix(base)}\t{sig}\t{urlencode(form)}\n")
    script = c.ROOT / "bench" / "lua" / "callbacks.lua"
    argv = [wrk, "-t1", f"-c{concurrency}", f"-d{duration_s:.0f}s", "--timeout", "10s", "-s", str(script)]
    gen = procs.spawn("load-wrk", [*argv, base, "--", str(path)], dict(os.environ))
    await c.wait_exit(gen, duration_s + 120)
    procs.stop(gen)
    lines = [ln.removeprefix("WRK-JSON ") for ln in gen.tail(8000).splitlines() if ln.startswith("WRK-JSON ")]
    if not lines:
        raise RuntimeError(f"wrk printed no result:\n{gen.tail()}")
    out = json.loads(lines[-1])
    if out["overrun"] or out["callbacks_in_file"] != len(reqs):
        raise OutOfCallbacksError(
            f"wrk used all {out['callbacks_in_file']} distinct callbacks before {duration_s:g} s were up: "
            "raise NOTIFYQ_BENCH_CALLBACK_DELIVERIES"
        )
    seconds = out["duration_us"] / 1e6
    ok = out["requests"] - out["not_2xx"]
    return {"mode": "closed", "generator": "wrk -t1", "arg": concurrency, "sent": out["requests"], "ok": ok,
            "seconds": round(seconds, 3), "ok_per_s": round(ok / seconds, 1), **out}  # fmt: skip


async def load(procs: c.Procs, path: Path, mode: str, arg: float, duration_s: float) -> dict[str, Any]:
    """The Python generator (``bench.callback_load``); it sends each request of ``path`` at most once."""
    argv = [c.PY, "-m", "bench.callback_load", str(path), mode, str(arg), str(duration_s)]
    gen = procs.spawn(f"load-{mode}", argv, {**os.environ, "PYTHONPATH": str(c.ROOT)})
    await c.wait_exit(gen, duration_s + 120)
    procs.stop(gen)
    lines = [ln for ln in gen.tail(8000).splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"the {mode} loop's generator printed no result:\n{gen.tail()}")
    out = dict(json.loads(lines[-1]))
    if mode == "closed" and out["exhausted"]:
        raise OutOfCallbacksError(
            f"the generator used all {out['sent']} distinct callbacks before {duration_s:g} s were up: "
            "raise NOTIFYQ_BENCH_CALLBACK_DELIVERIES"
        )
    return out


def per_event(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
    """CPU milliseconds per applied event of each process but Redis (the receiver's, not the applier's)."""
    return {name: round(1000 * (after[name] - before[name]) / max(events, 1), 3) for name in after if name != "redis"}


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    wrk, note = ensure_wrk()
    print(f"  {note}", flush=True)
    open_n = int(OPEN_RATE * OPEN_S)
    details: dict[str, Any] = {"deliveries": DELIVERIES, "distinct_callbacks": len(STATUSES) * DELIVERIES}
    details["generator_note"] = note
    details["store"] = "postgresql" if opts.get("database_url") else "sqlite"
    with c.workspace("callbacks") as procs, c.redis_server() as redis_url:
        details["redis"] = await enable_aof(redis_url)
        print(f"  redis: {json.dumps(details['redis'])}", flush=True)
        port = c.free_port()
        base = f"http://127.0.0.1:{port}"
        env = c.notifyq_env(
            redis_url=redis_url,
            data_dir=procs.workdir / "data",
            sim_url="http://127.0.0.1:9",
            api_port=port,
            database_url=opts.get("database_url"),
        )
        await c.migrate(env)
        rcpts = c.recipients(DELIVERIES)
        batch_id, _ = await c.submit_in_process(
            env, {"channel": "sms", "from": c.SENDER, "body": "hi", "recipients": rcpts}
        )
        ids = await delivery_ids(env, batch_id, DELIVERIES)
        reqs = signed_requests(base, ids, rcpts)
        # two disjoint parts: no (delivery, status) is sent twice in the whole run
        open_reqs, closed_reqs = reqs[-open_n:], reqs[:-open_n]
        open_path = procs.workdir / "open.json"
        open_path.write_text(json.dumps(open_reqs))
        api = procs.spawn("api", c.api_argv(applier=False), env)
        applier = procs.spawn("applier", c.applier_argv(), env)
        await c.wait_http(base + "/healthz", child=api)
        # the applier's and the store's CPU over everything it applies (SQLite's is the applier's own)
        store_meter = c.CpuMeter(redis_url, {"applier": applier.pid}, opts.get("database_url"))
        store_cpu0 = await store_meter.read()
        details["open"] = await load(procs, open_path, "open", OPEN_RATE, OPEN_S)
        print(f"  open loop 1000/s: {details['open']}", flush=True)
        cpu0 = c.cpu_seconds(api.pid)
        with profiling.record(api.pid, "callbacks-api", int(CLOSED_S) + 5, enabled=bool(opts.get("profile"))) as prof:
            if wrk is not None:
                details["closed"] = await wrk_closed(procs, wrk, base, closed_reqs, CLOSED_CONCURRENCY, CLOSED_S)
            else:
                closed_path = procs.workdir / "closed.json"
                closed_path.write_text(json.dumps(closed_reqs))
                details["closed"] = await load(procs, closed_path, "closed", CLOSED_CONCURRENCY, CLOSED_S)
        details["api_cpu_s_closed"] = round(c.cpu_seconds(api.pid) - cpu0, 1)
        details["api_cpu_ms_per_callback"] = round(
            1000 * details["api_cpu_s_closed"] / max(details["closed"].get("sent", 0), 1), 3
        )
        print(f"  closed loop c={CLOSED_CONCURRENCY}: {details['closed']}", flush=True)
        details["applier"] = await applied(env, redis_url, batch_id, applier)
        store_cpu = await store_meter.read()
        details["apply_cpu_ms_per_event"] = per_event(
            store_cpu0, store_cpu, details["applier"]["callback_events_in_store"]
        )
        answered_200 = details["open"]["statuses"].get("200", 0) + details["closed"]["ok"]
        details["applier"]["answered_200"] = answered_200
        # the generator stops with requests in flight: the receiver took them, the generator did not count them
        details["applier"]["all_applied"] = details["applier"]["callback_events_in_store"] >= answered_200
        print(f"  applier: {details['applier']}", flush=True)
        if prof is not None:
            details["profile"] = str(prof)
            details["profile_summary"] = profiling.summarize(prof, top=20)
        details["api_vmhwm_mb"] = round(c.proc_status(api.pid, "VmHWM") / 1024, 1)
    results = {
        "callbacks.per_s": details["closed"]["ok_per_s"],
        "callbacks.p99_ms_at_1000_per_s": details["open"]["p99_ms"],
        "callbacks.apply_cpu_ms_per_event": round(sum(details["apply_cpu_ms_per_event"].values()), 3),
    }
    return results, details
