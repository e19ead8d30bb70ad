"""TwiML Applications: create, fetch, list, update, delete; and the callbacks of sends that name one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sim_helpers import AC, AC_OTHER, AC_SUB, TOKEN_OTHER, Api, Receiver, basic, call, path, schema_problems, sms

from notifyq.simulator.spec import load_spec

APPS = path(AC, "Applications.json")


def app_path(sid: str, account_sid: str = AC) -> str:
    return path(account_sid, f"Applications/{sid}.json")


FULL = {
    "FriendlyName": "Phone Me",
    "ApiVersion": "2010-04-01",
    "VoiceUrl": "https://example.com/voice",
    "VoiceMethod": "GET",
    "VoiceFallbackUrl": "https://example.com/voice-fallback",
    "VoiceFallbackMethod": "GET",
    "StatusCallback": "https://example.com/status",
    "StatusCallbackMethod": "GET",
    "VoiceCallerIdLookup": "true",
    "SmsUrl": "https://example.com/sms",
    "SmsMethod": "GET",
    "SmsFallbackUrl": "https://example.com/sms-fallback",
    "SmsFallbackMethod": "GET",
    "SmsStatusCallback": "https://example.com/sms-status",
    "MessageStatusCallback": "https://example.com/message-status",
    "PublicApplicationConnectEnabled": "True",
}


async def test_create_with_every_parameter(api: Api) -> None:
    assert set(FULL) == set(load_spec().forms["CreateApplication"].params)  # the form covers the spec
    status, body = await api.send(FULL, path=APPS)
    assert status == 201
    assert schema_problems(body, "api.v2010.account.application") == []
    assert re.fullmatch(r"AP[0-9a-f]{32}", body["sid"])
    assert (body["account_sid"], body["uri"]) == (AC, app_path(body["sid"]))
    for name, value in FULL.items():
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        expected: Any = value.lower() == "true" if field.endswith(("lookup", "enabled")) else value
        assert body[field] == expected, name
    status, fetched = await api.get(app_path(body["sid"]))
    assert (status, fetched) == (200, body)


async def test_create_takes_twilio_defaults(api: Api) -> None:
    status, body = await api.send({}, path=APPS)
    assert status == 201
    assert schema_problems(body, "api.v2010.account.application") == []
    methods = ["voice_method", "voice_fallback_method", "status_callback_method", "sms_method", "sms_fallback_method"]
    assert {body[m] for m in methods} == {"POST"}
    assert (body["voice_caller_id_lookup"], body["public_application_connect_enabled"]) == (False, False)
    assert (body["api_version"], body["voice_url"], body["friendly_name"]) == ("2010-04-01", None, None)


BAD_FORMS = [
    ("unknown parameter", {"Colour": "blue"}),
    ("method not in the enum", {"VoiceMethod": "PUT"}),
    ("not a URL", {"VoiceUrl": "not a url"}),
    ("underscore in the host", {"SmsUrl": "https://bad_host.example.com/sms"}),
    ("not a boolean", {"VoiceCallerIdLookup": "maybe"}),
    ("FriendlyName over 64", {"FriendlyName": "x" * 65}),
    ("repeated", [("FriendlyName", "a"), ("FriendlyName", "b")]),
]


@pytest.mark.parametrize("form", [f for _, f in BAD_FORMS], ids=[n for n, _ in BAD_FORMS])
async def test_bad_forms_are_refused(api: Api, form: Any) -> None:
    status, body = await api.send(form, path=APPS)
    assert (status, body["code"], body["status"]) == (400, 20001, 400)
    _, created = await api.send({}, path=APPS)
    status, body = await api.send(form, path=app_path(created["sid"]))
    assert (status, body["code"]) == (400, 20001)
    assert len(api.sim.applications) == 1


async def test_update_changes_what_is_given_and_clears_what_is_empty(api: Api) -> None:
    _, created = await api.send(FULL, path=APPS)
    form = {"VoiceUrl": "https://example.com/v2", "SmsUrl": "", "SmsMethod": "", "VoiceCallerIdLookup": ""}
    status, body = await api.send(form, path=app_path(created["sid"]))
    assert status == 200
    assert schema_problems(body, "api.v2010.account.application") == []
    assert (body["voice_url"], body["sms_url"], body["sms_method"]) == ("https://example.com/v2", None, "POST")
    assert body["voice_caller_id_lookup"] is False
    assert body["friendly_name"] == "Phone Me"  # untouched
    assert body["date_created"] == created["date_created"]
    status, body = await api.send({"FriendlyName": "x"}, path=app_path("AP" + "0" * 32))
    assert (status, body["code"]) == (404, 20404)


async def test_delete(api: Api) -> None:
    _, created = await api.send({}, path=APPS)
    async with api.session.delete(api.base + app_path(created["sid"]), headers=basic()) as r:
        assert (r.status, await r.read()) == (204, b"")
    status, body = await api.get(app_path(created["sid"]))
    assert (status, body["code"]) == (404, 20404)
    status, _ = await api.request("DELETE", app_path(created["sid"]))
    assert status == 404


async def test_an_account_sees_only_its_own(api: Api) -> None:
    _, created = await api.send({"FriendlyName": "mine"}, path=APPS)
    other = path(AC_OTHER, f"Applications/{created['sid']}.json")
    status, body = await api.get(other, auth=(AC_OTHER, TOKEN_OTHER))
    assert (status, body["code"]) == (404, 20404)
    status, page = await api.get(path(AC_OTHER, "Applications.json"), auth=(AC_OTHER, TOKEN_OTHER))
    assert (status, page["applications"]) == (200, [])
    _, sub_app = await api.send({"FriendlyName": "sub's"}, path=path(AC_SUB, "Applications.json"))
    assert sub_app["account_sid"] == AC_SUB  # made with the parent's credentials, in the subaccount


async def test_list_filters_by_friendly_name_and_pages(api: Api) -> None:
    sids = [(await api.send({"FriendlyName": "a" if i % 2 else "b"}, path=APPS))[1]["sid"] for i in range(7)]
    status, page = await api.get(APPS, params={"PageSize": "2"})
    assert status == 200
    assert page["first_page_uri"] == f"{APPS}?PageSize=2&Page=0"
    seen = [a["sid"] for a in page["applications"]]
    for app in page["applications"]:
        assert schema_problems(app, "api.v2010.account.application") == []
    while page["next_page_uri"]:
        # deleting what was read must not lose the rest: the token still knows where it was
        for app in page["applications"]:
            await api.request("DELETE", app_path(app["sid"]))
        _, page = await api.get(page["next_page_uri"])
        seen += [a["sid"] for a in page["applications"]]
    assert seen == sids  # oldest first, each once
    for i in range(3):
        await api.send({"FriendlyName": f"n{i}"}, path=APPS)
    _, page = await api.get(APPS, params={"FriendlyName": "n1"})
    assert [a["friendly_name"] for a in page["applications"]] == ["n1"]
    assert "FriendlyName=n1" in page["uri"]


async def test_previous_page(api: Api) -> None:
    sids = [(await api.send({}, path=APPS))[1]["sid"] for _ in range(5)]
    _, first = await api.get(APPS, params={"PageSize": "2"})
    _, second = await api.get(first["next_page_uri"])
    assert [a["sid"] for a in second["applications"]] == sids[2:4]
    _, back = await api.get(second["previous_page_uri"])
    assert [a["sid"] for a in back["applications"]] == sids[:2]
    assert back["page"] == 0


async def test_a_message_with_an_application_reports_to_its_callback(api: Api, receiver: Receiver) -> None:
    _, app = await api.send({"MessageStatusCallback": receiver.url("app-sms")}, path=APPS)
    status, _ = await api.send(sms(ApplicationSid=app["sid"]))
    assert status == 201
    hits = await receiver.wait(2, "app-sms")
    assert [h.form["MessageStatus"] for h in hits] == ["sent", "delivered"]
    assert all(h.signature_ok for h in hits)
    # StatusCallback wins over the Application
    status, _ = await api.send(sms(ApplicationSid=app["sid"], StatusCallback=receiver.url("own")))
    assert len(await receiver.wait(2, "own")) == 2


async def test_a_call_with_an_application_reports_to_its_status_callback(api: Api, receiver: Receiver) -> None:
    form = {"VoiceUrl": "https://example.com/voice", "StatusCallback": receiver.url("app-call")}
    _, app = await api.send({**form, "StatusCallbackMethod": "GET"}, path=APPS)
    call_form = call(ApplicationSid=app["sid"], StatusCallback=receiver.url("ignored"))
    del call_form["Url"]
    status, _ = await api.send(call_form, path=path(AC, "Calls.json"))
    assert status == 201
    hits = await receiver.wait(1, "app-call")
    assert (hits[0].method, hits[0].form["CallStatus"], hits[0].signature_ok) == ("GET", "completed", True)
    assert await api.sim.settle(2.0)
    assert receiver.on("ignored") == []
    assert len(receiver.on("app-call")) == 1
