"""Faults aimed at chosen recipients: a lost answer, lost callbacks, a late answer; and the list look-ups counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest
from sim_helpers import CALLS, MESSAGES, Api, MakeApi, Receiver, call, sms

from helpers import wait_until

LOST = "+14155550199"


@pytest.mark.parametrize(("path", "form"), [(MESSAGES, sms), (CALLS, call)])
async def test_creates_to_chosen_numbers_are_recorded_but_not_answered(
    make_api: MakeApi, path: str, form: Callable[..., dict[str, str]]
) -> None:
    api = await make_api(drop_after_create_to=[LOST], callbacks=False)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.send(form(to=LOST), path=path)
    status, _ = await api.send(form(), path=path)  # anyone else gets the answer
    assert status == 201
    records = api.sim.messages if path == MESSAGES else api.sim.calls
    assert [r.to for r in records] == [LOST, "+14155550100"]
    assert (api.sim.counters.created, api.sim.counters.dropped) == (2, 1)


@pytest.mark.parametrize(("path", "form"), [(MESSAGES, sms), (CALLS, call)])
async def test_creates_to_chosen_numbers_are_lost_before_they_are_recorded(
    make_api: MakeApi, path: str, form: Callable[..., dict[str, str]]
) -> None:
    api = await make_api(drop_before_create_to=[LOST], callbacks=False)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.send(form(to=LOST), path=path)
    status, _ = await api.send(form(), path=path)
    assert status == 201
    records = api.sim.messages if path == MESSAGES else api.sim.calls
    assert [r.to for r in records] == ["+14155550100"]  # nothing to find in the list
    _, page = await api.get(path, params={"To": LOST})
    assert page["messages" if path == MESSAGES else "calls"] == []
    assert (api.sim.counters.created, api.sim.counters.dropped) == (1, 1)


async def test_chosen_numbers_get_no_callbacks(make_api: MakeApi, receiver: Receiver) -> None:
    api = await make_api(no_callbacks_to=[LOST])
    assert (await api.send(sms(to=LOST, StatusCallback=receiver.url("lost"))))[0] == 201
    assert (await api.send(sms(StatusCallback=receiver.url("heard"))))[0] == 201
    assert (await api.send(call(to=LOST, StatusCallback=receiver.url("lost-call")), path=CALLS))[0] == 201
    assert await api.sim.settle(5.0)
    assert len(receiver.on("heard")) == 2  # sent, delivered
    assert receiver.on("lost") == []
    assert receiver.on("lost-call") == []
    assert {m.status for m in api.sim.messages} == {"delivered"}  # the messages themselves go on


async def test_answer_delay_holds_the_answer_after_the_record_exists(make_api: MakeApi) -> None:
    delay_s = 0.4
    api = await make_api(answer_delay_s=delay_s, callbacks=False)
    started = time.perf_counter()
    sending = asyncio.create_task(api.send(sms()))
    await wait_until(lambda: bool(api.sim.messages), "the message to be recorded")
    assert not sending.done()  # recorded, its answer still held: in flight
    assert api.sim.in_flight[next(iter(api.sim.in_flight))] == 1
    status, body = await sending
    assert status == 201
    assert body["sid"] == api.sim.messages[0].sid
    assert time.perf_counter() - started >= delay_s  # held for the delay it was given, not answered at once


async def test_list_requests_are_counted(api: Api) -> None:
    await api.send(sms())
    assert api.sim.counters.list_requests == 0
    assert (await api.get(MESSAGES, params={"To": "+14155550100"}))[0] == 200
    assert (await api.get(CALLS))[0] == 200
    assert (await api.get(f"{MESSAGES.removesuffix('.json')}/{api.sim.messages[0].sid}.json"))[0] == 200  # a fetch
    assert api.sim.counters.list_requests == 2


async def test_the_new_knobs_are_patched_over_http(api: Api) -> None:
    body = '{"drop_after_create_to": ["+14155550199"], "no_callbacks_to": ["+14155550198"], "answer_delay_s": 0.5}'
    status, shown = await api.request("POST", "/_sim/config", data=body, auth=None)
    assert status == 200
    assert (shown["drop_after_create_to"], shown["no_callbacks_to"], shown["answer_delay_s"]) == (
        ["+14155550199"],
        ["+14155550198"],
        0.5,
    )
    status, _ = await api.request("POST", "/_sim/config", data='{"answer_delay_s": -1}', auth=None)
    assert status == 400
    status, shown = await api.request("POST", "/_sim/config", data='{"no_callbacks_to": null}', auth=None)
    assert (status, shown["no_callbacks_to"]) == (200, [])
    status, shown = await api.request("POST", "/_sim/config", data='{"drop_before_create_to": ["+1415"]}', auth=None)
    assert (status, shown["drop_before_create_to"]) == (200, ["+1415"])
