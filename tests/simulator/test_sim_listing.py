"""List Messages and Calls: Twilio's filters and its page envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from sim_helpers import AC, AC_OTHER, CALLS, MESSAGES, TOKEN_OTHER, Api, call, schema_problems, sms

A, B = "+14155550101", "+14155550102"


async def _seed(api: Api) -> list[str]:
    sids = []
    for to, from_ in [(A, "+15005550006"), (B, "+15005550006"), (A, "+15005550010"), (A, "+15005550006")]:
        _, body = await api.send(sms(to=to, From=from_))
        sids.append(body["sid"])
    return sids


async def test_filter_by_to_and_from(api: Api) -> None:
    sids = await _seed(api)
    status, page = await api.get(MESSAGES, params={"To": A})
    assert status == 200
    assert [m["sid"] for m in page["messages"]] == [sids[3], sids[2], sids[0]]  # newest first
    _, page = await api.get(MESSAGES, params={"To": A, "From": "+15005550010"})
    assert [m["sid"] for m in page["messages"]] == [sids[2]]
    _, page = await api.get(MESSAGES, params={"From": "+15005550006"})
    assert [m["sid"] for m in page["messages"]] == [sids[3], sids[1], sids[0]]
    _, page = await api.get(MESSAGES, params={"To": "+19999999999"})
    assert page["messages"] == []
    assert page["next_page_uri"] is None


async def test_list_is_per_account(api: Api) -> None:
    await _seed(api)
    status, page = await api.get(f"/2010-04-01/Accounts/{AC_OTHER}/Messages.json", auth=(AC_OTHER, TOKEN_OTHER))
    assert (status, page["messages"]) == (200, [])


async def test_paging_walks_every_record_once(api: Api) -> None:
    sids = [(await api.send(sms(to=A, Body=str(i))))[1]["sid"] for i in range(7)]
    status, page = await api.get(MESSAGES, params={"To": A, "PageSize": "3"})
    assert status == 200
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 3, 0, 2)
    assert page["uri"].startswith(f"/2010-04-01/Accounts/{AC}/Messages.json?")
    assert "PageSize=3" in page["first_page_uri"]
    assert page["previous_page_uri"] is None
    seen = [m["sid"] for m in page["messages"]]
    pages = 1
    while page["next_page_uri"]:
        # a new message arriving between pages must not shift what the token resumes after
        await api.send(sms(to=A, Body="late"))
        status, page = await api.get(page["next_page_uri"])
        assert status == 200
        assert page["previous_page_uri"] is not None
        assert "To=%2B14155550101" in page["uri"]
        seen += [m["sid"] for m in page["messages"]]
        pages += 1
    assert seen == list(reversed(sids))
    assert pages == 3


async def test_page_number_without_token(api: Api) -> None:
    sids = [(await api.send(sms(Body=str(i))))[1]["sid"] for i in range(5)]
    _, page = await api.get(MESSAGES, params={"PageSize": "2", "Page": "2"})
    assert [m["sid"] for m in page["messages"]] == [sids[0]]
    assert (page["start"], page["end"], page["next_page_uri"]) == (4, 4, None)


async def test_bad_paging_values(api: Api) -> None:
    for params in ({"PageSize": "0"}, {"PageSize": "1001"}, {"Page": "-1"}, {"PageSize": "ten"}):
        status, body = await api.get(MESSAGES, params=params)
        assert (status, body["code"]) == (400, 20001), params


async def test_date_sent_filters(api: Api) -> None:
    _, created = await api.send(sms(to=A))
    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    async def sids(**params: str) -> list[str]:
        status, page = await api.get(MESSAGES, params=params)
        assert status == 200, page
        return [m["sid"] for m in page["messages"]]

    found = [created["sid"]]
    assert await sids(DateSent=today.isoformat()) == found
    assert await sids(DateSent=yesterday.isoformat()) == []
    assert await sids(**{"DateSent<": today.isoformat()}) == found  # "on and before"
    assert await sids(**{"DateSent<": yesterday.isoformat()}) == []
    assert await sids(**{"DateSent>": today.isoformat()}) == found  # "on and after"
    assert await sids(**{"DateSent>": tomorrow.isoformat()}) == []
    minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await sids(**{"DateSent>": minute_ago, "To": A}) == found
    in_a_minute = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    assert await sids(**{"DateSent>": in_a_minute}) == []
    assert await sids(**{"DateSent<": in_a_minute}) == found
    status, body = await api.get(MESSAGES, params={"DateSent": "last tuesday"})
    assert (status, body["code"]) == (400, 20001)


async def test_list_calls(api: Api) -> None:
    first = (await api.send(call(to=A), path=CALLS))[1]["sid"]
    second = (await api.send(call(to=B), path=CALLS))[1]["sid"]
    status, page = await api.get(CALLS, params={"To": A})
    assert status == 200
    assert [c["sid"] for c in page["calls"]] == [first]
    _, page = await api.get(CALLS, params={"From": "+15005550006", "PageSize": "1"})
    assert [c["sid"] for c in page["calls"]] == [second]
    assert page["next_page_uri"] is not None
    today = datetime.now(UTC).date().isoformat()
    _, page = await api.get(CALLS, params={"StartTime": today})
    assert {c["sid"] for c in page["calls"]} == {first, second}
    _, page = await api.get(CALLS, params={"StartTime>": (datetime.now(UTC).date() + timedelta(days=1)).isoformat()})
    assert page["calls"] == []
    _, page = await api.get(CALLS, params={"StartTime<": today})
    assert len(page["calls"]) == 2
    assert await api.sim.settle(2.0)
    _, page = await api.get(CALLS, params={"Status": "completed"})
    assert {c["sid"] for c in page["calls"]} == {first, second}
    _, page = await api.get(CALLS, params={"Status": "busy"})
    assert page["calls"] == []


async def test_resources_and_pages_match_the_spec(api: Api) -> None:
    _, message = await api.send(sms(to=A, StatusCallback="https://cb.example.com/x"))
    _, created_call = await api.send(call(to=A), path=CALLS)
    assert await api.sim.settle(2.0)
    for kind, path, schema in [("messages", MESSAGES, "message"), ("calls", CALLS, "call")]:
        status, page = await api.get(path)
        assert status == 200
        assert set(page) == set(_list_schema(f"List{schema.capitalize()}")["properties"])
        (listed,) = page[kind]
        assert schema_problems(listed, f"api.v2010.account.{schema}") == []
        status, fetched = await api.get(listed["uri"])
        assert (status, fetched) == (200, listed)
    assert (message["sid"], created_call["sid"]) != (None, None)


def _list_schema(operation_id: str) -> dict[str, Any]:
    text = resources.files("notifyq.simulator").joinpath("openapi/twilio_api_v2010.json").read_text("utf-8")
    for item in json.loads(text)["paths"].values():
        get = item.get("get", {})
        if get.get("operationId") == operation_id:
            schema: dict[str, Any] = get["responses"]["200"]["content"]["application/json"]["schema"]
            return schema
    raise AssertionError(operation_id)


async def test_previous_page_uri_goes_back_to_the_same_records(api: Api) -> None:
    sids = [(await api.send(sms(to=A, Body=str(i))))[1]["sid"] for i in range(5)]
    _, first = await api.get(MESSAGES, params={"PageSize": "2"})
    _, second = await api.get(first["next_page_uri"])
    assert [m["sid"] for m in second["messages"]] == [sids[2], sids[1]]
    await api.send(sms(to=A, Body="late"))  # a newer message must not shift the page going back
    _, back = await api.get(second["previous_page_uri"])
    assert [m["sid"] for m in back["messages"]] == [sids[4], sids[3]]
    assert (back["page"], back["previous_page_uri"]) == (0, None)
    assert "PageToken=PB" in second["previous_page_uri"]
    _, page = await api.get(MESSAGES, params={"PageToken": "PA" + "SM" + "0" * 32, "Page": "1", "PageSize": "2"})
    assert page["messages"] == []  # a token naming no message


async def test_call_filters_from_the_spec(api: Api) -> None:
    first = (await api.send(call(to=A), path=CALLS))[1]["sid"]
    assert await api.sim.settle(2.0)
    today = datetime.now(UTC).date()
    _, page = await api.get(CALLS, params={"EndTime": today.isoformat()})
    assert [c["sid"] for c in page["calls"]] == [first]
    _, page = await api.get(CALLS, params={"EndTime<": (today - timedelta(days=1)).isoformat()})
    assert page["calls"] == []
    _, page = await api.get(CALLS, params={"EndTime>": today.isoformat(), "StartTime<": today.isoformat()})
    assert [c["sid"] for c in page["calls"]] == [first]
    second = (await api.send(call(to=B), path=CALLS))[1]["sid"]  # queued: not ended, so no EndTime matches it
    _, page = await api.get(CALLS, params={"EndTime>": today.isoformat()})
    assert [c["sid"] for c in page["calls"]] == [first]
    _, page = await api.get(CALLS)
    assert [c["sid"] for c in page["calls"]] == [second, first]
    _, page = await api.get(CALLS, params={"ParentCallSid": "CA" + "0" * 32})
    assert page["calls"] == []  # the simulator's calls have no parent


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (CALLS, {"Status": "ringing-ish"}),
        (CALLS, {"ParentCallSid": "CA123"}),
        (CALLS, {"EndTime": "yesterday"}),
        (MESSAGES, {"Page": "9" * 5000}),
    ],
)
async def test_list_values_the_spec_refuses(api: Api, path: str, params: dict[str, str]) -> None:
    status, body = await api.get(path, params=params)
    assert (status, body["code"], body["status"]) == (400, 20001, 400)


async def test_list_ignores_names_it_does_not_know(api: Api) -> None:
    sid = (await api.send(sms(to=A)))[1]["sid"]
    status, page = await api.get(MESSAGES, params={"Colour": "blue", "To": A})
    assert (status, [m["sid"] for m in page["messages"]]) == (200, [sid])
    assert "Colour" not in page["uri"]
