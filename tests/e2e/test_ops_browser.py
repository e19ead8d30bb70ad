"""The ops page in a real headless browser: Debian's ``chromium``, driven by Playwright (a dev dependency).

A batch runs through the local stack (some recipients fail, by the simulator's magic numbers) and a
second one waits in the bulk lane. The browser signs in through the form, and the figures the page
shows are compared with what the report and the database say: the lane's depth, each batch's
progress, the failures by code. Then the waiting batch is sent, and the page, without a reload, comes
to show the empty lane and the finished batch: it refreshes live.

It skips, saying why, where ``chromium`` is not installed; CI installs it (``.ci/tools``) and sets
``NOTIFYQ_REQUIRE_TOOLS=1``, so there it never skips.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, Page, async_playwright

from helpers import people, settle, sms_batch, wait_until
from notifyq.client import Client
from notifyq.report import gather_report
from notifyq.testing import API_TOKEN, LocalStack

FAILING = [
    {"to": "+15005550009", "vars": {"name": "n", "code": "1"}},  # 21614 at create (simulator magic)
    {"to": "+14155553005", "vars": {"name": "u", "code": "2"}},  # undelivered 30005 by callback
]


@pytest.fixture
async def browser(require_tool: Callable[[str, str], str]) -> AsyncIterator[Browser]:
    chromium = require_tool("chromium", "chromium")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def figure(page: Page, name: str) -> str:
    return (await page.locator(f'[data-figure="{name}"]').inner_text()).strip()


async def test_the_page_shows_the_true_figures_and_refreshes_live(stack: LocalStack, browser: Browser) -> None:
    store = stack.worker_app.store
    async with Client(stack.api_url, token=API_TOKEN) as client:
        ran = await client.submit(sms_batch([*people(5), *FAILING]))
        assert (await settle(stack, client, ran["id"]))["done"]
        waiting = await client.submit(sms_batch(people(6, start=4000)))

        async def lane_holds_it() -> bool:
            return (await stack.worker_app.jobs.depth())["bulk"].due == 6

        await wait_until(lane_holds_it, "the waiting batch in the bulk lane")

        page = await browser.new_page()
        # a script error or a refusal by the content security policy shows in the console
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        await page.goto(f"{stack.api_url}/ops")
        assert page.url.startswith(f"{stack.api_url}/ops/signin")  # no session yet: the form
        await page.fill("#token", API_TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{stack.api_url}/ops")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        assert cookies["notifyq_ops"]["httpOnly"] is True
        assert cookies["notifyq_ops"]["sameSite"] == "Strict"
        assert API_TOKEN not in cookies["notifyq_ops"]["value"]

        # the queue, against the report
        report = await gather_report(stack.worker_app.jobs, stack.inbox, store, stack.settings)
        assert await figure(page, "lane-bulk-depth") == str(report.lanes["bulk"].depth) == "6"
        assert await figure(page, "lane-urgent-depth") == str(report.lanes["urgent"].depth) == "0"
        assert await figure(page, "account-main-paused") == "sending"

        # each batch's progress, against the database
        by_status, _ = await store.batch_counts(ran["id"])
        delivered = by_status.get("delivered", 0)
        failed = by_status.get("failed", 0) + by_status.get("undelivered", 0)
        assert (delivered, failed) == (5, 2)
        assert await figure(page, f"batch-{ran['id']}-delivered") == str(delivered)
        assert await figure(page, f"batch-{ran['id']}-failed") == str(failed)
        assert await figure(page, f"batch-{ran['id']}-final") == "7"
        assert await figure(page, f"batch-{waiting['id']}-final") == "0"

        # failures by code, against the database, each linked to its deliveries
        for group in await store.failures_by_code(since=time.time() - 3600):
            assert await figure(page, f"failures-{group.error_code}") == str(group.count)
        await page.click('a[href*="error_code=21614"]')
        await page.wait_for_url("**/ops/deliveries?**")
        assert await page.locator('[data-figure="to"]').all_inner_texts() == ["+1•••0009"]
        await page.go_back()

        # the page refreshes itself: the waiting batch goes out and the page comes to show it, without a reload
        assert (await settle(stack, client, waiting["id"]))["done"]
    await page.locator('[data-figure="lane-bulk-depth"]', has_text=re.compile(r"^0$")).wait_for()
    await page.locator(f'[data-figure="batch-{waiting["id"]}-final"]', has_text=re.compile(r"^6$")).wait_for()
    by_status, _ = await store.batch_counts(waiting["id"])
    assert await figure(page, f"batch-{waiting['id']}-delivered") == str(by_status["delivered"]) == "6"

    assert problems == []

    # signing out ends the session: the page sends the browser back to the form
    await page.click("header form button")
    await page.wait_for_url("**/ops/signin")
    await page.goto(f"{stack.api_url}/ops")
    assert page.url.startswith(f"{stack.api_url}/ops/signin")
