"""Callbacks: signed message-status callbacks into one ``notifyq api --no-applier`` process (the receiver),
with ``notifyq applier`` in a process of its own applying them to the store meanwhile, as deployed
for throughput (plain ``notifyq api`` runs both in one process).

Delivery ids come from a real batch (in-process Producer; no worker runs), so every callback names a
delivery that exists. Each delivery gets a ``sent`` then a ``delivered`` callback with Twilio's form
fields, signed with ``compute_signature`` over NOTIFYQ_PUBLIC_BASE_URL + path. The load generator is a
separate process (``bench.callback_load``), so the receiver has a core of its own as far as 2 cores
allow. First an open loop at 1,000/s (p99 from the scheduled send time), then a closed loop at
concurrency 64 for the maximum rate answered 200 (= made durable).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import common as c
from bench import profiling

DELIVERIES = int(os.environ.get("NOTIFYQ_BENCH_CALLBACK_DELIVERIES", "40000"))
OPEN_RATE = 1000.0
OPEN_S = 10.0
CLOSED_CONCURRENCY = 64
CLOSED_S = 15.0


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
    for status in ("sent", "delivered"):
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


async def applied(env: dict[str, str], redis_url: str, applier: c.Child) -> dict[str, Any]:
    """Wait (bounded) until the applier has emptied the stream; what it applied, and what is left."""
    from redis.asyncio import Redis  # noqa: PLC0415

    from notifyq.queue.inbox import STREAM  # noqa: PLC0415

    r = Redis.from_url(redis_url)
    try:
        for _ in range(600):
            left = int(await r.xlen(STREAM))
            if left == 0 or applier.poll() is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()
    from sqlalchemy import func, select  # noqa: PLC0415

    from notifyq.store.repo import Store  # noqa: PLC0415
    from notifyq.store.schema import delivery_events  # noqa: PLC0415

    store = await Store.open(c.settings_from_env(env).sqlalchemy_url())
    try:
        async with store.engine.connect() as conn:
            query = select(func.count()).select_from(delivery_events).where(delivery_events.c.kind == "callback")
            events = int((await conn.execute(query)).scalar_one())
    finally:
        await store.close()
    return {"stream_left": left, "callback_events_in_store": events, "applier_alive": applier.poll() is None}


async def wrk_closed(
    procs: c.Procs, base: str, reqs: list[list[Any]], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """The closed loop with wrk (one thread: at most one core for the generator), when it is installed."""
    path = procs.workdir / "closed.tsv"
    with path.open("w") as f:
        for url, sig, form in reqs:
            f.write(f"{url.removeprefix(base)}\t{sig}\t{urlencode(form)}\n")
    script = c.ROOT / "bench" / "lua" / "callbacks.lua"
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration_s:.0f}s", "--timeout", "10s", "-s", str(script)]
    gen = procs.spawn("load-wrk", [*argv, base, "--", str(path), "0"], dict(os.environ))
    await c.wait_exit(gen, duration_s + 60)
    procs.stop(gen)
    lines = [ln.removeprefix("WRK-JSON ") for ln in gen.tail(8000).splitlines() if ln.startswith("WRK-JSON ")]
    if not lines:
        return {"error": gen.tail()}
    out = json.loads(lines[-1])
    seconds = out["duration_us"] / 1e6
    ok = out["requests"] - out["not_2xx"]
    return {"mode": "closed", "generator": "wrk -t1", "arg": concurrency, "sent": out["requests"], "ok": ok,
            "seconds": round(seconds, 3), "ok_per_s": round(ok / seconds, 1), **out}  # fmt: skip


async def load(procs: c.Procs, path: Path, mode: str, arg: float, duration_s: float) -> dict[str, Any]:
    argv = [c.PY, "-m", "bench.callback_load", str(path), mode, str(arg), str(duration_s)]
    gen = procs.spawn(f"load-{mode}", argv, {**os.environ, "PYTHONPATH": str(c.ROOT)})
    await c.wait_exit(gen, duration_s + 120)
    procs.stop(gen)
    lines = [ln for ln in gen.tail(8000).splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": gen.tail()}


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    details: dict[str, Any] = {"deliveries": DELIVERIES}
    with c.workspace("callbacks") as procs, c.redis_server() as redis_url:
        port = c.free_port()
        base = f"http://127.0.0.1:{port}"
        env = c.notifyq_env(
            redis_url=redis_url, data_dir=procs.workdir / "data", sim_url="http://127.0.0.1:9", api_port=port
        )
        await c.migrate(env)
        rcpts = c.recipients(DELIVERIES)
        batch_id, _ = await c.submit_in_process(
            env, {"channel": "sms", "from": c.SENDER, "body": "hi", "recipients": rcpts}
        )
        ids = await delivery_ids(env, batch_id, DELIVERIES)
        reqs = signed_requests(base, ids, rcpts)
        # the open loop replays the last third (deliveries not used by the closed loop first)
        open_path = procs.workdir / "open.json"
        closed_path = procs.workdir / "closed.json"
        open_path.write_text(json.dumps(reqs[-int(OPEN_RATE * OPEN_S) :]))
        closed_path.write_text(json.dumps(reqs[: -int(OPEN_RATE * OPEN_S)]))
        api = procs.spawn("api", c.api_argv(applier=False), env)
        applier = procs.spawn("applier", c.applier_argv(), env)
        await c.wait_http(base + "/healthz", child=api)
        details["open"] = await load(procs, open_path, "open", OPEN_RATE, OPEN_S)
        print(f"  open loop 1000/s: {details['open']}", flush=True)
        cpu0 = c.cpu_seconds(api.pid)
        with profiling.record(api.pid, "callbacks-api", int(CLOSED_S) + 5, enabled=bool(opts.get("profile"))) as prof:
            if shutil.which("wrk"):
                closed_reqs = reqs[: -int(OPEN_RATE * OPEN_S)]
                details["closed"] = await wrk_closed(procs, base, closed_reqs, CLOSED_CONCURRENCY, CLOSED_S)
                # (bench.run merges into the last run's details: say which generator this run used)
                details["generator_note"] = "wrk -t1 drove the closed loop"
            else:  # the Python generator (it takes most of a core itself: the figure is lower)
                details["generator_note"] = "wrk not found (apt install wrk): the Python generator shares the cores"
                print(f"  {details['generator_note']}; per_s understates the receiver", flush=True)
                details["closed"] = await load(procs, closed_path, "closed", CLOSED_CONCURRENCY, CLOSED_S)
        details["api_cpu_s_closed"] = round(c.cpu_seconds(api.pid) - cpu0, 1)
        details["api_cpu_ms_per_callback"] = round(
            1000 * details["api_cpu_s_closed"] / max(details["closed"].get("sent", 0), 1), 3
        )
        details["applier"] = await applied(env, redis_url, applier)
        print(f"  closed loop c={CLOSED_CONCURRENCY}: {details['closed']}", flush=True)
        if prof is not None:
            details["profile"] = str(prof)
            details["profile_summary"] = profiling.summarize(prof, top=20)
        details["api_vmhwm_mb"] = round(c.proc_status(api.pid, "VmHWM") / 1024, 1)
    results = {
        "callbacks.per_s": details["closed"].get("ok_per_s"),
        "callbacks.p99_ms_at_1000_per_s": details["open"].get("p99_ms"),
    }
    return results, details
