"""Twilio Connect end to end: a customer authorises our Connect App at the simulator, we send from the
subaccount with the owner's credentials, and a deauthorisation stops everything, mid-batch included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from helpers.stack import people, sms_batch
from helpers.waiting import wait_until
from notifyq.accounts import DEAUTHORIZED_REASON
from notifyq.api.metrics import API_METRICS
from notifyq.client import ApiError, Client
from notifyq.provider.signature import compute_signature
from notifyq.simulator import SimulatorConfig
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack
from notifyq.worker import NotifyqWorker

from .helpers import accounts_stack, call, sim_control

PAGE = "https://tenant.example.com/connected"
SENDER = "+15005550006"


@pytest.fixture
async def stack(
    tmp_path: Path, redis_url: str, database_url: str, sim_config: SimulatorConfig
) -> AsyncIterator[LocalStack]:
    async with accounts_stack(
        tmp_path,
        redis_url,
        database_url,
        sim_config,
        twilio={"connect": {"owner_account": "main", "redirect_page": PAGE}},
        pacing={"senders": {SENDER: 25.0}},  # a batch takes a while: a deauthorisation lands mid-batch
        worker={"paused_recheck_s": 0.2, "poll_delay_s": 0.01, "callback_grace_s": 0.3},
    ) as s:
        yield s


async def _connect_app(stack: LocalStack, method: str = "POST") -> str:
    status, app = await sim_control(
        stack,
        "/_sim/connect-apps",
        {
            "account_sid": ACCOUNT_SID,
            "friendly_name": "notifyq",
            "authorize_redirect_url": stack.api_url + "/twilio/connect/authorize",
            "deauthorize_callback_url": stack.api_url + "/twilio/connect/deauthorize",
            "deauthorize_callback_method": method,
            "permissions": ["get-all", "post-all"],
        },
    )
    assert status == 201, app
    return str(app["sid"])


async def _browser(url: str) -> tuple[int, str, str]:
    """What the customer's browser gets at ``url``: the status, where it goes next, and the text."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def _authorised(stack: LocalStack, app_sid: str, **body: Any) -> tuple[str, dict[str, str]]:
    """The customer authorises (or declines) at Twilio, and the browser follows to our Authorize URL."""
    status, outcome = await sim_control(stack, f"/_sim/connect-apps/{app_sid}/authorize", body)
    assert status == 302, outcome
    got, location, _ = await _browser(outcome["redirect_url"])
    assert got == 302
    assert location.startswith(PAGE + "?")
    return str(outcome.get("account_sid")), dict(parse_qsl(urlsplit(location).query))


async def test_an_authorised_subaccount_is_kept_and_sends(stack: LocalStack) -> None:
    assert stack.simulator is not None
    sub, landing = await _authorised(stack, await _connect_app(stack), state="tenant-7")
    name = f"connect-{sub}"
    assert landing == {"result": "authorized", "account": name, "state": "tenant-7"}
    status, shown = await call(stack, "GET", f"/v1/accounts/{name}")
    assert status == 200
    assert (shown["kind"], shown["account_sid"], shown["connect_state"], shown["status"]) == (
        "connect",
        sub,
        "tenant-7",
        "active",
    )
    assert AUTH_TOKEN not in str(shown)
    worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run())
    try:
        async with Client(stack.api_url, token=API_TOKEN) as client:
            batch = await client.submit(sms_batch(people(3), account=name))

            async def done() -> bool:
                return bool((await client.batch(batch["id"]))["done"])

            await wait_until(done, "the batch delivered")
            assert (await client.batch(batch["id"]))["by_status"] == {"delivered": 3}
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert {m.account_sid for m in stack.simulator.messages} == {sub}
    assert stack.app[API_METRICS].callbacks_forbidden._value.get() == 0  # signed with the owner's Auth Token


async def test_a_declined_authorisation_lands_on_the_page_and_keeps_nothing(stack: LocalStack) -> None:
    _, landing = await _authorised(stack, await _connect_app(stack), decline=True, state="tenant-8")
    assert landing == {"result": "declined", "error": "unauthorized_client"}
    _, listed = await call(stack, "GET", "/v1/accounts")
    assert [a["name"] for a in listed["accounts"]] == ["main"]


