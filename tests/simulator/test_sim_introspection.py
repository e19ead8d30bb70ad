"""``/_sim`` for other processes, ``make_app`` on its own, and ``run`` until cancelled."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sim_helpers import AC, AC_SUB, CALLS, Api, MakeApi, accounts, basic, call, sms

from helpers import wait_until
from notifyq.simulator import SimAccount, Simulator, SimulatorConfig, make_app, run


async def test_stats_and_records(make_api: MakeApi) -> None:
    api = await make_api(callback_delay_s=30.0)  # statuses stay put while we look
    before = time.time()
    _, message = await api.send(sms(StatusCallback="https://cb.example.com/m/1"))
    _, created_call = await api.send(call(), path=CALLS)
    await api.send(sms(to="+15005550001"))  # refused
    status, stats = await api.get("/_sim/stats", auth=None)
    assert status == 200
    assert (stats["requests"], stats["created"], stats["rejected"], stats["messages"], stats["calls"]) == (
        3,
        2,
        1,
        1,
        1,
    )
    status, messages = await api.get("/_sim/messages", auth=None)
    assert status == 200
    (only,) = messages
    assert {k: only[k] for k in ("sid", "to", "from", "body", "num_segments", "status", "status_callback")} == {
        "sid": message["sid"],
        "to": "+14155550100",
        "from": "+15005550006",
        "body": "hello",
        "num_segments": 1,
        "status": "queued",
        "status_callback": "https://cb.example.com/m/1",
    }
    assert before - 1 <= only["created_at"] <= time.time()
    _, calls = await api.get("/_sim/calls", auth=None)
    assert [c["sid"] for c in calls] == [created_call["sid"]]
    assert isinstance(calls[0]["created_at"], float)


async def test_config_patch(make_api: MakeApi) -> None:
    api = await make_api()
    status, cfg = await api.request(
        "POST", "/_sim/config", data='{"rate_429": 1.0, "outcome_rates": {"failed": 0.5}}', auth=None
    )
    assert status == 200
    assert cfg["rate_429"] == 1.0
    assert cfg["outcome_rates"] == {"undelivered": 0.0, "failed": 0.5}
    assert "accounts" not in cfg
    assert api.sim.config.rate_429 == 1.0
    status, _ = await api.send(sms())
    assert status == 429
    for bad in ('{"rate_429": 2}', '{"nonsense": 1}', '{"rate_429": 0.6, "rate_5xx": 0.6}', "[1]", "not json"):
        status, body = await api.request("POST", "/_sim/config", data=bad, auth=None)
        assert status == 400, bad
        assert (body["status"], body["title"]) == (400, "Bad Request")
        assert body["detail"]
    async with api.session.post(api.base + "/_sim/config", data="[1]") as r:
        assert (r.status, r.content_type) == (400, "application/problem+json")
    assert api.sim.config.rate_5xx == 0.0  # a refused patch changes nothing
    status, _ = await api.request("POST", "/_sim/config", data='{"max_concurrency_per_account": 3}', auth=None)
    assert api.sim.config.max_concurrency_per_account == 3
    await api.request("POST", "/_sim/config", data='{"max_concurrency_per_account": 0}', auth=None)
    assert api.sim.config.max_concurrency_per_account is None
    status, shown = await api.get("/_sim/config", auth=None)
    assert (status, shown["rate_429"]) == (200, 1.0)


async def test_reset(make_api: MakeApi) -> None:
    api = await make_api(callback_delay_s=30.0)
    await api.send(sms(StatusCallback="https://cb.example.com/x"))
    status, _ = await api.request("POST", "/_sim/reset", auth=None)
    assert status == 200
    assert api.sim.messages == []
    assert api.sim.counters.requests == 0
    assert api.sim.sends_by_callback() == {}
    assert await api.sim.settle(0.1)  # the pending steps are gone
    status, page = await api.get(f"/2010-04-01/Accounts/{AC}/Messages.json")
    assert (status, page["messages"]) == (200, [])


async def test_make_app_serves_under_a_test_server() -> None:
    sim = Simulator(SimulatorConfig(accounts=accounts(), callbacks=False))
    async with TestClient(TestServer(make_app(sim))) as client:
        r = await client.post(f"/2010-04-01/Accounts/{AC}/Messages.json", data=sms(), headers=basic())
        assert r.status == 201
        assert await sim.settle(2.0)
    assert sim.messages[0].status == "delivered"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_run_serves_until_cancelled() -> None:
    port = _free_port()
    token = "run-token"
    cfg = SimulatorConfig(accounts={AC: SimAccount(auth_token=token)})
    readied: list[bool] = []
    task = asyncio.create_task(run(cfg, "127.0.0.1", port, ready=lambda: readied.append(True)))
    url = f"http://127.0.0.1:{port}/2010-04-01/Accounts/{AC}/Messages.json"
    async with aiohttp.ClientSession() as session:

        async def answers() -> bool:
            try:
                async with session.post(url, data=sms(), headers=basic(AC, token)) as r:
                    assert r.status == 201
                    return True
            except aiohttp.ClientConnectorError:
                return False

        await wait_until(answers, "the simulator to listen")
        assert readied == [True]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        try:
            async with session.post(url, data=sms(), headers=basic(AC, token)):
                raise AssertionError("still serving")
        except aiohttp.ClientConnectorError:
            pass


async def test_start_twice_is_refused(api: Api) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await api.sim.start()


async def test_accounts_view_and_status_knob(api: Api) -> None:
    status, shown = await api.get("/_sim/accounts", auth=None)
    assert status == 200
    by_sid = {a["sid"]: a for a in shown}
    assert by_sid[AC_SUB] == {
        "sid": AC_SUB,
        "owner_account_sid": AC,
        "friendly_name": "sub",
        "status": "active",
        "type": "Full",
        "connect_app_sid": None,
    }
    assert all("auth_token" not in a and "api_keys" not in a for a in shown)  # no secrets
    status, body = await api.request("POST", f"/_sim/accounts/{AC}", data='{"status": "closed"}', auth=None)
    assert (status, body) == (200, {"sid": AC, "status": "closed"})
    assert api.sim.config.accounts[AC].status == "closed"
    for bad in ('{"status": "asleep"}', '{"status": "active", "x": 1}', "[]", "not json"):
        status, body = await api.request("POST", f"/_sim/accounts/{AC}", data=bad, auth=None)
        assert (status, body["status"]) == (400, 400), bad
    status, body = await api.request("POST", "/_sim/accounts/AC" + "9" * 32, data='{"status": "active"}', auth=None)
    assert (status, body["status"]) == (404, 404)
    assert api.sim.config.accounts[AC].status == "closed"
