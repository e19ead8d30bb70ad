"""A registry account's sender groups: kept, checked for one rate per sender, and pacing the worker's sends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from notifyq.accounts import AccountDirectory, AccountKind, AccountRegistry, NewAccount
from notifyq.api.app import STATE
from notifyq.errors import Conflict, NotFound, ValidationFailed
from notifyq.pacing import PacingAdmin
from notifyq.pacing.senders import Schedule, schedule_for
from notifyq.report import gather_report
from notifyq.settings import Settings, TwilioAccount
from notifyq.simulator import SimulatorConfig
from notifyq.store import Store
from notifyq.worker.app import resolved_limits

from .helpers import AC_TENANT, TENANT_TOKEN, accounts_stack

AC_MAIN = "AC" + "d0" * 16
A, B, C = "+14155550100", "+14155550101", "+14155550102"
TENANT = NewAccount(
    name="tenant", kind=AccountKind.AUTH_TOKEN, account_sid=AC_TENANT, auth_token=SecretStr(TENANT_TOKEN)
)


def _settings(tmp_path: Path, **pacing: Any) -> Settings:
    main = TwilioAccount(account_sid=AC_MAIN, auth_token=SecretStr("main-token"))
    return Settings(data_dir=tmp_path, twilio={"accounts": {"main": main}}, pacing=pacing)


async def _accepted(_account: TwilioAccount) -> None:
    """A credential check that accepts everything."""


async def _registry(store: Store, settings: Settings) -> AccountRegistry:
    registry = AccountRegistry(AccountDirectory(settings, store))
    await registry.add(TENANT, _accepted)
    return registry


async def test_a_group_is_kept_and_paces_its_numbers_together_in_the_worker(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    registry = await _registry(store, settings)
    account = await registry.set_sender_group("tenant", "campaign", 12.0, [A, B])
    assert account.sender_groups == {"campaign": {"rate": 12.0, "senders": [A, B]}}
    assert account.as_dict()["sender_groups"] == account.sender_groups
    worker = AccountDirectory(settings, store)  # another process reads what was kept
    assert (await worker.resolve(AC_TENANT)).sender_groups == account.sender_groups
    limits = resolved_limits(worker, AC_TENANT)
    schedules = {
        sender: schedule_for(
            settings, account_sid=AC_TENANT, sender=sender, kind="long_code", channel="sms", limits=limits
        )
        for sender in (A, B, C)
    }
    grp = f"grp:{AC_TENANT}:campaign"
    assert schedules[A] == schedules[B] == Schedule(grp, 12.0, grp)
    assert schedules[C] == Schedule(f"snd:{C}", settings.pacing.long_code_mps, C)
    replaced = await registry.set_sender_group("tenant", "campaign", 6.0, [A])
    assert replaced.sender_groups == {"campaign": {"rate": 6.0, "senders": [A]}}
    removed = await registry.remove_sender_group("tenant", "campaign")
    assert removed.sender_groups == {}
    with pytest.raises(NotFound, match="sender group 'campaign'"):
        await registry.remove_sender_group("tenant", "campaign")


@pytest.mark.parametrize(
    ("group", "rate", "senders", "message"),
    [
        ("other", 3.0, [B], "sender '+14155550101' is in two groups, 'campaign' and 'other'"),
        ("other", 0.0, [C], "sender group 'other': rate: Input should be greater than 0"),
        ("other", -1.0, [C], "sender group 'other': rate: Input should be greater than 0"),
        ("other", 1.0, [], "sender group 'other': senders: List should have at least 1 item"),
        ("no name!", 1.0, [C], "sender group name 'no name!'"),
        ("other", 1.0, ["+15005550006"], "has a rate in the settings (pacing.senders)"),
        ("other", 1.0, ["+15005550009"], "has a rate in the settings (pacing.groups 'shared')"),
    ],
)
async def test_bad_groups_are_refused_and_change_nothing(
    store: Store, tmp_path: Path, group: str, rate: float, senders: list[str], message: str
) -> None:
    settings = _settings(
        tmp_path,
        senders={"+15005550006": 5.0},
        groups={"shared": {"rate": 2.0, "senders": ["+15005550009"]}},
    )
    registry = await _registry(store, settings)
    await registry.set_sender_group("tenant", "campaign", 12.0, [A, B])
    with pytest.raises(ValidationFailed, match=re.escape(message)):
        await registry.set_sender_group("tenant", group, rate, senders)
    kept = await AccountDirectory(settings, store).resolve("tenant")
    assert kept.sender_groups == {"campaign": {"rate": 12.0, "senders": [A, B]}}


async def test_an_environment_account_takes_its_groups_from_the_settings(store: Store, tmp_path: Path) -> None:
    registry = await _registry(store, _settings(tmp_path))
    with pytest.raises(Conflict, match="NOTIFYQ_PACING__GROUPS"):
        await registry.set_sender_group("main", "campaign", 12.0, [A])


async def test_the_on_call_figures_show_the_settings_groups(
    tmp_path: Path, redis_url: str, database_url: str, sim_config: SimulatorConfig
) -> None:
    pacing = {"senders": {"+15005550006": 50.0}, "groups": {"campaign": {"rate": 12.0, "senders": [A, B]}}}
    async with accounts_stack(tmp_path, redis_url, database_url, sim_config, pacing=pacing) as stack:
        await PacingAdmin(stack.app[STATE].require_redis(), stack.settings).set_sender_rate("grp:campaign", 6.0)
        report = await gather_report(stack.worker_app.jobs, stack.inbox, stack.worker_app.store, stack.settings)
    figures = report.as_status()["senders"]
    assert figures["grp:campaign"] == {"rate": 6.0, "waiting": 0, "backlog_s": 0.0}  # the override in force
    assert figures["+15005550006"]["rate"] == 50.0
    assert A not in figures  # a grouped number is counted in its group
