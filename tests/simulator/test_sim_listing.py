"""List Messages and Calls: Twilio's filters and its page envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sim_helpers import AC, AC_OTHER, CALLS, MESSAGES, TOKEN_OTHER, Api, call, sms

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
