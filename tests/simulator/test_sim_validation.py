"""Create forms are checked against Twilio's OpenAPI schemas and the limits in their descriptions."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from sim_helpers import CALLS, MESSAGES, Api, basic, call, sms

from notifyq.simulator import spec_subset
from notifyq.simulator.spec import load_spec
from notifyq.simulator.validation import _split_ok, _valid_uri

MG = "MG" + "a" * 32
AP = "AP" + "b" * 32


def _without(form: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in form.items() if k not in names}


MESSAGE_CASES: list[tuple[str, Any, int]] = [
    ("unknown parameter", sms(Colour="blue"), 20001),
    ("pattern MessagingServiceSid", sms(MessagingServiceSid="MG123"), 20001),
    ("pattern ContentSid", sms(ContentSid="HX" + "z" * 32), 20001),
    ("pattern ApplicationSid", sms(ApplicationSid="XX" + "b" * 32), 21218),
    ("enum ContentRetention", sms(ContentRetention="forever"), 20001),
    ("enum RiskCheck", sms(RiskCheck="maybe"), 20001),
    ("boolean", sms(ProvideFeedback="yes"), 20001),
    ("integer", sms(Attempt="two"), 20001),
    ("number", sms(MaxPrice="cheap"), 20001),
    ("date-time", sms(SendAt="tomorrow"), 20001),
    ("To required", _without(sms(), "To"), 21604),
    ("From or MessagingServiceSid", _without(sms(), "From"), 21603),
    ("Body, MediaUrl or ContentSid", _without(sms(), "Body"), 21602),
    ("empty Body counts as absent", sms(Body=""), 21602),
    ("invalid To", sms(To="hello"), 21211),
    ("invalid From", sms(From="+1-not-a-number!"), 21212),
    ("StatusCallback host with underscore", sms(StatusCallback="https://bad_host.example.com/cb"), 21609),
    ("StatusCallback not a URL", sms(StatusCallback="not a url"), 21609),
    ("Body over 1600", sms(Body="x" * 1601), 21617),
    ("11 media", [*sms().items(), *[("MediaUrl", f"https://m.example.com/{i}.png") for i in range(11)]], 21623),
    ("media not a URL", [*sms().items(), ("MediaUrl", "ftp://m.example.com/a.png")], 21620),
    ("ValidityPeriod 0", sms(ValidityPeriod="0"), 21624),
    ("ValidityPeriod 36001", sms(ValidityPeriod="36001"), 21624),
    ("repeated single-valued parameter", [*sms().items(), ("Body", "again")], 20001),
]


@pytest.mark.parametrize(("form", "code"), [c[1:] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES])
async def test_message_form_refused(api: Api, form: Any, code: int) -> None:
    status, body = await api.send(form, path=MESSAGES)
    assert status == 400
    assert body["code"] == code
    assert body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert body["message"]
    assert api.sim.messages == []
    assert api.sim.counters.rejected == 1


MESSAGE_OK: list[tuple[str, Any]] = [
    ("Body of 1600", sms(Body="x" * 1600)),
    (
        "10 media, no body",
        [*_without(sms(), "Body").items()] + [("MediaUrl", f"https://m.example.com/{i}") for i in range(10)],
    ),
    ("ContentSid only", _without(sms(ContentSid="HX" + "c" * 32), "Body")),
    ("MessagingServiceSid only", _without(sms(MessagingServiceSid=MG), "From")),
    ("ValidityPeriod bounds", sms(ValidityPeriod="1")),
    ("ValidityPeriod max", sms(ValidityPeriod="36000")),
    ("typed values", sms(ProvideFeedback="True", Attempt="2", MaxPrice="0.5", SendAt="2030-01-01T10:00:00Z")),
    ("enums", sms(ContentRetention="discard", AddressRetention="obfuscate", TrafficType="free", RiskCheck="disable")),
    ("alphanumeric sender", sms(From="NotifyQ")),
    ("channel address", sms(To="whatsapp:+14155550100", From="whatsapp:+15005550006")),
    ("empty StatusCallback counts as absent", sms(StatusCallback="")),
]


@pytest.mark.parametrize("form", [c[1] for c in MESSAGE_OK], ids=[c[0] for c in MESSAGE_OK])
async def test_message_form_accepted(api: Api, form: Any) -> None:
    status, body = await api.send(form, path=MESSAGES)
    assert status == 201, body


CALL_CASES: list[tuple[str, Any, int]] = [
    ("unknown parameter", call(Body="hi"), 20001),
    ("Url, Twiml or ApplicationSid", _without(call(), "Url"), 21205),
    ("To required", _without(call(), "To"), 21201),
    ("From required", _without(call(), "From"), 21213),
    ("invalid To", call(To="not a phone"), 21217),
    ("invalid Url", call(Url="example.com/no-scheme"), 21205),
    ("pattern ApplicationSid", _without(call(ApplicationSid="APnope"), "Url"), 21218),
    ("pattern Byoc", call(Byoc="BY1"), 20001),
    ("enum Method", call(Method="PUT"), 20001),
    ("enum StatusCallbackMethod", call(StatusCallbackMethod="DELETE"), 20001),
    ("integer Timeout", call(Timeout="10s"), 20001),
    ("boolean Record", call(Record="sometimes"), 20001),
    ("Twiml over 4000", _without(call(Twiml="<Response>" + "x" * 3990 + "</Response>"), "Url"), 20001),
    ("StatusCallbackEvent value", [*call().items(), ("StatusCallbackEvent", "exploded")], 20001),
]


@pytest.mark.parametrize(("form", "code"), [c[1:] for c in CALL_CASES], ids=[c[0] for c in CALL_CASES])
async def test_call_form_refused(api: Api, form: Any, code: int) -> None:
    status, body = await api.send(form, path=CALLS)
    assert (status, body["code"]) == (400, code), body
    assert api.sim.calls == []


CALL_OK: list[tuple[str, Any]] = [
    ("Twiml of 4000", _without(call(Twiml="<Response>" + "x" * 3979 + "</Response>"), "Url")),
    ("ApplicationSid", _without(call(ApplicationSid=AP), "Url")),
    ("client endpoint", call(To="client:alice")),
    ("events", [*call().items(), ("StatusCallbackEvent", "initiated"), ("StatusCallbackEvent", "answered")]),
    ("typed values", call(Timeout="30", Record="false", Method="GET", MachineDetection="Enable")),
]


@pytest.mark.parametrize("form", [c[1] for c in CALL_OK], ids=[c[0] for c in CALL_OK])
async def test_call_form_accepted(api: Api, form: Any) -> None:
    status, body = await api.send(form, path=CALLS)
    assert status == 201, body


def test_spec_holds_every_documented_parameter() -> None:
    spec = load_spec()
    assert set(spec.create_message.params) >= {
        "To", "From", "MessagingServiceSid", "Body", "MediaUrl", "StatusCallback", "ApplicationSid", "MaxPrice",
        "ProvideFeedback", "Attempt", "ValidityPeriod", "ForceDelivery", "ContentRetention", "AddressRetention",
        "SmartEncoded", "PersistentAction", "TrafficType", "ShortenUrls", "ScheduleType", "SendAt", "SendAsMms",
        "ContentSid", "ContentVariables", "RiskCheck", "FallbackFrom",
    }  # fmt: skip
    assert spec.create_message.required == ("To",)
    assert spec.create_message.conditional == (("From", "MessagingServiceSid"), ("Body", "MediaUrl", "ContentSid"))
    assert spec.create_call.required == ("To", "From")
    assert spec.create_call.conditional == (("Url", "Twiml", "ApplicationSid"),)
    assert spec.create_call.params["StatusCallbackEvent"].type == "array"
    assert spec.create_message.params["ContentRetention"].enum == frozenset({"retain", "discard"})


def test_spec_holds_every_operation_the_simulator_serves() -> None:
    spec = load_spec()
    assert set(spec.forms) == {
        "CreateAccount", "UpdateAccount", "CreateApplication", "UpdateApplication", "UpdateConnectApp",
        "CreateMessage", "CreateCall",
    }  # fmt: skip
    assert set(spec.queries) == {
        "ListAccount", "ListApplication", "ListAuthorizedConnectApp", "ListConnectApp", "ListMessage", "ListCall",
    }  # fmt: skip
    permissions = spec.forms["UpdateConnectApp"].params["Permissions"]
    assert (permissions.type, permissions.enum) == ("array", frozenset({"get-all", "post-all"}))  # a $ref in items
    assert spec.forms["UpdateAccount"].params["Status"].enum == frozenset({"active", "suspended", "closed"})
    page_size = spec.queries["ListApplication"].params["PageSize"]
    assert (page_size.type, page_size.minimum, page_size.maximum) == ("integer", 1, 1000)
    assert list(spec.queries["ListMessage"].params)[:3] == ["To", "From", "DateSent"]  # the order page URIs use
    assert "auth_token" in spec.fields["api.v2010.account"]


def test_the_vendored_spec_is_the_subset_cut_from_itself() -> None:
    text = resources.files("notifyq.simulator").joinpath("openapi/twilio_api_v2010.json").read_text("utf-8")
    assert spec_subset.dumps(spec_subset.subset(json.loads(text))) == text
    doc = json.loads(text)
    served = {p: tuple(m for m in item if m in {"get", "post", "delete"}) for p, item in doc["paths"].items()}
    assert served == {p: tuple(sorted(ms)) for p, ms in spec_subset.OPERATIONS.items()}
    assert resources.files("notifyq.simulator").joinpath("openapi/LICENSE").is_file()


def test_the_subset_tool_reads_a_file_and_writes_the_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = resources.files("notifyq.simulator").joinpath("openapi/twilio_api_v2010.json").read_text("utf-8")
    source = tmp_path / "twilio_api_v2010.json"
    source.write_text(text, encoding="utf-8")
    assert spec_subset.main([str(source)]) == 0
    assert capsys.readouterr().out == text
    assert spec_subset.main([]) == 2
    assert "usage" in capsys.readouterr().err


# -- the body itself: a urlencoded form in its charset, a multipart form without files; nothing else


async def _post_raw(api: Api, body: bytes, content_type: str) -> tuple[int, Any]:
    headers = {**basic(), "Content-Type": content_type}
    async with api.session.post(api.base + MESSAGES, data=body, headers=headers) as r:
        return r.status, await r.json()


async def test_a_urlencoded_form_is_read_in_its_charset(api: Api) -> None:
    body = b"To=%2B14155550100&From=%2B15005550006&Body=%E9t%E9+%E0+Paris"
    status, created = await _post_raw(api, body, "application/x-www-form-urlencoded; charset=latin-1")
    assert status == 201
    assert created["body"] == "été à Paris"
    assert [m.body for m in api.sim.messages] == ["été à Paris"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"To=%2B14155550100&From=%2B15005550006&Body=\xe9t\xe9", "application/x-www-form-urlencoded"),
        (b"To=%2B14155550100&From=%2B15005550006&Body=x", "application/x-www-form-urlencoded; charset=no-such"),
        (b'{"To": "+14155550100"}', "application/json"),
    ],
    ids=["not utf-8", "unknown charset", "json"],
)
async def test_a_body_that_is_not_a_readable_form_is_refused(api: Api, body: bytes, content_type: str) -> None:
    status, refused = await _post_raw(api, body, content_type)
    assert status == 400
    assert refused["code"] == 20001
    assert api.sim.messages == []


async def test_a_multipart_form_is_read_but_a_file_in_it_is_refused(api: Api) -> None:
    form = aiohttp.FormData(sms(Body="multi part"))
    status, created = await api.send(form)
    assert status == 201
    assert created["body"] == "multi part"
    with_file = aiohttp.FormData(sms())
    with_file.add_field("MediaUrl", b"\x89PNG", filename="a.png", content_type="image/png")
    status, refused = await api.send(with_file)
    assert status == 400
    assert refused["code"] == 20001
    assert len(api.sim.messages) == 1


HEADS = ["http://", "https://", "HTTP://", "ftp://", "h.example.com", "a_b.example.com", "[::1]", "[::1", "user@"]
URL_PARTS = hs.sampled_from([*HEADS, ":80", "/", "/cb", "?q=1", "#f", " ", "\t", "\\", "é", "%2F", "_", ":", "@", "x"])


@given(hs.lists(URL_PARTS, max_size=6).map("".join))
def test_a_url_checked_by_its_head_is_judged_as_urlsplit_judges_it(value: str) -> None:
    def judged(check: Callable[[str], bool]) -> bool | str:
        try:
            return check(value)
        except ValueError as exc:
            return str(exc)

    assert judged(_valid_uri) == judged(_split_ok)
