"""Which schedule paces a send, at what rate, and what an account allows: pure policy from settings.

A message is paced by what Twilio limits. A sender in a group (a 10DLC campaign's numbers, which
share the campaign's rate) is paced on the group's schedule, at the group's rate: the account's groups
in the registry first, then ``pacing.groups``. Any other sender keeps a schedule of its own, at the
rate configured for it in ``pacing.senders``, else the default of its kind (long code, toll-free,
short code, alphanumeric, messaging service). An operator's override (``PacingAdmin.set_sender_rate``,
by sender or by group schedule name) beats the configured rate, inside the script. A call is paced by
its account's calls per second, whatever number it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from notifyq.settings import PacingSettings, Settings

SENDER_KINDS: Final = frozenset({"long_code", "toll_free", "short_code", "alphanumeric", "messaging_service"})
CALL_CHANNELS: Final = frozenset({"call", "voice"})
UNKNOWN_ACCOUNT_MAX_IN_FLIGHT: Final = 10  # Twilio does not publish the cap; 10 is safe for any account type
UNKNOWN_ACCOUNT_CPS: Final = 1.0  # Twilio's default for every account
_TOLL_FREE: Final = re.compile(r"\+1(800|833|844|855|866|877|888)\d{7}")
_SHORT_CODE: Final = re.compile(r"\d{5,6}")


def sender_kind(sender: str | None, messaging_service_sid: str | None) -> str:
    """Classify a sender for its default rate: messaging_service, short_code, toll_free, alphanumeric, long_code."""
    if messaging_service_sid or (sender or "").startswith("MG"):
        return "messaging_service"
    number = (sender or "").rpartition(":")[2]  # "whatsapp:+1..." paces by the number
    if _SHORT_CODE.fullmatch(number):
        return "short_code"
    if _TOLL_FREE.fullmatch(number):
        return "toll_free"
    if any(ch.isalpha() for ch in number):
        return "alphanumeric"
    return "long_code"


def kind_rate(pacing: PacingSettings, kind: str) -> float:
    """The default segments per second of a sender kind."""
    rates = {
        "long_code": pacing.long_code_mps,
        "toll_free": pacing.toll_free_mps,
        "short_code": pacing.short_code_mps,
        "alphanumeric": pacing.alphanumeric_mps,
        "messaging_service": pacing.messaging_service_mps,
    }
    if kind not in rates:
        raise ValueError(f"unknown sender kind {kind!r}; expected one of {sorted(SENDER_KINDS)}")
    return rates[kind]


@dataclass(frozen=True, slots=True)
class SenderGroup:
    """Senders paced together on one schedule at one rate (a 10DLC campaign's numbers and its MPS)."""

    schedule: str  # ``grp:<name>`` (settings), ``grp:<AccountSid>:<name>`` (an account's, in the registry)
    rate: float
    senders: frozenset[str]


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """What an account allows: REST requests in flight, calls per second, and its sender groups."""

    max_in_flight: int
    calls_per_second: float
    groups: tuple[SenderGroup, ...] = field(default=())


def account_groups(account_sid: str, groups: Mapping[str, Mapping[str, object]]) -> tuple[SenderGroup, ...]:
    """An account's groups from the registry (name -> {rate, senders}), checked as the settings' are.

    ValueError for a rate that is not positive, a group without senders, or a sender in two groups.
    """
    made: list[SenderGroup] = []
    owner: dict[str, str] = {}
    for name, spec in sorted(groups.items()):
        rate, senders = spec.get("rate"), spec.get("senders")
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not rate > 0:
            raise ValueError(f"sender group {name!r}: its rate is a positive number of segments per second")
        if not isinstance(senders, Sequence) or isinstance(senders, str) or not senders:
            raise ValueError(f"sender group {name!r}: it has at least one sender")
        for sender in senders:
            if sender in owner:
                raise ValueError(
                    f"sender {sender!r} is in two groups, {owner[sender]!r} and {name!r}: a sender keeps one rate"
                )
            owner[str(sender)] = name
        made.append(SenderGroup(f"grp:{account_sid}:{name}", float(rate), frozenset(str(s) for s in senders)))
    return tuple(made)


def settings_groups(pacing: PacingSettings, account_sid: str) -> Iterable[SenderGroup]:
    """The groups of ``pacing.groups`` that apply to an account (those scoped to it, and the unscoped)."""
    for name, group in pacing.groups.items():
        if group.account is None or group.account == account_sid:
            yield SenderGroup(f"grp:{name}", group.rate, frozenset(group.senders))


def group_of(pacing: PacingSettings, account_sid: str, sender: str, limits: AccountLimits) -> SenderGroup | None:
    """The group that paces ``sender`` on this account: the account's own first, then the settings'."""
    for group in (*limits.groups, *settings_groups(pacing, account_sid)):
        if sender in group.senders:
            return group
    return None


def account_limits(settings: Settings, account_sid: str) -> AccountLimits:
    """The configured account's limits; safe defaults for an account the settings do not name."""
    found = settings.twilio.account_by_sid(account_sid)
    if found is None:
        return AccountLimits(UNKNOWN_ACCOUNT_MAX_IN_FLIGHT, UNKNOWN_ACCOUNT_CPS)
    return AccountLimits(found[1].max_in_flight, found[1].calls_per_second)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The schedule that paces a send: its name (``snd:<sender>``, ``cps:<account>``) and rate."""

    name: str
    rate: float  # segments (calls: calls) per second, before an operator's override
    override: str  # the field of the operator's override in the rates hash; "" for calls: none applies


def schedule_for(
    settings: Settings,
    *,
    account_sid: str,
    sender: str,
    kind: str,
    channel: str,
    limits: AccountLimits | None = None,
) -> Schedule:
    """The schedule of a send from ``sender`` (of ``kind``) on ``channel``, through ``account_sid``.

    ``limits``: the account's, when the caller resolved them (the registry's accounts); else the settings'.
    A grouped sender's schedule is its group's, named and overridden by the group's schedule name.
    """
    if kind not in SENDER_KINDS:
        raise ValueError(f"unknown sender kind {kind!r}; expected one of {sorted(SENDER_KINDS)}")
    limits = limits or account_limits(settings, account_sid)
    if channel in CALL_CHANNELS:
        return Schedule(f"cps:{account_sid}", limits.calls_per_second, "")
    group = group_of(settings.pacing, account_sid, sender, limits)
    if group is not None:
        return Schedule(group.schedule, group.rate, group.schedule)
    rate = settings.pacing.senders.get(sender) or kind_rate(settings.pacing, kind)
    return Schedule(f"snd:{sender}", rate, sender)
