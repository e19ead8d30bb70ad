"""Twilio's magic test numbers at create time, and the simulator's own magic final outcomes."""

from __future__ import annotations

import pytest
from sim_helpers import AC, AC_TEST, CALLS, MESSAGES, TOKEN_TEST, Api, MakeApi, call, sms

TEST_MESSAGES = f"/2010-04-01/Accounts/{AC_TEST}/Messages.json"
TEST_CALLS = f"/2010-04-01/Accounts/{AC_TEST}/Calls.json"
TEST_AUTH = (AC_TEST, TOKEN_TEST)


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550002", 21612), ("+15005550003", 21408), ("+15005550004", 21610),
     ("+15005550009", 21614)],
)  # fmt: skip
@pytest.mark.parametrize("test_credentials", [False, True])
async def test_message_to_magic(api: Api, to: str, code: int, test_credentials: bool) -> None:
    path, auth = (TEST_MESSAGES, TEST_AUTH) if test_credentials else (MESSAGES, None)
    status, body = await api.send(sms(to=to), path=path, **({"auth": auth} if auth else {}))
    assert (status, body["code"]) == (400, code)
    assert api.sim.messages == []


@pytest.mark.parametrize(("from_", "code"), [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611)])
@pytest.mark.parametrize("test_credentials", [False, True])
async def test_message_from_magic(api: Api, from_: str, code: int, test_credentials: bool) -> None:
    path, auth = (TEST_MESSAGES, TEST_AUTH) if test_credentials else (MESSAGES, None)
    status, body = await api.send(sms(From=from_), path=path, **({"auth": auth} if auth else {}))
    assert (status, body["code"]) == (400, code)


async def test_test_credentials_accept_only_the_magic_from(api: Api) -> None:
    status, body = await api.send(sms(From="+14155550999"), path=TEST_MESSAGES, auth=TEST_AUTH)
    assert (status, body["code"]) == (400, 21606)
    status, _ = await api.send(sms(From="+15005550006"), path=TEST_MESSAGES, auth=TEST_AUTH)
    assert status == 201
    # a live account may send from any number
    status, _ = await api.send(sms(From="+14155550999"))
    assert status == 201
    status, _ = await api.send(call(From="+14155550999"), path=TEST_CALLS, auth=TEST_AUTH)
    assert status == 400
    status, _ = await api.send(call(From="+14155550999"), path=CALLS)
    assert status == 201


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550001", 21217), ("+15005550002", 21214), ("+15005550003", 21215), ("+15005550004", 21216)]
)
async def test_call_to_magic(api: Api, to: str, code: int) -> None:
    status, body = await api.send(call(to=to), path=CALLS)
    assert (status, body["code"]) == (400, code)
    status, body = await api.send(call(to=to), path=TEST_CALLS, auth=TEST_AUTH)
    assert (status, body["code"]) == (400, code)
    assert api.sim.calls == []


async def test_call_from_magic(api: Api) -> None:
    status, body = await api.send(call(From="+15005550001"), path=CALLS)
    assert (status, body["code"]) == (400, 21212)
    status, body = await api.send(call(From="+14155550999"), path=TEST_CALLS, auth=TEST_AUTH)
    assert (status, body["code"]) == (400, 21210)
    status, _ = await api.send(call(From="+15005550006"), path=TEST_CALLS, auth=TEST_AUTH)
    assert status == 201


@pytest.mark.parametrize(
    ("to", "final", "code"),
    [("+14155553003", "undelivered", 30003), ("+14155553005", "undelivered", 30005),
     ("+14155553006", "undelivered", 30006), ("+14155553007", "failed", 30007),
     ("+14155553008", "undelivered", 30008), ("+14155550100", "delivered", None)],
)  # fmt: skip
async def test_message_final_outcome_magic(make_api: MakeApi, to: str, final: str, code: int | None) -> None:
    api = await make_api(callbacks=False)
    _, created = await api.send(sms(to=to))
    assert await api.sim.settle(2.0)
    status, body = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{created['sid']}.json")
    assert status == 200
    assert (body["status"], body["error_code"]) == (final, code)
    assert (body["error_message"] is None) == (code is None)
    assert body["date_sent"] is not None


@pytest.mark.parametrize(
    ("to", "final", "has_duration"),
    [("+14155554001", "busy", False), ("+14155554002", "no-answer", False), ("+14155554003", "failed", False),
     ("+14155550100", "completed", True)],
)  # fmt: skip
async def test_call_final_outcome_magic(make_api: MakeApi, to: str, final: str, has_duration: bool) -> None:
    api = await make_api(callbacks=False)
    _, created = await api.send(call(to=to), path=CALLS)
    assert await api.sim.settle(2.0)
    _, body = await api.get(f"/2010-04-01/Accounts/{AC}/Calls/{created['sid']}.json")
    assert body["status"] == final
    assert body["end_time"] is not None
    assert (int(body["duration"]) > 0) == has_duration


async def test_outcome_rates_draw_failures(make_api: MakeApi) -> None:
    api = await make_api(callbacks=False, outcome_rates={"undelivered": 1.0, "failed": 0.0})
    for i in range(5):
        await api.send(sms(to=f"+1415555{i:04d}"))
    assert await api.sim.settle(2.0)
    assert {m.status for m in api.sim.messages} == {"undelivered"}
    assert {m.error_code for m in api.sim.messages} <= {30003, 30005, 30006, 30008}
    api.sim.config.outcome_rates = {"undelivered": 0.0, "failed": 1.0}
    await api.send(sms(to="+14155559999"))
    assert await api.sim.settle(2.0)
    assert api.sim.messages[-1].status == "failed"
    assert api.sim.messages[-1].error_code in {30007, 30008}