async def test_an_account_sid_twilio_did_not_authorise_is_refused(stack: LocalStack) -> None:
    made_up = "AC" + "12" * 16
    status, location, _ = await _browser(f"{stack.api_url}/twilio/connect/authorize?AccountSid={made_up}&state=x")
    assert status == 302
    landing = dict(parse_qsl(urlsplit(location).query))
    assert landing["result"] == "failed"
    assert "does not accept" in landing["reason"]
    assert (await call(stack, "GET", f"/v1/accounts/{made_up}"))[0] == 404


async def test_a_deauthorize_callback_must_be_signed_and_use_its_method(stack: LocalStack) -> None:
    sub, _ = await _authorised(stack, await _connect_app(stack))
    url = stack.api_url + "/twilio/connect/deauthorize"
    form = {"AccountSid": sub, "ConnectAppSid": "CN" + "0" * 32}
    public = stack.settings.public_base_url + "/twilio/connect/deauthorize"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=form) as resp:
            assert resp.status == 403
        bad = compute_signature("not-the-owner-token", public, list(form.items()))
        async with session.post(url, data=form, headers={"X-Twilio-Signature": bad}) as resp:
            assert resp.status == 403
        good = compute_signature(AUTH_TOKEN, public, list(form.items()))
        async with session.get(url, params=form, headers={"X-Twilio-Signature": good}) as resp:
            assert resp.status == 405  # configured as POST
    assert (await call(stack, "GET", f"/v1/accounts/{sub}"))[1]["status"] == "active"


async def test_deauthorised_mid_batch_nothing_is_sent_after_it(stack: LocalStack) -> None:
    sim = stack.simulator
    assert sim is not None
    app_sid = await _connect_app(stack)
    sub, landing = await _authorised(stack, app_sid)
    name = landing["account"]
    worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run())
    try:
        async with Client(stack.api_url, token=API_TOKEN) as client:
            batch = await client.submit(sms_batch(people(150), account=name))
            await wait_until(lambda: len(sim.messages) >= 10, "the batch under way")
            status, _ = await sim_control(stack, f"/_sim/connect-apps/{app_sid}/deauthorize", {"account_sid": sub})
            assert status == 200

            async def deauthorized() -> bool:
                return bool((await call(stack, "GET", f"/v1/accounts/{name}"))[1]["status"] == "deauthorized")

            await wait_until(deauthorized, "our Deauthorize URL called")
            sent_before = len(sim.messages)

            async def done() -> bool:
                return bool((await client.batch(batch["id"]))["done"])

            await wait_until(done, "every delivery final")
            counts = (await client.batch(batch["id"]))["by_status"]
            with pytest.raises(ApiError) as caught:
                await client.submit(sms_batch(people(1), account=name))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert len(sim.messages) == sent_before  # counted at the simulator: nothing after the deauthorisation
    assert sent_before < 150
    assert counts.get("canceled", 0) == 150 - sent_before
    assert sum(counts.values()) == 150
    assert caught.value.status == 422
    assert "deauthorized" in str(caught.value.problem)
    canceled = await stack.worker_app.store.list_deliveries(batch["id"], status="canceled", limit=200)
    assert {d.error_message for d in canceled} == {DEAUTHORIZED_REASON}


async def test_a_connect_account_added_by_hand_is_checked_with_the_owners_credentials(stack: LocalStack) -> None:
    app_sid = await _connect_app(stack)
    status, outcome = await sim_control(stack, f"/_sim/connect-apps/{app_sid}/authorize", {})
    assert status == 302  # the browser never reached us: an operator adds the account
    sub = outcome["account_sid"]
    body = {"name": "tenant-9", "kind": "connect", "account_sid": sub}
    status, added = await call(stack, "POST", "/v1/accounts", body)
    assert (status, added["kind"], added["account_sid"]) == (201, "connect", sub)
    status, problem = await call(stack, "POST", "/v1/accounts", {**body, "name": "x", "account_sid": "AC" + "34" * 16})
    assert status == 422
    assert "does not accept" in problem["errors"][0]["reason"]  # no grant: the Connect login is refused
    status, problem = await call(stack, "POST", "/v1/accounts", {**body, "name": "y", "auth_token": "t"})
    assert status == 422  # a connect account carries no secrets of its own
