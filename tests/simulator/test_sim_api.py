"""Create and fetch over HTTP: both auth modes, Twilio's resource shapes, auth failures."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
from sim_helpers import AC, AC_OTHER, CALLS, KEY_SECRET, KEY_SID, MESSAGES, TOKEN, TOKEN_OTHER, Api, basic, call, sms

from notifyq.simulator.spec import load_spec


async def test_create_message_with_auth_token(api: Api) -> None:
    status, body = await api.send(sms(StatusCallback="https://cb.example.com/m/1"))
    assert status == 201
    assert set(body) == set(load_spec().message_fields)
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["account_sid"] == AC
    assert (body["to"], body["from"], body["body"]) == ("+14155550100", "+15005550006", "hello")
    assert (body["num_segments"], body["num_media"]) == ("1", "0")
    assert (body["status"], body["direction"], body["api_version"]) == ("queued", "outbound-api", "2010-04-01")
    assert body["price"] is None
    assert body["error_code"] is None
    assert body["uri"] == f"/2010-04-01/Accounts/{AC}/Messages/{body['sid']}.json"
    assert parsedate_to_datetime(body["date_created"]).utcoffset() is not None
    record = api.sim.messages[0]
    assert (record.sid, record.status_callback, record.num_segments) == (body["sid"], "https://cb.example.com/m/1", 1)
    assert ("Body", "hello") in record.params


async def test_create_message_with_api_key(api: Api) -> None:
    status, body = await api.send(sms(), auth=(KEY_SID, KEY_SECRET))
    assert status == 201
    assert body["account_sid"] == AC


async def test_messaging_service_starts_accepted_without_from(api: Api) -> None:
    service = "MG" + "a" * 32
    status, body = await api.send({"To": "+14155550100", "MessagingServiceSid": service, "Body": "x"})
    assert status == 201
    assert (body["status"], body["from"], body["messaging_service_sid"]) == ("accepted", None, service)


async def test_segments_and_media(api: Api) -> None:
    status, body = await api.send(sms(Body="a" * 161))
    assert (status, body["num_segments"]) == (201, "2")
    status, body = await api.send(sms(Body="é" * 10 + "ж"))  # ж is not GSM-7: 11 UCS-2 units
    assert (status, body["num_segments"]) == (201, "1")
    status, body = await api.send(sms(Body="ж" * 71))
    assert (status, body["num_segments"]) == (201, "2")
    media = [("To", "+14155550100"), ("From", "+15005550006")]
    media += [("MediaUrl", f"https://m.example.com/{i}.png") for i in range(2)]
    status, body = await api.send(media)
    assert status == 201
    assert body["num_media"] == "2"
    assert body["sid"].startswith("MM")
    assert api.sim.messages[-1].media_urls == ["https://m.example.com/0.png", "https://m.example.com/1.png"]


async def test_create_call(api: Api) -> None:
    status, body = await api.send(call(), path=CALLS)
    assert status == 201
    assert set(body) == set(load_spec().call_fields)
    assert re.fullmatch(r"CA[0-9a-f]{32}", body["sid"])
    assert (body["status"], body["to_formatted"], body["direction"]) == ("queued", "(415) 555-0100", "outbound-api")
    record = api.sim.calls[0]
    assert (record.url, record.twiml, record.status_callback_method) == ("https://example.com/twiml", None, "POST")


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (None, 401),
        ((AC, "wrong"), 401),
        ((KEY_SID, "wrong"), 401),
        (("SK" + "9" * 32, KEY_SECRET), 401),
        (("AC" + "9" * 32, TOKEN), 401),
        ((AC_OTHER, TOKEN_OTHER), 403),  # good credentials, someone else's account in the path
    ],
)
async def test_auth_failures(api: Api, auth: tuple[str, str] | None, status: int) -> None:
    got, body = await api.send(sms(), auth=auth)
    assert got == status
    assert body == {
        "code": 20003,
        "message": body["message"],
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": status,
    }
    got, _ = await api.get(MESSAGES, auth=auth)
    assert got == status
    assert api.sim.messages == []
    assert api.sim.counters.rejected == 2


async def test_malformed_authorization_header(api: Api) -> None:
    async with api.session.post(api.base + MESSAGES, data=sms(), headers={"Authorization": "Basic !!!"}) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic")


async def test_fetch(api: Api) -> None:
    _, created = await api.send(sms())
    _, created_call = await api.send(call(), path=CALLS)
    status, body = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{created['sid']}.json")
    assert (status, body["sid"], body["to"]) == (200, created["sid"], "+14155550100")
    status, body = await api.get(f"/2010-04-01/Accounts/{AC}/Calls/{created_call['sid']}.json")
    assert (status, body["sid"]) == (200, created_call["sid"])
    status, body = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/SM{'0' * 32}.json")
    assert (status, body["code"], body["status"]) == (404, 20404, 404)
    # another account cannot see it
    path = f"/2010-04-01/Accounts/{AC_OTHER}/Messages/{created['sid']}.json"
    status, body = await api.get(path, auth=(AC_OTHER, TOKEN_OTHER))
    assert status == 404


async def test_json_body_is_refused(api: Api) -> None:
    async with api.session.post(api.base + MESSAGES, json=sms(), headers=basic()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == 20001
