"""``notifyq demo``: a realistic bulk notification through every part, on embedded defaults.

Embedded Redis, a SQLite file, the Twilio simulator, the API with its callback receiver and a
worker, all on loopback. It first submits a batch with a few bad recipients (rejected whole,
with every reason), then the corrected batch of SMS (templated body; some recipients are
Twilio's magic numbers for an invalid or opted-out number) and a batch of calls, and follows
them to final statuses.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from notifyq import logs
from notifyq.client import ApiError, Client
from notifyq.queue.redis_server import EmbeddedRedis, die_with_parent
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, free_port, local_stack

SENDER = "+15005550006"
AREA_CODES = ("212", "312", "415", "617", "702", "206", "303", "404")
# Twilio's magic To numbers: invalid (21211), opted out (21610), not SMS-capable (21614)
MAGIC = ("+15005550001", "+15005550004", "+15005550009")
BAD = ("not-a-number", "+1555", "12345678901234567890")
TIMEOUT_S = 110.0


def recipients(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` distinct, valid US numbers with variables, a few of them magic."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    while len(out) < n:
        number = f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if number not in seen:
            seen.add(number)
            out.append(
                {
                    "to": number,
                    "vars": {
                        "name": rng.choice(("Ann", "Bo", "Chen", "Dana")),
                        "code": f"{rng.randint(0, 999999):06d}",
                    },
                }
            )
    for i, magic in enumerate(MAGIC * max(1, n // 1000)):
        out[(i * 997) % n] = {"to": magic, "vars": {"name": "Test", "code": "000000"}}
    return out


async def _start_simulator(stack: ExitStack, latency_s: float) -> str:
    """``notifyq simulator`` in a child process (killed with us), configured like a realistic Twilio."""
    port = free_port()
    argv = [sys.executable, "-m", "notifyq", "simulator", "--port", str(port)]
    argv += ["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--latency", str(latency_s)]
    parent = os.getpid()
    proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own module, fixed arguments; returns at once
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: die_with_parent(parent),  # noqa: PLW1509 - only prctl: no locks, no threads
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    url = f"http://127.0.0.1:{port}"
    config = {
        "latency_jitter_s": latency_s / 2,
        "callback_delay_s": 0.2,
        "callback_duplicate_rate": 0.02,
        "callback_reorder_rate": 0.02,
        "outcome_rates": {"undelivered": 0.01, "failed": 0.005},
    }
    async with aiohttp.ClientSession() as session:
        for _ in range(200):  # up to 10 s for the child to start listening
            try:
                async with session.post(f"{url}/_sim/config", json=config) as resp:
                    resp.raise_for_status()
                    return url
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the simulator did not start")


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "#" * filled + "." * (width - filled)


async def _follow(client: Client, batch_ids: list[str], live: bool) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    statuses: list[dict[str, Any]] = []
    while True:
        statuses = [await client.batch(b) for b in batch_ids]
        total = sum(s["total"] for s in statuses)
        final = sum(s["final"] for s in statuses)
        if live:
            counts: Counter[str] = Counter()
            for s in statuses:
                counts.update(s["by_status"])
            shown = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            sys.stderr.write(f"\r[{_bar(final, total)}] {final}/{total} final  {shown}\x1b[K")
            sys.stderr.flush()
        if final >= total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    if live:
        sys.stderr.write("\n")
    return {"statuses": statuses, "all_final": all(s["done"] for s in statuses)}


async def run_demo(*, messages: int, calls: int, latency_s: float, live: bool = True) -> dict[str, Any]:
    """Run the demo and return its summary."""
    logs.configure("warning", "console" if live else "json")
    rng = random.Random(20261122)
    work = Path(tempfile.mkdtemp(prefix="notifyq-demo-"))
    with ExitStack() as sync_stack:
        sync_stack.callback(shutil.rmtree, work, ignore_errors=True)
        redis = EmbeddedRedis(data_dir=work / "redis")
        redis_url = redis.start()
        sync_stack.callback(redis.stop)
        # the simulator is Twilio: give it a process (and so a core) of its own, as in real life
        sim_url = await _start_simulator(sync_stack, latency_s)
        async with (
            local_stack(
                data_dir=work,
                redis_url=redis_url,
                sim_url=sim_url,
                pacing={"senders": {SENDER: 100_000.0}},  # the demo shows the pipeline; bench-pacing shows limits
                calls_per_second=10.0,
                worker={"callback_grace_s": 5.0, "max_jobs": 100},
            ) as stack,
            Client(stack.api_url, token=API_TOKEN) as client,
        ):
            return await _scenario(client, stack.settings.twilio.accounts, messages, calls, rng, live)
    raise AssertionError("unreachable")  # pragma: no cover


async def _scenario(
    client: Client, accounts: dict[str, Any], messages: int, calls: int, rng: random.Random, live: bool
) -> dict[str, Any]:
    del accounts
    people = recipients(messages, rng)
    sms = {"channel": "sms", "from": SENDER, "body": "Hi {name}, your notifyq code is {code}.", "recipients": people}
    rejected: list[dict[str, Any]] = []
    try:  # a producer's first try, with a few bad rows: the whole batch is refused, every reason listed
        await client.submit(
            {**sms, "recipients": people[:50] + [{"to": b, "vars": {"name": "x", "code": "1"}} for b in BAD]}
        )
    except ApiError as exc:
        rejected = exc.problem.get("errors", [])
    started = time.monotonic()
    batch = await client.submit(sms, idempotency_key=f"demo-sms-{rng.random()}")
    ids = [batch["id"]]
    if calls:
        call_people = [{"to": p["to"]} for p in recipients(calls, random.Random(5))]
        call_batch = await client.submit(
            {
                "channel": "call",
                "from": SENDER,
                "twiml": "<Response><Say>This is a notifyq test call.</Say></Response>",
                "status_callback_event": ["initiated", "ringing", "answered", "completed"],
                "machine_detection": "Enable",
                "timeout": 30,
                "recipients": call_people,
                "priority": "urgent",
            }
        )
        ids.append(call_batch["id"])
    if live:
        sys.stderr.write(f"accepted {sum(1 for _ in ids)} batches; sending...\n")
    followed = await _follow(client, ids, live)
    elapsed = time.monotonic() - started
    by_status: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    for s in followed["statuses"]:
        by_status.update(s["by_status"])
        by_code.update(s["by_error_code"])
    deliveries = sum(s["total"] for s in followed["statuses"])
    summary = {
        "deliveries": deliveries,
        "by_status": dict(by_status.most_common()),
        "by_error_code": dict(by_code.most_common()),
        "rejected_at_enqueue": [
            {"index": r.get("index"), "field": r.get("field"), "reason": r.get("reason")} for r in rejected
        ],
        "elapsed_s": round(elapsed, 2),
        "sends_per_s": round(deliveries / elapsed, 1) if elapsed else 0.0,
        "all_final": followed["all_final"],
        "batches": ids,
    }
    if live:
        print_summary(summary)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    """The closing table."""
    out = sys.stdout
    out.write("\nnotifyq demo summary\n")
    out.write(f"  {'deliveries':<28}{summary['deliveries']:>10}\n")
    out.write("  by final status\n")
    for status, n in summary["by_status"].items():
        out.write(f"    {status:<26}{n:>10}\n")
    out.write("  by Twilio error code\n")
    for code, n in summary["by_error_code"].items():
        out.write(f"    {code:<26}{n:>10}\n")
    out.write(f"  rejected at enqueue (the first try, refused whole): {len(summary['rejected_at_enqueue'])}\n")
    for r in summary["rejected_at_enqueue"]:
        out.write(f"    recipient {r['index']}: {r['reason']}\n")
    out.write(f"  {'elapsed (s)':<28}{summary['elapsed_s']:>10}\n")
    out.write(f"  {'sends per second':<28}{summary['sends_per_s']:>10}\n")
    out.write(f"  {'every delivery final':<28}{'yes' if summary['all_final'] else 'NO':>10}\n")
