"""Latency, the per-account concurrency cap, random 429 / 5xx, and dropped connections."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sim_helpers import AC, CALLS, KEY_SECRET, KEY_SID, MESSAGES, Api, MakeApi, basic, call, sms

from notifyq.simulator import SimulatorConfig


async def test_concurrency_cap_answers_429(make_api: MakeApi) -> None:
    api = await make_api(latency_s=0.3, max_concurrency_per_account=2)
    results = await asyncio.gather(*(api.send(sms(Body=str(i))) for i in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 201, 429, 429, 429]
    refused = next(body for status, body in results if status == 429)
    assert refused == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }
    assert len(api.sim.messages) == 2
    assert api.sim.counters.http_429 == 3
    # the slots come back: API keys count against the same account
    status, _ = await api.send(sms(), auth=(KEY_SID, KEY_SECRET))
    assert status == 201
    assert api.sim.in_flight[AC] == 0


async def timed_send(api: Api) -> float:
    started = time.perf_counter()
    status, _ = await api.send(sms())
    assert status == 201
    return time.perf_counter() - started


async def test_latency_holds_the_request(make_api: MakeApi) -> None:
    api = await make_api()
    unheld = max([await timed_send(api) for _ in range(3)])  # what a request costs here without latency
    latency, jitter = 0.15, 0.05
    api.sim.config.latency_s, api.sim.config.latency_jitter_s = latency, jitter
    held = await timed_send(api)
    # held for the latency and at most its jitter more: beyond that, only what a request costs without it
    assert latency <= held < latency + jitter + 2 * unheld, (held, unheld)


async def test_random_429(make_api: MakeApi) -> None:
    api = await make_api(rate_429=1.0)
    status, body = await api.send(sms())
    assert (status, body["code"]) == (429, 20429)
    status, _ = await api.get(MESSAGES)
    assert status == 429
    assert api.sim.messages == []
    api.sim.config.rate_429 = 0.0  # tests change rates between phases
    status, _ = await api.send(sms())
    assert status == 201
    assert api.sim.counters.http_429 == 2


async def test_random_5xx(make_api: MakeApi) -> None:
    api = await make_api(rate_5xx=1.0)
    seen = set()
    for _ in range(12):
        status, body = await api.send(sms())
        assert (status, body["code"]) in {(500, 20500), (503, 20503)}
        assert body["status"] == status
        seen.add(status)
    assert seen == {500, 503}
    assert api.sim.messages == []
    assert api.sim.counters.http_5xx == 12


async def test_mixed_rates_split_roughly(make_api: MakeApi) -> None:
    api = await make_api(rate_429=0.3, rate_5xx=0.2, callbacks=False)
    statuses = [(await api.send(sms()))[0] for _ in range(200)]
    assert 30 <= statuses.count(429) <= 90
    assert 15 <= sum(1 for s in statuses if s >= 500) <= 70
    assert statuses.count(201) == len(api.sim.messages)


@pytest.mark.parametrize(("path", "form"), [(MESSAGES, sms()), (CALLS, call())])
async def test_drop_after_create_records_but_does_not_answer(
    make_api: MakeApi, path: str, form: dict[str, str]
) -> None:
    api = await make_api(drop_after_create_rate=1.0, callbacks=False)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.send(form, path=path)
    records = api.sim.messages if path == MESSAGES else api.sim.calls
    assert len(records) == 1
    assert api.sim.counters.dropped == 1
    assert api.sim.counters.created == 1
    # the send really happened: the list finds it, as a careful client would check
    status, page = await api.get(path, params={"To": "+14155550100"})
    assert status == 200
    key = "messages" if path == MESSAGES else "calls"
    assert [r["sid"] for r in page[key]] == [records[0].sid]


@pytest.mark.parametrize("path", [MESSAGES, CALLS])
async def test_list_failures_answer_the_next_list_requests_500(make_api: MakeApi, path: str) -> None:
    api = await make_api(list_failures=2, callbacks=False)
    status, _ = await api.send(sms() if path == MESSAGES else call(), path=path)
    assert status == 201  # creates are not list requests
    answers = [await api.get(path, params={"To": "+14155550100"}) for _ in range(3)]
    assert [status for status, _ in answers] == [500, 500, 200]
    assert answers[0][1]["code"] == 20500
    assert len(answers[2][1]["messages" if path == MESSAGES else "calls"]) == 1
    assert api.sim.config.list_failures == 0
    assert api.sim.counters.http_5xx == 2


async def test_same_seed_same_sids(make_api: MakeApi) -> None:
    first = await make_api(seed=42)
    second = await make_api(seed=42)
    a = [(await first.send(sms()))[1]["sid"] for _ in range(3)]
    b = [(await second.send(sms()))[1]["sid"] for _ in range(3)]
    assert a == b
    third = await make_api(seed=43)
    assert (await third.send(sms()))[1]["sid"] != a[0]


async def test_many_concurrent_creates(make_api: MakeApi) -> None:
    api = await make_api(callbacks=False)
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector, headers=basic()) as session:

        async def one(i: int) -> int:
            form = sms(to=f"+1415{i:07d}", StatusCallback=f"https://cb.example.com/d/{i % 10}")
            async with session.post(api.base + MESSAGES, data=form) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(one(i) for i in range(1000)))
    assert set(statuses) == {201}
    assert len({m.sid for m in api.sim.messages}) == 1000
    assert sum(api.sim.sends_by_callback().values()) == 1000
    assert api.sim.sends_by_callback()["https://cb.example.com/d/3"] == 100
    _, page = await api.get(MESSAGES, params={"To": "+14150000500"})
    assert [m["to"] for m in page["messages"]] == ["+14150000500"]
    assert await api.sim.settle(5.0)
    assert {m.status for m in api.sim.messages} == {"delivered"}


def test_config_rejects_bad_rates() -> None:
    for bad in ({"rate_429": 1.5}, {"rate_429": 0.7, "rate_5xx": 0.7}, {"outcome_rates": {"lost": 0.1}},
                {"max_concurrency_per_account": 0}, {"latency_s": -1.0}, {"callback_drop_rate": 2.0},
                {"list_failures": -1}):  # fmt: skip
        with pytest.raises(ValueError, match=r"."):
            SimulatorConfig(**bad)


async def test_account_sid_in_the_path_is_checked_for_api_keys(api: Api) -> None:
    path = f"/2010-04-01/Accounts/AC{'4' * 32}/Messages.json"
    status, body = await api.send(sms(), path=path, auth=(KEY_SID, KEY_SECRET))
    # the key is looked for among the keys of the account in the path (and of those above it): not found
    assert (status, body["code"]) == (401, 20003)
