"""Every field of a batch request but its recipients: the rules for each, and the channel rules between them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifyq.errors import Problem, ValidationFailed
from notifyq.intake import Priority

from .helpers import AP, DE, MG, UK, UK2, US, call, mms, parse, parse_batch, problem, problems, sms, without

# -- the request's fields


def test_unknown_fields_are_refused() -> None:
    found = problems(sms(colour="blue", StatusCallback="https://x"))
    assert {p.field for p in found} == {"colour", "StatusCallback"}
    assert all("unknown field" in p.reason for p in found)


def test_null_counts_as_absent() -> None:
    spec = parse(sms(account=None, priority=None, metadata=None, send_at=None, validity_s=None, media_url=None))
    assert spec.priority is Priority.BULK
    assert spec.validity_s == 36000


def test_channel_is_required_and_known() -> None:
    assert problem(without(sms(), "channel")).field == "channel"
    assert "must be one of" in problem(sms(channel="fax")).reason
    assert problem(sms(channel=1)).field == "channel"


# -- the sender


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("+1 500 555 0006", "+15005550006"),
        ("+44 7911 123456", UK2),
        ("12345", "12345"),
        ("123456", "123456"),
        ("MyBrand", "MyBrand"),
        ("My Brand 1", "My Brand 1"),
        ("A", "A"),
        ("ABCDEFGHIJK", "ABCDEFGHIJK"),
        ("2FA", "2FA"),
    ],
)
def test_good_sms_senders(sender: str, expected: str) -> None:
    assert parse(sms(**{"from": sender})).sender == expected


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("+1415", "is too short for +1 (US)"),
        ("1234", "a numeric sender is a short code of 5-6 digits"),
        ("1234567", "a numeric sender is a short code of 5-6 digits"),
        ("14155550100", "or an E.164 number starting with +"),
        ("ABCDEFGHIJKL", "at most 11 characters"),
        ("My-Brand", "only A-Z, a-z, 0-9 and spaces"),
        ("Brand!", "only A-Z, a-z, 0-9 and spaces"),
        ("Zoë", "only A-Z, a-z, 0-9 and spaces"),
        ("123 456", "at least one letter"),
        (" Brand", "must not start or end with a space"),
        ("", "must not be empty"),
        ("x" * 65, "at most 64"),
    ],
)
def test_bad_senders(sender: str, reason: str) -> None:
    found = problem(sms(**{"from": sender}))
    assert found.field == "from"
    assert reason in found.reason


def test_sender_must_be_a_string() -> None:
    assert problem(sms(**{"from": 15005550006})).reason == "must be a string"


def test_messages_need_from_or_a_messaging_service() -> None:
    assert "messages need from, messaging_service_sid" in problem(without(sms(), "from")).reason
    only_service = parse({**without(sms(), "from"), "messaging_service_sid": MG})
    assert (only_service.sender, only_service.messaging_service_sid) == (None, MG)
    both = parse(sms(messaging_service_sid=MG))
    assert (both.sender, both.messaging_service_sid) == ("+15005550006", MG)


@pytest.mark.parametrize("sid", ["MG123", "mg" + "0" * 32, "MG" + "g" * 32, "PN" + "0" * 32, "MG" + "0" * 33])
def test_messaging_service_sid_shape(sid: str) -> None:
    found = problem(sms(messaging_service_sid=sid))
    assert (found.field, found.reason) == ("messaging_service_sid", "must be MG followed by 32 hex digits")


def test_mms_senders() -> None:
    assert parse(mms(**{"from": "12345"})).sender == "12345"
    found = problem(mms(**{"from": "MyBrand"}))
    assert (found.field, found.reason) == ("from", "an alphanumeric sender ID cannot send MMS")


def test_call_senders() -> None:
    assert parse(call(**{"from": "+1 500 555 0006"})).sender == "+15005550006"
    for sender in ("12345", "MyBrand"):
        found = problem(call(**{"from": sender}))
        assert (found.field, found.reason) == (
            "from",
            "calls need from as an E.164 number, not a short code or alphanumeric sender ID",
        )
    assert problem(without(call(), "from")).reason.startswith("calls need from")


# -- the body


def test_sms_needs_a_non_empty_body() -> None:
    assert problem(without(sms(), "body")) == Problem("body", "sms needs a body")
    assert problem(sms(body="")) == Problem("body", "must not be empty")
    assert problem(sms(body=["Hi"])) == Problem("body", "must be a string")


def test_template_syntax_problems_are_reported_on_body() -> None:
    found = problems(sms(body="Hi {name.upper} }"))
    assert [p.field for p in found] == ["body", "body"]
    assert "is not allowed" in found[0].reason
    assert "unmatched '}'" in found[1].reason


def test_a_body_too_long_before_any_variable_is_one_problem() -> None:
    found = problem(sms(body="x" * 1601, recipients=[US, UK, DE]))
    assert found == Problem("body", "is 1601 characters before variables; at most 1600")
    assert parse(sms(body="x" * 1600)).body_template == "x" * 1600


def test_body_is_not_for_calls() -> None:
    assert problem(call(body="Hi")) == Problem("body", "is for messages, not calls")


# -- media


def test_mms_media() -> None:
    urls = [f"https://cdn.example.com/{i}.png" for i in range(10)]
    spec = parse(mms(media_url=urls, body=None))
    assert spec.media_urls == tuple(urls)
    assert spec.body_template is None


@pytest.mark.parametrize(
    ("media", "field", "reason"),
    [
        (None, "media_url", "mms needs at least one media_url"),
        ([], "media_url", "must be a non-empty list of URLs"),
        ("https://example.com/a.png", "media_url", "must be a non-empty list of URLs"),
        ([f"https://e.com/{i}" for i in range(11)], "media_url", "has 11 URLs; at most 10"),
        (["https://e.com/a", "/relative.png"], "media_url[1]", "must be an absolute http or https URL"),
        (["ftp://e.com/a.png"], "media_url[0]", "must be an absolute http or https URL"),
        (["https:///a.png"], "media_url[0]", "must be an absolute http or https URL"),
        (["https://e.com/a b.png"], "media_url[0]", "must not contain spaces"),
        (["http://[::1"], "media_url[0]", "is not a valid URL"),
        ([42], "media_url[0]", "must be a URL string"),
    ],
)
def test_bad_media(media: Any, field: str, reason: str) -> None:
    found = problem(mms(media_url=media))
    assert found.field == field
    assert reason in found.reason


def test_media_needs_channel_mms() -> None:
    assert problem(sms(media_url=["https://e.com/a.png"])) == Problem("media_url", "media needs channel mms")
    assert problem(call(media_url=["https://e.com/a.png"])) == Problem("media_url", "is for messages, not calls")


# -- calls


def test_call_with_every_option() -> None:
    spec = parse(
        call(
            status_callback_event=["initiated", "answered", "completed", "answered"],
            machine_detection="DetectMessageEnd",
            timeout=30,
        )
    )
    assert spec.url == "https://example.com/twiml"
    assert spec.status_callback_events == ("initiated", "answered", "completed")
    assert spec.machine_detection == "DetectMessageEnd"
    assert spec.timeout == 30
    assert spec.body_template is None


def test_calls_need_exactly_one_of_url_twiml_application_sid() -> None:
    assert problem(without(call(), "url")) == Problem("url", "calls need one of url, twiml or application_sid")
    found = problem(call(twiml="<Response/>", application_sid=AP))
    assert found.reason == "calls take exactly one of url, twiml, application_sid; got url, twiml, application_sid"
    assert parse(without(call(twiml="<Response><Say>Hi</Say></Response>"), "url")).twiml
    assert parse(without(call(application_sid=AP), "url")).application_sid == AP


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"url": "example.com/twiml"}, "url", "must be an absolute http or https URL"),
        ({"url": 7}, "url", "must be a string"),
        ({"url": None, "twiml": "x" * 4001}, "twiml", "is 4001 characters; at most 4000"),
        ({"url": None, "application_sid": "AP123"}, "application_sid", "must be AP followed by 32 hex digits"),
        ({"timeout": 0}, "timeout", "must be from 1 to 600"),
        ({"timeout": 601}, "timeout", "must be from 1 to 600"),
        ({"timeout": "60"}, "timeout", "must be an integer"),
        ({"timeout": 60.0}, "timeout", "must be an integer"),
        ({"timeout": True}, "timeout", "must be an integer"),
        ({"status_callback_event": "completed"}, "status_callback_event", "must be a list"),
        ({"status_callback_event": ["completed", "busy"]}, "status_callback_event", "unknown event(s) ['busy']"),
        ({"machine_detection": "enable"}, "machine_detection", "must be 'Enable' or 'DetectMessageEnd'"),
        ({"messaging_service_sid": MG}, "messaging_service_sid", "is for messages, not calls"),
    ],
)
def test_bad_call_fields(fields: dict[str, Any], field: str, reason: str) -> None:
    found = problem(call(**fields))
    assert found.field == field
    assert reason in found.reason


def test_call_limits_are_inclusive() -> None:
    assert parse(call(timeout=1)).timeout == 1
    assert parse(call(timeout=600)).timeout == 600
    assert parse(without(call(twiml="x" * 4000), "url")).twiml == "x" * 4000


@pytest.mark.parametrize(
    "field", ["url", "twiml", "application_sid", "status_callback_event", "machine_detection", "timeout"]
)
def test_call_fields_are_not_for_messages(field: str) -> None:
    value: Any = {"status_callback_event": ["completed"], "timeout": 30}.get(field, "x")
    assert problem(sms(**{field: value})) == Problem(field, "is for calls, not messages")


# -- the rest


def test_account() -> None:
    assert parse(sms(account="backup")).account == "backup"
    assert parse(sms(account="main"), accounts={"main"}).account == "main"
    assert problem(sms(account="other"), accounts=["main"]) == Problem(
        "account", "no Twilio account named 'other' is configured"
    )
    assert problem(sms(account="")) == Problem("account", "must not be empty")


def test_idempotency_key() -> None:
    assert parse(sms(idempotency_key="k" * 200)).idempotency_key == "k" * 200
    assert problem(sms(idempotency_key="k" * 201)) == Problem("idempotency_key", "is 201 characters; at most 200")
    assert problem(sms(idempotency_key=5)) == Problem("idempotency_key", "must be a string")


def test_priority() -> None:
    assert parse(sms(priority="urgent")).priority is Priority.URGENT
    assert parse(sms(priority="bulk")).priority == "bulk"
    assert problem(sms(priority="high")) == Problem("priority", "must be one of 'bulk', 'urgent'")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T08:59:30Z", datetime(2026, 11, 22, 8, 59, 30, tzinfo=UTC)),  # a little late is fine
        ("2027-11-22T09:00:00Z", datetime(2027, 11, 22, 9, tzinfo=UTC)),
    ],
)
def test_send_at(raw: str, expected: datetime) -> None:
    spec = parse(sms(send_at=raw))
    assert spec.send_at == expected
    assert spec.send_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2026-11-22T08:58:59Z", "is in the past"),
        ("2026-11-22T10:00:00", "needs a timezone"),
        ("2026-11-22", "needs a timezone"),
        ("tomorrow", "must be an ISO 8601 date and time"),
        ("2027-11-24T09:00:00Z", "is more than 366 days ahead"),
        ("9999-12-31T23:59:59Z", "is more than 366 days ahead"),
        (1764000000, "must be a string"),
    ],
)
def test_bad_send_at(raw: Any, reason: str) -> None:
    found = problem(sms(send_at=raw))
    assert found.field == "send_at"
    assert reason in found.reason


def test_validity() -> None:
    assert parse(sms(validity_s=1)).validity_s == 1
    assert parse(sms(validity_s=36000)).validity_s == 36000
    assert parse(sms(), default_validity_s=3600).validity_s == 3600
    assert parse(sms(validity_s=60), default_validity_s=3600).validity_s == 60
    assert problem(sms(validity_s=0)) == Problem("validity_s", "must be from 1 to 36000")
    assert problem(sms(validity_s=36001)) == Problem("validity_s", "must be from 1 to 36000")
    assert problem(sms(validity_s="60")) == Problem("validity_s", "must be an integer")


def test_metadata() -> None:
    meta = {"campaign": "nov", "n": [1, 2], "nested": {"ok": True}}
    assert parse(sms(metadata=meta)).metadata == meta
    assert problem(sms(metadata=["x"])) == Problem("metadata", "must be a JSON object")
    assert problem(sms(metadata={"x": "y" * 5000})).reason.endswith("bytes as JSON; at most 4096")
    assert problem(sms(metadata={"when": datetime.now(UTC)})) == Problem("metadata", "must be plain JSON")
    assert problem(sms(metadata={"x": float("nan")})) == Problem("metadata", "must be plain JSON")


def test_now_defaults_to_the_current_time() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert parse_batch(sms(send_at=soon)).send_at is not None
    assert problems_without_now(sms(send_at="2020-01-01T00:00:00Z"))[0].reason == "is in the past"


def problems_without_now(payload: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ValidationFailed) as exc:
        parse_batch(payload)
    return exc.value.problems
