"""The README's screenshots: the ops page and ``notifyq status --watch``, taken from a demo-like stack.

Run it by hand (it takes about a minute and needs Debian's ``chromium``)::

    .venv/bin/python tests/screenshots.py            # writes docs/img/ops.png and docs/img/status-watch.png

Everything runs on this machine, on loopback: an embedded redis-server, a SQLite file, the simulator
with a realistic latency, the API and one worker. A batch with some of Twilio's magic numbers runs to
its end, a larger one is half sent when the pictures are taken, another is scheduled for later, a
second account is paused and one callback is dead-lettered, so every part of the page has something
to show.
"""

from __future__ import annotations

import asyncio
import html
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from pydantic import SecretStr

from notifyq.cli.watch import render
from notifyq.client import Client
from notifyq.pacing import PacingAdmin
from notifyq.queue.inbox import STREAM
from notifyq.queue.redis_server import EmbeddedRedis
from notifyq.report import gather_report
from notifyq.settings import TwilioAccount
from notifyq.simulator import SimAccount, SimulatorConfig
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack, local_stack

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
SENDER = "+15005550006"
PAUSED_SID = "AC" + "e1" * 16
MAGIC = ["+15005550001", "+15005550009", "+14155553005", "+14155553003", "+15005550002"]
RATE = 20.0  # the sender's segments per second: slow enough that the big batch is half sent in the picture
TERMINAL_CSS = (
    "body{margin:0;background:#1e1e1e}"
    "pre{margin:0;padding:18px 22px;color:#d4d4d4;font:14px/1.35 'DejaVu Sans Mono',monospace;white-space:pre}"
    ".prompt{color:#6a9955}"
)


def people(n: int, start: int) -> list[dict[str, Any]]:
    return [{"to": f"+1312555{start + i:04d}", "vars": {"name": f"P{i}", "code": f"{i:06d}"}} for i in range(n)]


def batch(recipients: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "channel": "sms",
        "from": SENDER,
        "body": "Hi {name}, your code is {code}",
        "recipients": recipients,
        **extra,
    }


async def seed(stack: LocalStack) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with Client(stack.api_url, token=API_TOKEN) as client:
        small = people(160, 0) + [{"to": n, "vars": {"name": "T", "code": "0"}} for n in MAGIC]
        await client.submit(batch(small))
        await client.submit(batch(people(40, 500), priority="urgent"))
        await client.submit(batch(people(150, 1000), send_at=later))
        await asyncio.sleep(8)  # a quieter start, then the big one: the chart shows the rise
        await client.submit(batch(people(1200, 2000)))
    redis = stack.worker_app.redis
    await PacingAdmin(redis, stack.settings).pause_account(PAUSED_SID, "30002: Account suspended")
    await redis.xadd(STREAM, {"r": b"not a report"})  # undecodable: the applier dead-letters it


async def shoot(stack: LocalStack, chromium: str) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        page = await browser.new_page(viewport={"width": 1240, "height": 900}, device_scale_factor=1)
        await page.goto(f"{stack.api_url}/ops")
        await page.fill("#token", API_TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{stack.api_url}/ops")
        await page.screenshot(path=str(OUT / "ops.png"), full_page=True)

        report = await gather_report(stack.worker_app.jobs, stack.inbox, stack.worker_app.store, stack.settings)
        frame = render(report.as_status(), at=report.at, interval_s=2)
        terminal = (
            f"<!doctype html><style>{TERMINAL_CSS}</style><pre><span class=prompt>$ notifyq status --watch</span>\n"
            f"{html.escape(frame)}</pre>"
        )
        # a page of its own: the ops page's content security policy would refuse the inline style
        shell = await browser.new_page(viewport={"width": 960, "height": 200}, device_scale_factor=1)
        await shell.set_content(terminal)
        await shell.screenshot(path=str(OUT / "status-watch.png"), full_page=True)
        await browser.close()


async def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (Debian package chromium)", file=sys.stderr)  # noqa: T201
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis()
    redis_url = redis.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sim = SimulatorConfig(
                accounts={ACCOUNT_SID: SimAccount(auth_token=AUTH_TOKEN)},
                latency_s=0.08,
                latency_jitter_s=0.06,
                callback_delay_s=0.5,
                outcome_rates={"undelivered": 0.02, "failed": 0.005},
                seed=7,
            )
            accounts = {
                "main": TwilioAccount(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN)),
                "marketing": TwilioAccount(account_sid=PAUSED_SID, auth_token=SecretStr("paused-account-token")),
            }
            async with local_stack(
                data_dir=Path(tmp),
                redis_url=redis_url,
                sim_config=sim,
                twilio={"accounts": accounts, "default_account": "main"},
                pacing={"senders": {SENDER: RATE}},
            ) as stack:
                await seed(stack)
                await asyncio.sleep(30)  # the big batch half sent, half a minute of history on the chart
                await shoot(stack, chromium)
    finally:
        redis.stop()
    print(f"wrote {OUT / 'ops.png'} and {OUT / 'status-watch.png'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
