"""Changing the registry: add (after a credential check), remove, and Twilio Connect's authorise and revoke."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from notifyq.accounts.directory import AccountDirectory
from notifyq.accounts.model import Account, AccountKind, NewAccount
from notifyq.errors import Conflict, NotFound, Problem, ValidationFailed
from notifyq.settings import AccountSid, SenderGroupSettings, TwilioAccount, check_sender_groups

# asks Twilio whether the credentials work; raises ValidationFailed saying why not
CredentialCheck = Callable[[TwilioAccount], Awaitable[Any]]
DEAUTHORIZED_REASON: Final = "account deauthorized: the customer revoked our Twilio Connect App"
CONNECT_STATE_MAX: Final = 200
_SID: Final = TypeAdapter(AccountSid)


class AccountRegistry:
    """The registry's writes; reads go through the ``AccountDirectory`` it is built on."""

    def __init__(self, directory: AccountDirectory) -> None:
        self.directory = directory
        self.store = directory.store
        self.settings = directory.settings

    def _not_configured(self, name: str, account_sid: str) -> None:
        if name in self.settings.twilio.accounts:
            raise Conflict(f"account {name!r} is configured in the environment (NOTIFYQ_TWILIO__ACCOUNTS)")
        if self.settings.twilio.account_by_sid(account_sid) is not None:
            raise Conflict(f"account {account_sid} is configured in the environment (NOTIFYQ_TWILIO__ACCOUNTS)")

    def credentials(self, new: NewAccount) -> TwilioAccount:
        """The credentials requests from ``new`` go with."""
        token = self.directory.connect_owner().auth_token if new.kind is AccountKind.CONNECT else new.auth_token
        return TwilioAccount(
            account_sid=new.account_sid,
            auth_token=token,  # NewAccount's validator: set for its kind
            api_key_sid=new.api_key_sid,
            api_key_secret=new.api_key_secret,
            max_in_flight=new.max_in_flight,
            calls_per_second=new.calls_per_second,
        )

    async def add(self, new: NewAccount, check: CredentialCheck) -> Account:
        """Check the credentials with Twilio once, then keep the account with its secrets sealed."""
        self._not_configured(new.name, new.account_sid)
        if await self.store.account_record(new.name) or await self.store.account_record(new.account_sid):
            raise Conflict(f"an account named {new.name!r} or with SID {new.account_sid} is registered")
        twilio = self.credentials(new)
        await check(twilio)
        if new.kind is AccountKind.API_KEY:  # the Auth Token too: every callback is checked with it
            await check(twilio.model_copy(update={"api_key_sid": None, "api_key_secret": None}))
        secrets: dict[str, str] = {}
        if new.auth_token is not None:
            secrets["auth_token"] = new.auth_token.get_secret_value()
        if new.api_key_secret is not None:
            secrets["api_key_secret"] = new.api_key_secret.get_secret_value()
        record = await self.store.insert_account(
            {
                "name": new.name,
                "kind": new.kind.value,
                "account_sid": new.account_sid,
                "api_key_sid": new.api_key_sid,
                "secrets": self.directory.box.seal(secrets) if secrets else None,
                "max_in_flight": new.max_in_flight,
                "calls_per_second": new.calls_per_second,
                "connect_state": None,
            }
        )
        self.directory.forget()
        return self.directory.build(record)

    async def remove(self, name: str) -> Account:
        """Take an account out of the registry (its batches' deliveries that are left cannot be sent)."""
        if name in self.settings.twilio.accounts:
            raise Conflict(f"account {name!r} is configured in the environment; remove it there")
        record = await self.store.account_record(name)
        if record is None or not await self.store.delete_account(record.name):
            raise NotFound("account", name)
        self.directory.forget()
        return self.directory.build(record)

    async def authorize(self, account_sid: str, state: str | None, check: CredentialCheck) -> Account:
        """Keep the account a customer authorised our Connect App for (checked with the owner's credentials)."""
        sid = _account_sid(account_sid)
        if state is not None and len(state) > CONNECT_STATE_MAX:
            raise ValidationFailed([Problem("state", f"longer than {CONNECT_STATE_MAX} characters")])
        self._not_configured("", sid)
        owner = self.directory.connect_owner()
        await check(owner.model_copy(update={"account_sid": sid, "api_key_sid": None, "api_key_secret": None}))
        record = await self.store.authorize_connect(
            {
                "name": f"connect-{sid}",
                "kind": AccountKind.CONNECT.value,
                "account_sid": sid,
                "api_key_sid": None,
                "secrets": None,
                "max_in_flight": owner.max_in_flight,
                "calls_per_second": owner.calls_per_second,
                "connect_state": state,
            }
        )
        self.directory.forget()
        return self.directory.build(record)

    async def set_sender_group(self, name: str, group: str, rate: float, senders: list[str]) -> Account:
        """Add or replace one of a registry account's sender groups (senders sharing ``rate`` segments a second).

        ValidationFailed for a rate that is not positive, no senders, a bad name, or a sender that has a
        rate elsewhere: in another of the account's groups, in ``pacing.groups`` or ``pacing.senders``.
        """
        account = await self._registered(name)
        try:
            spec = SenderGroupSettings(rate=rate, senders=senders)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            problems = [Problem(f"{e['loc'][0]}", f"sender group {group!r}: {e['loc'][0]}: {e['msg']}") for e in errors]
            raise ValidationFailed(problems) from None
        groups = {**account.sender_groups, group: spec.model_dump(exclude_none=True)}
        checked = {n: SenderGroupSettings.model_validate(g) for n, g in groups.items()}
        pacing = self.settings.pacing
        configured = {
            s: f"pacing.groups {n!r}"
            for n, g in pacing.groups.items()
            if g.account in (None, account.account_sid)
            for s in g.senders
        } | dict.fromkeys(pacing.senders, "pacing.senders")
        try:
            check_sender_groups(checked, {})
        except ValueError as exc:
            raise ValidationFailed([Problem("senders", str(exc))]) from None
        for sender in senders:
            if sender in configured:
                reason = f"sender {sender!r} has a rate in the settings ({configured[sender]}): a sender keeps one rate"
                raise ValidationFailed([Problem("senders", reason)])
        return await self._write_groups(account, groups)

    async def remove_sender_group(self, name: str, group: str) -> Account:
        """Drop one of a registry account's sender groups: its senders keep rates of their own again."""
        account = await self._registered(name)
        if group not in account.sender_groups:
            raise NotFound("sender group", group)
        return await self._write_groups(account, {n: g for n, g in account.sender_groups.items() if n != group})

    async def _registered(self, name: str) -> Account:
        account = await self.directory.resolve(name)
        if account.source != "registry":
            raise Conflict(
                f"account {account.name!r} is configured in the environment: give its sender groups in "
                "NOTIFYQ_PACING__GROUPS (with its AccountSid as the group's account)"
            )
        return account

    async def _write_groups(self, account: Account, groups: dict[str, Any]) -> Account:
        record = await self.store.set_sender_groups(account.name, groups)
        if record is None:
            raise NotFound("account", account.name)
        self.directory.forget()
        return self.directory.build(record)

    async def deauthorize(self, account_sid: str) -> tuple[bool, int]:
        """Mark a Connect account deauthorised and cancel what it has not sent: (known, deliveries canceled)."""
        known, canceled = await self.store.deauthorize_account(account_sid, DEAUTHORIZED_REASON)
        self.directory.forget()
        return known, canceled


def _account_sid(value: str) -> str:
    """``value`` when it is an AccountSid; ValidationFailed otherwise."""
    try:
        return str(_SID.validate_python(value))
    except ValueError:
        raise ValidationFailed([Problem("AccountSid", "not an AccountSid (AC and 32 hex digits)")]) from None
