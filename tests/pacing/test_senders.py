"""Which schedule paces a send and at what rate: the sender's kind, the settings, the account."""

from __future__ import annotations

import pytest
from pacing_helpers import ACCOUNT_SID, make_settings

from notifyq.pacing import SENDER_KINDS, sender_kind
from notifyq.pacing.senders import (
    UNKNOWN_ACCOUNT_CPS,
    UNKNOWN_ACCOUNT_MAX_IN_FLIGHT,
    AccountLimits,
    Schedule,
    account_limits,
    kind_rate,
    schedule_for,
)
from notifyq.settings import PacingSettings


@pytest.mark.parametrize(
    ("sender", "service", "kind"),
    [
        ("+14155550100", None, "long_code"),
        ("+447700900123", None, "long_code"),
        ("+18005550100", None, "toll_free"),
        ("+18885550100", None, "toll_free"),
        ("+18335550100", None, "toll_free"),
        ("+18095550100", None, "long_code"),  # 809 is the Dominican Republic, not toll-free
        ("12345", None, "short_code"),
        ("123456", None, "short_code"),
        ("1234567", None, "long_code"),
        ("ACME", None, "alphanumeric"),
        ("Acme Ltd", None, "alphanumeric"),
        ("MG" + "0" * 32, None, "messaging_service"),
        (None, "MG" + "1" * 32, "messaging_service"),
        ("+14155550100", "MG" + "1" * 32, "messaging_service"),
        ("whatsapp:+18005550100", None, "toll_free"),
        (None, None, "long_code"),
    ],
)
def test_sender_kind(sender: str | None, service: str | None, kind: str) -> None:
    assert sender_kind(sender, service) == kind


def test_every_kind_has_a_default_rate_from_the_settings() -> None:
    pacing = PacingSettings(long_code_mps=1.5, toll_free_mps=3.0, short_code_mps=100.0)
    assert kind_rate(pacing, "long_code") == 1.5
    assert kind_rate(pacing, "toll_free") == 3.0
    assert kind_rate(pacing, "short_code") == 100.0
    assert all(kind_rate(pacing, kind) > 0 for kind in SENDER_KINDS)
    with pytest.raises(ValueError, match="sender kind"):
        kind_rate(pacing, "pigeon")


def test_a_message_is_paced_by_its_sender_and_a_call_by_its_account() -> None:
    settings = make_settings(senders={"+14155550100": 7.0}, calls_per_second=2.0)
    configured = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+14155550100", kind="long_code", channel="sms")
    assert configured == Schedule("snd:+14155550100", 7.0, "+14155550100")
    default = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+18005550100", kind="toll_free", channel="sms")
    assert default == Schedule("snd:+18005550100", settings.pacing.toll_free_mps, "+18005550100")
    for channel in ("call", "voice"):
        call = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+14155550100", kind="long_code", channel=channel)
        assert call == Schedule(f"cps:{ACCOUNT_SID}", 2.0, "")  # no operator override applies to calls
    with pytest.raises(ValueError, match="sender kind"):
        schedule_for(settings, account_sid=ACCOUNT_SID, sender="S", kind="pigeon", channel="call")


def test_an_account_the_settings_do_not_name_gets_safe_limits() -> None:
    settings = make_settings(max_in_flight=7, calls_per_second=3.0)
    assert account_limits(settings, ACCOUNT_SID) == AccountLimits(7, 3.0)
    unknown = account_limits(settings, "AC" + "f" * 32)
    assert unknown == AccountLimits(UNKNOWN_ACCOUNT_MAX_IN_FLIGHT, UNKNOWN_ACCOUNT_CPS)
