"""The one resolver of accounts: the registry's and the environment's, by name or by AccountSid.

Every process (API, worker, receiver, CLI) asks ``AccountDirectory.resolve``. What it read of the
registry is trusted for ``twilio.accounts_refresh_s``, and a name or SID it does not know makes it
read the registry again at once: a worker sees an account added while it runs at its first batch,
and a deauthorisation within the refresh time (the pacer's pause stops its sends before that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog
from pydantic import SecretStr, ValidationError

from notifyq.accounts.model import Account, AccountKind, settings_account
from notifyq.accounts.sealing import SecretBox, SecretKeyError, secret_box
from notifyq.errors import NotFound
from notifyq.settings import Settings, TwilioAccount

if TYPE_CHECKING:
    from notifyq.store import AccountRecord, Store

log = structlog.get_logger("notifyq.accounts")


class ConnectNotConfigured(NotFound):
    """A Connect account cannot be reached: no owner of our Connect App is configured."""


class AccountDirectory:
    """Accounts by name and by AccountSid: the environment's first, then the registry's."""

    def __init__(self, settings: Settings, store: Store, box: SecretBox | None = None) -> None:
        self.settings = settings
        self.store = store
        self._box = box
        self._ttl = settings.twilio.accounts_refresh_s
        self._by_key: dict[str, Account] = {}
        self._loaded_at = float("-inf")
        self._reading = asyncio.Lock()  # lookups that miss at once share one read
        self._reads = 0

    @property
    def box(self) -> SecretBox:
        """The registry's secret box, made on first use (on embedded defaults that keeps a key file)."""
        if self._box is None:
            self._box = secret_box(self.settings)
        return self._box

    async def resolve(self, name_or_sid: str | None) -> Account:
        """The account called ``name_or_sid`` (or with that SID); None: the default account.

        NotFound when no account has that name or SID.
        """
        key = name_or_sid or self.settings.twilio.default_account
        if key is None:
            configured = next(iter(self.settings.twilio.accounts), None)
            if configured is None:
                raise NotFound("account", "<default>")
            key = configured
        found = self._configured(key)
        if found is not None:
            return found
        await self._fresh()
        account = self._by_key.get(key) or await self._read_one(key)
        if account is None:
            raise NotFound("account", key)
        return account

    async def _read_one(self, key: str) -> Account | None:
        """The registry's row for a key not known here, read alone (an account added since the last read).

        A miss reads one indexed row, not the whole registry: a name or SID that is no account's (a
        forged callback's, say) costs one lookup and no decryption.
        """
        record = await self.store.account_record(key)
        if record is None:
            return None
        try:
            account = self.build(record)
        except (SecretKeyError, NotFound, ValidationError) as exc:
            log.error("account unusable", account=record.name, reason=str(exc))  # noqa: TRY400 - the reason is all
            return None
        self._by_key[record.name] = self._by_key[record.account_sid] = account
        return account

    def known(self, account_sid: str) -> Account | None:
        """What this process last read of an account, without reading again (for synchronous callers)."""
        return self._configured(account_sid) or self._by_key.get(account_sid)

    async def all(self) -> list[Account]:
        """Every account: the environment's, then the registry's, by name."""
        await self._fresh()
        configured = [settings_account(n, a) for n, a in self.settings.twilio.accounts.items()]
        registered = sorted({a.name: a for a in self._by_key.values()}.values(), key=lambda a: a.name)
        return configured + registered

    def forget(self) -> None:
        """Read the registry again at the next lookup (after this process changed it)."""
        self._loaded_at = float("-inf")

    def _configured(self, key: str) -> Account | None:
        accounts = self.settings.twilio.accounts
        if key in accounts:
            return settings_account(key, accounts[key])
        found = self.settings.twilio.account_by_sid(key)
        return None if found is None else settings_account(*found)

    async def _fresh(self) -> None:
        """Read the registry when what is known is older than the TTL."""
        if time.monotonic() - self._loaded_at < self._ttl:
            return
        seen = self._reads
        async with self._reading:
            if self._reads != seen:
                return  # another lookup read it while this one waited
            records = await self.store.account_records()
            self._by_key = dict(self._index(records))
            self._loaded_at = time.monotonic()
            self._reads += 1

    def _index(self, records: Iterable[AccountRecord]) -> Iterable[tuple[str, Account]]:
        for record in records:
            try:
                account = self.build(record)
            except (SecretKeyError, NotFound, ValidationError) as exc:
                log.error("account unusable", account=record.name, reason=str(exc))  # noqa: TRY400 - no traceback: the reason is all
                continue
            yield record.name, account
            yield record.account_sid, account

    def build(self, record: AccountRecord) -> Account:
        """The account a registry row describes, its secrets opened."""
        kind = AccountKind(record.kind)
        secrets = self.box.open(record.secrets) if record.secrets else {}
        if kind is AccountKind.CONNECT:
            auth_token: SecretStr | str = self.connect_owner().auth_token
        elif "auth_token" in secrets:
            auth_token = secrets["auth_token"]
        else:
            raise SecretKeyError(f"account {record.name!r} has no Auth Token sealed")
        twilio = TwilioAccount.model_validate(
            {
                "account_sid": record.account_sid,
                "auth_token": auth_token,
                "api_key_sid": record.api_key_sid,
                "api_key_secret": secrets.get("api_key_secret"),
                "max_in_flight": record.max_in_flight,
                "calls_per_second": record.calls_per_second,
            }
        )
        return Account(
            name=record.name,
            kind=kind,
            source="registry",
            twilio=twilio,
            connect_state=record.connect_state,
            created_at=record.created_at,
            deauthorized_at=record.deauthorized_at,
            sender_groups=record.sender_groups or {},
        )

    def connect_owner(self) -> TwilioAccount:
        """The configured account that owns our Connect App."""
        owner = self.settings.twilio.connect.owner_account
        if owner is None or owner not in self.settings.twilio.accounts:
            raise ConnectNotConfigured("Connect App owner", "NOTIFYQ_TWILIO__CONNECT__OWNER_ACCOUNT")
        return self.settings.twilio.accounts[owner]
