"""Which schedule paces a send and at what rate: the sender's kind, the settings, the account."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pacing_helpers import ACCOUNT_SID, make_settings
from pydantic import ValidationError

from notifyq.pacing import SENDER_KINDS, sender_kind
from notifyq.pacing.senders import (
    UNKNOWN_ACCOUNT_CPS,
    UNKNOWN_ACCOUNT_MAX_IN_FLIGHT,
    AccountLimits,
    Schedule,
    account_groups,
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


CAMPAIGN = {"rate": 12.0, "senders": ["+14155550100", "+14155550101"]}


def test_a_groups_numbers_share_its_schedule_and_rate_and_others_keep_their_own() -> None:
    settings = make_settings(senders={"+14155550199": 4.0}, groups={"campaign": CAMPAIGN})
    for number in CAMPAIGN["senders"]:
        schedule = schedule_for(settings, account_sid=ACCOUNT_SID, sender=number, kind="long_code", channel="sms")
        assert schedule == Schedule("grp:campaign", 12.0, "grp:campaign")  # overridden by the group's name
    alone = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+14155550199", kind="long_code", channel="sms")
    assert alone == Schedule("snd:+14155550199", 4.0, "+14155550199")
    call = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+14155550100", kind="long_code", channel="call")
    assert call.name == f"cps:{ACCOUNT_SID}"  # calls are paced by the account, group or not


def test_a_group_scoped_to_an_account_paces_only_that_accounts_sends() -> None:
    other = "AC" + "e" * 32
    settings = make_settings(groups={"campaign": {**CAMPAIGN, "account": other}})
    theirs = schedule_for(settings, account_sid=other, sender="+14155550100", kind="long_code", channel="sms")
    ours = schedule_for(settings, account_sid=ACCOUNT_SID, sender="+14155550100", kind="long_code", channel="sms")
    assert theirs.name == "grp:campaign"
    assert ours == Schedule("snd:+14155550100", settings.pacing.long_code_mps, "+14155550100")


def test_an_accounts_registry_groups_come_before_the_settings() -> None:
    settings = make_settings(groups={"campaign": CAMPAIGN})
    groups = account_groups(ACCOUNT_SID, {"brand": {"rate": 3, "senders": ["+14155550100"]}})
    limits = AccountLimits(50, 1.0, groups)
    schedule = schedule_for(
        settings, account_sid=ACCOUNT_SID, sender="+14155550100", kind="long_code", channel="sms", limits=limits
    )
    assert schedule == Schedule(f"grp:{ACCOUNT_SID}:brand", 3.0, f"grp:{ACCOUNT_SID}:brand")
    other = schedule_for(
        settings, account_sid=ACCOUNT_SID, sender="+14155550101", kind="long_code", channel="sms", limits=limits
    )
    assert other.name == "grp:campaign"


@pytest.mark.parametrize(
    ("groups", "senders", "message"),
    [
        ({"a": CAMPAIGN, "b": {"rate": 1.0, "senders": ["+14155550101"]}}, {}, "is in two groups, 'a' and 'b'"),
        ({"a": {"rate": 0, "senders": ["+14155550100"]}}, {}, "greater than 0"),
        ({"a": {"rate": -2.5, "senders": ["+14155550100"]}}, {}, "greater than 0"),
        ({"a": {"rate": 1.0, "senders": []}}, {}, "at least 1 item"),
        ({"a": CAMPAIGN}, {"+14155550101": 2.0}, "has a rate of its own"),
        ({"no name!": CAMPAIGN}, {}, "sender group name"),
    ],
)
def test_bad_groups_in_the_settings_are_refused_clearly(
    groups: dict[str, Any], senders: dict[str, float], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        PacingSettings.model_validate({"groups": groups, "senders": senders})


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"a": {"rate": 1, "senders": ["+1"]}, "b": {"rate": 2, "senders": ["+1"]}}, "is in two groups, 'a' and 'b'"),
        ({"a": {"rate": 0, "senders": ["+1"]}}, "rate is a positive number"),
        ({"a": {"rate": -1.0, "senders": ["+1"]}}, "rate is a positive number"),
        ({"a": {"rate": True, "senders": ["+1"]}}, "rate is a positive number"),
        ({"a": {"rate": 1, "senders": []}}, "at least one sender"),
        ({"a": {"rate": 1, "senders": "+1"}}, "at least one sender"),
    ],
)
def test_bad_registry_groups_are_refused_clearly(groups: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        account_groups(ACCOUNT_SID, groups)
