"""Smart Encoding in the simulator: the body it keeps and returns, and the segments it reports."""

from __future__ import annotations

import pytest
from sim_helpers import MESSAGES, Api, MakeApi, sms

SERVICE = "MG" + "a" * 32
# 100 GSM characters and one right single quotation mark: 2 UCS-2 segments as written, 1 in GSM-7
CURLY = "a" * 100 + "\u2019"
STRAIGHT = "a" * 100 + "'"


def by_service(**extra: str) -> dict[str, str]:
    return {"To": "+14155550100", "MessagingServiceSid": SERVICE, "Body": CURLY, **extra}


@pytest.mark.parametrize(
    ("form", "sent", "segments"),
    [
        pytest.param(sms(Body=CURLY), CURLY, "2", id="a number, no SmartEncoded"),
        pytest.param(sms(Body=CURLY, SmartEncoded="true"), STRAIGHT, "1", id="a number, SmartEncoded=true"),
        pytest.param(sms(Body=CURLY, SmartEncoded="True"), STRAIGHT, "1", id="booleans in any case"),
        pytest.param(sms(Body=CURLY, SmartEncoded="false"), CURLY, "2", id="a number, SmartEncoded=false"),
        pytest.param(by_service(), STRAIGHT, "1", id="a service encodes by default"),
        pytest.param(by_service(SmartEncoded="false"), CURLY, "2", id="SmartEncoded=false overrides the service"),
        pytest.param(sms(Body=CURLY + "\U0001f600", SmartEncoded="true"), CURLY + "\U0001f600", "2", id="emoji"),
    ],
)
async def test_the_body_sent_and_its_segments(api: Api, form: dict[str, str], sent: str, segments: str) -> None:
    status, body = await api.send(form)
    assert status == 201
    assert (body["body"], body["num_segments"]) == (sent, segments)
    record = api.sim.messages[-1]
    assert (record.body, record.num_segments) == (sent, int(segments))
    assert ("Body", form["Body"]) in record.params  # the request itself is kept as it came
    status, fetched = await api.get(MESSAGES.replace(".json", f"/{body['sid']}.json"))
    assert (status, fetched["body"], fetched["num_segments"]) == (200, sent, segments)


async def test_services_without_smart_encoding(make_api: MakeApi) -> None:
    api = await make_api(service_smart_encoding=False)
    status, body = await api.send(by_service())
    assert (status, body["body"], body["num_segments"]) == (201, CURLY, "2")
    status, body = await api.send(by_service(SmartEncoded="true"))
    assert (status, body["body"], body["num_segments"]) == (201, STRAIGHT, "1")


async def test_the_service_setting_is_a_config_knob(api: Api) -> None:
    status, _ = await api.request("POST", "/_sim/config", data='{"service_smart_encoding": false}', auth=None)
    assert status == 200
    assert api.sim.config.service_smart_encoding is False
    _, body = await api.send(by_service())
    assert body["num_segments"] == "2"


async def test_smart_encoded_must_be_a_boolean(api: Api) -> None:
    status, body = await api.send(sms(Body=CURLY, SmartEncoded="yes"))
    assert status == 400
    assert "SmartEncoded" in body["message"]
    assert api.sim.messages == []
