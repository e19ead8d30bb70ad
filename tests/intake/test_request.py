"""The validated batch (BatchSpec): its values and defaults, and the form items every send of it shares."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta

import pytest

from notifyq import intake
from notifyq.errors import ValidationFailed
from notifyq.intake import BatchSpec, Priority
from notifyq.statuses import Channel

from .helpers import AP, DE, MG, NOW, UK, US, Recipient, call, mms, parse, sms, without

# -- the validated value


def test_minimal_sms_and_its_defaults() -> None:
    spec = parse(sms())
    assert spec.channel is Channel.SMS
    assert spec.sender == "+15005550006"
    assert spec.body_template == "Hi there"
    assert spec.recipients == [Recipient(US, None, 0)]
    assert spec.priority is Priority.BULK
    assert spec.validity_s == 36000
    assert spec.account is None
    assert spec.messaging_service_sid is None
    assert spec.media_urls == ()
    assert spec.send_at is None
    assert spec.metadata is None
    assert spec.idempotency_key is None
    assert spec.duplicates_dropped == 0


def test_every_field_at_once() -> None:
    spec = parse(
        mms(
            account="main",
            messaging_service_sid=MG,
            body="Hi {name}",
            recipients=[{"to": UK, "vars": {"name": "Ann"}}],
            idempotency_key="k-1",
            priority="urgent",
            send_at="2026-11-22T11:00:00+01:00",
            validity_s=600,
            metadata={"campaign": "nov"},
        ),
        accounts=["main"],
    )
    assert spec.channel is Channel.MMS
    assert spec.account == "main"
    assert spec.messaging_service_sid == MG
    assert spec.recipients == [Recipient(UK, {"name": "Ann"}, 0)]
    assert spec.idempotency_key == "k-1"
    assert spec.priority is Priority.URGENT
    assert spec.send_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert spec.validity_s == 600
    assert spec.metadata == {"campaign": "nov"}


def test_spec_and_recipients_are_frozen() -> None:
    spec = parse(sms())
    with pytest.raises(FrozenInstanceError):
        spec.channel = Channel.CALL  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        spec.recipients[0].to = UK  # type: ignore[misc]
    assert not hasattr(spec.recipients[0], "__dict__")


def test_deadline_is_send_at_or_arrival_plus_validity() -> None:
    assert parse(sms(validity_s=60)).deadline(NOW) == NOW + timedelta(seconds=60)
    spec = parse(sms(validity_s=60, send_at="2026-11-22T10:00:00Z"))
    assert spec.deadline(NOW) == datetime(2026, 11, 22, 10, 1, tzinfo=UTC)


# -- what the worker sends


def test_twilio_params_for_sms() -> None:
    spec = parse(sms(body="Hi {name}", validity_s=600, recipients=[{"to": US, "vars": {"name": "Ann"}}]))
    assert spec.twilio_params(spec.recipients[0]) == [
        ("To", US),
        ("From", "+15005550006"),
        ("ValidityPeriod", "600"),
        ("Body", "Hi Ann"),
    ]
    assert spec.render_body({"name": "Bo"}) == "Hi Bo"
    with pytest.raises(KeyError):
        spec.twilio_params(Recipient(UK, None, 1))  # parse_batch never accepts this one: it has no name


def test_twilio_params_without_validity_period_at_the_maximum() -> None:
    spec = parse({**without(sms(), "from"), "messaging_service_sid": MG})
    assert spec.twilio_params(spec.recipients[0]) == [("To", US), ("MessagingServiceSid", MG), ("Body", "Hi there")]


def test_twilio_params_with_sender_and_service() -> None:
    spec = parse(sms(messaging_service_sid=MG, **{"from": "MyBrand"}))
    assert spec.twilio_params(spec.recipients[0])[:3] == [("To", US), ("From", "MyBrand"), ("MessagingServiceSid", MG)]


def test_twilio_params_for_mms() -> None:
    spec = parse(
        mms(
            media_url=["https://e.com/1.png", "https://e.com/2.jpg"],
            body="Look {name}",
            recipients=[{"to": UK, "vars": {"name": "Ann"}}],
        )
    )
    assert spec.twilio_params(spec.recipients[0]) == [
        ("To", UK),
        ("From", "+15005550006"),
        ("MediaUrl", "https://e.com/1.png"),
        ("MediaUrl", "https://e.com/2.jpg"),
        ("Body", "Look Ann"),
    ]


def test_twilio_params_for_mms_without_body() -> None:
    spec = parse(mms(body=None, **{"from": "12345"}))
    assert spec.twilio_params(spec.recipients[0]) == [
        ("To", US),
        ("From", "12345"),
        ("MediaUrl", "https://example.com/a.png"),
    ]
    assert spec.render_body(None) == ""


def test_twilio_params_for_a_call_with_url() -> None:
    spec = parse(
        call(
            status_callback_event=["initiated", "completed"],
            machine_detection="Enable",
            timeout=25,
            validity_s=120,
            recipients=[{"to": DE, "vars": {"ignored": "x"}}],
        )
    )
    assert spec.twilio_params(spec.recipients[0]) == [
        ("To", DE),
        ("From", "+15005550006"),
        ("Url", "https://example.com/twiml"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "completed"),
        ("MachineDetection", "Enable"),
        ("Timeout", "25"),
    ]  # no Body and no ValidityPeriod: Calls.json has neither


def test_twilio_params_for_calls_with_twiml_or_application() -> None:
    twiml = without(call(twiml="<Response><Say>Hi</Say></Response>"), "url")
    spec = parse(twiml)
    assert spec.twilio_params(spec.recipients[0]) == [
        ("To", US),
        ("From", "+15005550006"),
        ("Twiml", "<Response><Say>Hi</Say></Response>"),
    ]
    spec = parse(without(call(application_sid=AP), "url"))
    assert spec.twilio_params(spec.recipients[0]) == [("To", US), ("From", "+15005550006"), ("ApplicationSid", AP)]


def test_no_status_callback_in_params() -> None:
    for payload in (sms(), mms(), call()):
        spec = parse(payload)
        assert "StatusCallback" not in dict(spec.twilio_params(spec.recipients[0]))


def test_a_spec_built_directly_checks_its_template() -> None:
    with pytest.raises(ValidationFailed):
        BatchSpec(channel=Channel.SMS, body_template="{x.y}")


def test_every_intake_docstring_is_text_that_can_be_printed() -> None:
    modules = [importlib.import_module(f"notifyq.intake.{m.name}") for m in pkgutil.iter_modules(intake.__path__)]
    assert len(modules) >= 8
    for module in [intake, *modules]:
        assert module.__doc__ is not None
        module.__doc__.encode()  # strict UTF-8: raises for a lone surrogate
