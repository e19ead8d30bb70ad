"""The batch's smart_encoded field: segments counted on the body Twilio sends, and SmartEncoded on the create."""

from __future__ import annotations

from typing import Any

import pytest

from core.test_smart_encoding import DOCUMENTED
from notifyq.errors import ValidationFailed
from notifyq.intake import BatchIntake, text_problem
from notifyq.segments import GSM7_PART, UCS2_PART, segment_count

MG = "MG" + "0" * 32
CURLY = "It\u2019s \u201cready\u201d \u2014 come by"  # GSM-7 once smart-encoded
PADDED = CURLY + " " + "x" * (GSM7_PART - len(CURLY) - 1)  # one GSM-7 part; three UCS-2 parts as written


def batch(**fields: Any) -> dict[str, Any]:
    return {"channel": "sms", "from": "+15005550006", "body": PADDED, "recipients": ["+14155550101"]} | fields


def segments(payload: dict[str, Any]) -> list[int]:
    intake = BatchIntake(payload)
    counted = [cost for _, _, _, cost in intake.accepted()]
    intake.finish()
    return counted


@pytest.mark.parametrize(
    ("fields", "smart"),
    [
        pytest.param({}, False, id="a number, not asked: off"),
        pytest.param({"smart_encoded": True}, True, id="asked"),
        pytest.param({"smart_encoded": None}, False, id="null is absent"),
        pytest.param({"from": None, "messaging_service_sid": MG}, True, id="a Messaging Service: on by default"),
        pytest.param({"messaging_service_sid": MG, "smart_encoded": False}, False, id="turned off for a service"),
    ],
)
def test_segments_are_counted_on_the_body_twilio_sends(fields: dict[str, Any], smart: bool) -> None:
    assert (segment_count(PADDED), segment_count(PADDED, smart=True)) == (3, 1)  # the body tells them apart
    payload = batch(**fields)
    assert segments(payload) == [1 if smart else 3]
    # a body with variables is counted per recipient, the same way
    templated = batch(**fields) | {"body": "{greeting} " + PADDED[: UCS2_PART * 2], "recipients": [
        {"to": "+14155550101", "vars": {"greeting": "Hi\u2026"}}]}  # fmt: skip
    body = "Hi\u2026 " + PADDED[: UCS2_PART * 2]
    assert segments(templated) == [segment_count(body, smart=smart)]
    assert segment_count(body, smart=True) < segment_count(body)


# the C0 controls of the list (all but TAB) are text no batch may hold: intake refuses them before counting
SENDABLE = [(char, out) for char, out in DOCUMENTED if not text_problem(char)]
REFUSED = sorted(char for char, _ in DOCUMENTED if text_problem(char))


def test_only_the_c0_controls_of_the_list_are_refused() -> None:
    assert [chr(c) for c in (0x00, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x17, 0x19)] == REFUSED
    with pytest.raises(ValidationFailed):
        segments(batch(body="Order " + REFUSED[0] + " shipped", smart_encoded=True))


@pytest.mark.parametrize(("char", "out"), SENDABLE, ids=[f"U+{ord(c):04X}" for c, _ in SENDABLE])
def test_each_documented_replacement_is_counted_as_twilio_sends_it(char: str, out: str) -> None:
    # Twilio's published list (tests/core/test_smart_encoding.py writes it out apart from the module's table):
    # a body that is GSM-7 but for the character is one GSM-7 segment smart-encoded, UCS-2 otherwise
    body = "Order " + char + " shipped " + "x" * 80
    expected = segment_count("Order " + out + " shipped " + "x" * 80)
    assert segments(batch(body=body, smart_encoded=True)) == [expected] == [1]
    assert segments(batch(body=body)) == [segment_count(body)] == [2]


def test_the_create_request_carries_smart_encoded_only_when_the_batch_says() -> None:
    def params(**fields: Any) -> list[tuple[str, str]]:
        spec = BatchIntake(batch(**fields)).spec
        assert spec is not None
        return [p for p in spec.shared_params() if p[0] == "SmartEncoded"]

    assert params(smart_encoded=True) == [("SmartEncoded", "true")]
    assert params(messaging_service_sid=MG, smart_encoded=False) == [("SmartEncoded", "false")]
    assert params() == []
    assert params(messaging_service_sid=MG) == []  # the service's own setting applies, as Twilio does


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"smart_encoded": "yes"}, "smart_encoded", "must be true or false"),
        ({"smart_encoded": 1}, "smart_encoded", "must be true or false"),
        (
            {"channel": "call", "body": None, "url": "https://example.com/t.xml", "smart_encoded": True},
            "smart_encoded",
            "is for messages, not calls",
        ),
    ],
)
def test_a_bad_smart_encoded_is_refused(fields: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        BatchIntake(batch(**fields)).reject()
    assert (field, reason) in [(p.field, p.reason) for p in caught.value.problems]
