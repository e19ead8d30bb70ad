"""What an account is: its kind, where it is kept, and the credentials a request goes with.

=========== ================================================ =====================================
kind        requests authenticate with                       callbacks are signed with
=========== ================================================ =====================================
auth_token  AccountSid + Auth Token                          the Auth Token
api_key     API key SID (SK...) + its secret                 the Auth Token (an API key signs nothing)
connect     the subaccount's AccountSid + the Connect App    the Connect App owner's Auth Token
            owner's Auth Token
=========== ================================================ =====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from notifyq.settings import AccountSid, ApiKeySid, TwilioAccount

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
AccountName = Annotated[str, Field(pattern=NAME_PATTERN)]


class AccountKind(StrEnum):
    """How we hold an account's access."""

    AUTH_TOKEN = "auth_token"  # noqa: S105 - a kind's name, not a secret
    API_KEY = "api_key"
    CONNECT = "connect"


class NewAccount(BaseModel):
    """An account to add to the registry, as an operator gives it (the secrets are never echoed back)."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    name: AccountName
    kind: AccountKind
    account_sid: AccountSid
    auth_token: SecretStr | None = None
    api_key_sid: ApiKeySid | None = None
    api_key_secret: SecretStr | None = None
    max_in_flight: int = Field(default=50, ge=1)
    calls_per_second: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _credentials_of_kind(self) -> Self:
        key = (self.api_key_sid, self.api_key_secret)
        any_key = any(part is not None for part in key)  # an empty secret is given all the same
        if self.kind is AccountKind.AUTH_TOKEN and (self.auth_token is None or any_key):
            raise ValueError("an auth_token account has an auth_token and no API key")
        if self.kind is AccountKind.API_KEY and (self.auth_token is None or not all(key)):
            raise ValueError(
                "an api_key account has api_key_sid, api_key_secret and the auth_token "
                "(Twilio signs callbacks with the Auth Token; an API key cannot check them)"
            )
        if self.kind is AccountKind.CONNECT and (self.auth_token is not None or any_key):
            raise ValueError("a connect account has no secrets of its own: our Connect App's owner reaches it")
        return self


@dataclass(frozen=True, slots=True)
class Account:
    """An account resolved for use: its credentials (``twilio``) and its standing."""

    name: str
    kind: AccountKind
    source: str  # "registry" or "settings"
    twilio: TwilioAccount
    connect_state: str | None = None
    created_at: float | None = None
    deauthorized_at: float | None = None
    # senders sharing one rate (a 10DLC campaign's numbers), name -> {rate, senders}; the registry's only
    sender_groups: dict[str, Any] = field(default_factory=dict)

    @property
    def account_sid(self) -> str:
        """Its AccountSid."""
        return self.twilio.account_sid

    @property
    def deauthorized(self) -> bool:
        """Whether its Connect grant was revoked: it sends nothing, and takes no batch."""
        return self.deauthorized_at is not None

    def as_dict(self) -> dict[str, Any]:
        """The public view: never a secret."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "source": self.source,
            "account_sid": self.account_sid,
            "api_key_sid": self.twilio.api_key_sid,
            "max_in_flight": self.twilio.max_in_flight,
            "calls_per_second": self.twilio.calls_per_second,
            "connect_state": self.connect_state,
            "created_at": self.created_at,
            "deauthorized_at": self.deauthorized_at,
            "status": "deauthorized" if self.deauthorized else "active",
            "sender_groups": self.sender_groups,
        }


def settings_account(name: str, acct: TwilioAccount) -> Account:
    """An environment-configured account as the resolver hands it out."""
    kind = AccountKind.API_KEY if acct.api_key_sid else AccountKind.AUTH_TOKEN
    return Account(name=name, kind=kind, source="settings", twilio=acct)
