"""The one resolver: the environment's accounts and the registry's, by name or SID; a miss reads its row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from notifyq.accounts import AccountDirectory, AccountKind, AccountRegistry, NewAccount, SecretBox
from notifyq.errors import Conflict, NotFound
from notifyq.settings import Settings, TwilioAccount
from notifyq.store import Store

from .helpers import AC_TENANT, TENANT_TOKEN

AC_MAIN = "AC" + "d0" * 16


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    main = TwilioAccount(account_sid=AC_MAIN, auth_token=SecretStr("main-token"), max_in_flight=9)
    return Settings(data_dir=tmp_path, twilio={"accounts": {"main": main}, **extra})


async def _accepted(_account: TwilioAccount) -> None:
    """A credential check that accepts everything (the simulator's are in test_accounts_api.py)."""


TENANT = NewAccount(
    name="tenant", kind=AccountKind.AUTH_TOKEN, account_sid=AC_TENANT, auth_token=SecretStr(TENANT_TOKEN)
)


async def test_environment_and_registry_by_name_and_sid(store: Store, tmp_path: Path) -> None:
    directory = AccountDirectory(_settings(tmp_path), store)
    assert (await directory.resolve(None)).name == "main"
    assert (await directory.resolve(AC_MAIN)).source == "settings"
    await AccountRegistry(directory).add(TENANT, _accepted)
    by_sid = await directory.resolve(AC_TENANT)
    assert (by_sid.name, by_sid.source, by_sid.twilio.auth_token.get_secret_value()) == (
        "tenant",
        "registry",
        TENANT_TOKEN,
    )
    assert [a.name for a in await directory.all()] == ["main", "tenant"]
    with pytest.raises(NotFound):
        await directory.resolve("nobody")


async def test_another_process_sees_an_account_added_after_it_read(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path, accounts_refresh_s=3600.0)
    worker = AccountDirectory(settings, store)
    assert [a.name for a in await worker.all()] == ["main"]  # read, and trusted for an hour
    await AccountRegistry(AccountDirectory(settings, store)).add(TENANT, _accepted)
    assert [a.name for a in await worker.all()] == ["main"]  # within its TTL, a list is what it read
    assert (await worker.resolve("tenant")).account_sid == AC_TENANT  # a miss reads again at once


async def test_the_environment_keeps_its_names_and_sids(store: Store, tmp_path: Path) -> None:
    registry = AccountRegistry(AccountDirectory(_settings(tmp_path), store))
    with pytest.raises(Conflict):
        await registry.add(TENANT.model_copy(update={"name": "main"}), _accepted)
    with pytest.raises(Conflict):
        await registry.add(TENANT.model_copy(update={"account_sid": AC_MAIN}), _accepted)
    with pytest.raises(Conflict):
        await registry.remove("main")
    with pytest.raises(NotFound):
        await registry.remove("tenant")


async def test_an_account_sealed_with_another_key_is_left_out_not_shown(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    await AccountRegistry(AccountDirectory(settings, store, SecretBox(Fernet.generate_key()))).add(TENANT, _accepted)
    other = AccountDirectory(settings, store, SecretBox(Fernet.generate_key()))
    assert [a.name for a in await other.all()] == ["main"]
    with pytest.raises(NotFound):
        await other.resolve("tenant")


async def test_a_connect_account_needs_its_owner_configured(store: Store, tmp_path: Path) -> None:
    connect = NewAccount(name="sub", kind=AccountKind.CONNECT, account_sid=AC_TENANT)
    with pytest.raises(NotFound, match="OWNER_ACCOUNT"):
        await AccountRegistry(AccountDirectory(_settings(tmp_path), store)).add(connect, _accepted)
    directory = AccountDirectory(_settings(tmp_path, connect={"owner_account": "main"}), store)
    added = await AccountRegistry(directory).add(connect, _accepted)
    assert added.twilio.basic_auth() == (AC_TENANT, "main-token")  # the subaccount, with the owner's token
    assert added.twilio.max_in_flight == 50


async def test_deauthorizing_marks_the_account_and_cancels_what_is_pending(store: Store, tmp_path: Path) -> None:
    directory = AccountDirectory(_settings(tmp_path, connect={"owner_account": "main"}), store)
    registry = AccountRegistry(directory)
    await registry.authorize(AC_TENANT, "tenant-7", _accepted)
    assert await registry.deauthorize(AC_TENANT) == (True, 0)
    assert (await directory.resolve(AC_TENANT)).deauthorized
    again = await registry.authorize(AC_TENANT, "tenant-7b", _accepted)  # authorised again: it is back
    assert (again.deauthorized, again.connect_state) == (False, "tenant-7b")
    assert await registry.deauthorize("AC" + "0" * 32) == (False, 0)
