"""Twilio's front door: who is asking, and whether they may act on the account in the path.

Credentials are HTTP Basic, one of:

- an Account SID and its Auth Token;
- an API key SID (``SK...``) and its secret: the key acts as its account;
- a Connect login: the SID of an account authorised to a Connect App, with the Auth Token of the
  app's owner (how Twilio's Connect docs tell an app to call its customers' accounts).

An account acts on itself and on its subaccounts. The owner of a Connect App acts on each account
authorised to it, with its own credentials or with the Connect login, within the permissions
granted at authorisation: ``get-all`` for GET, ``post-all`` for POST and DELETE. A Connect login
reaches its own account only.

Twilio answers error 20003 to all of it: 401 when the credentials are wrong, or when their account
or the account in the path (or an account above either) is suspended or closed; 403 when an
Account SID and its Auth Token do not reach the account in the path, or are test credentials on
anything but a Messages or Calls create. An API key is looked for among the keys of the account in
the path and of the accounts that reach it, so a key that does not reach it answers 401.
"""

from __future__ import annotations

import base64
import functools
import hmac
from typing import TYPE_CHECKING, Final, NamedTuple

from notifyq.simulator.replies import TwilioReply

if TYPE_CHECKING:
    from collections.abc import Mapping

    from notifyq.simulator.config import SimAccount
    from notifyq.simulator.state import SimulatorState

# subaccounts are one level deep at Twilio; the walks up the owners stop here whatever the configuration
_MAX_DEPTH: Final = 8


class Caller(NamedTuple):
    """Whose credentials a request carries (a tuple: one is made for every request)."""

    account_sid: str  # the account the Auth Token or API key belongs to (for a Connect login: the app's owner)
    connect_scope: str | None = None  # a Connect login: the one account it reaches
    api_key: bool = False  # an API key, not an Auth Token


@functools.lru_cache(maxsize=64)
def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(login, password) from an ``Authorization: Basic ...`` header (aiohttp's BasicAuth is deprecated).

    Cached: a client sends the same header with every request. Only the parsing is cached; the
    credentials are checked against the accounts on every request.
    """
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def _same(password: bytes, secret: str | None) -> bool:
    # compared even when there is no secret, so that timing does not tell which part was wrong
    return hmac.compare_digest(password, (secret or "\0").encode()) and secret is not None


def active(accounts: Mapping[str, SimAccount], sid: str) -> bool:
    """Whether the account and every account above it are active."""
    account = accounts.get(sid)
    if account is not None and account.owner_account_sid is None:  # a main account: the common case
        return account.status == "active"
    for _ in range(_MAX_DEPTH):
        account = accounts.get(sid)
        if account is None or account.status != "active":
            return False
        if account.owner_account_sid is None:
            return True
        sid = account.owner_account_sid
    return False


def is_above(accounts: Mapping[str, SimAccount], ancestor: str, sid: str) -> bool:
    """Whether ``ancestor`` is the parent of ``sid``, or its parent's parent ..."""
    account = accounts.get(sid)
    for _ in range(_MAX_DEPTH):
        if account is None or account.owner_account_sid is None:
            return False
        if account.owner_account_sid == ancestor:
            return True
        account = accounts.get(account.owner_account_sid)
    return False


def authenticate(sim: SimulatorState, header: str | None) -> Caller:
    """The caller the Basic credentials name; a 401 when they are wrong or their account is not active."""
    if not header:
        raise TwilioReply(401, 20003, "Authenticate")
    credentials = _basic_credentials(header)
    if credentials is None:
        raise _unauthorized()
    accounts = sim.config.accounts
    login, password = credentials[0], credentials[1].encode()
    if login.startswith("SK"):
        owner = next((sid for sid, acct in accounts.items() if login in acct.api_keys), None)
        secret = accounts[owner].api_keys[login] if owner else None
        caller = Caller(owner, api_key=True) if _same(password, secret) and owner else None
    else:
        account = accounts.get(login)
        caller = Caller(login) if _same(password, account.auth_token if account else None) else None
        grant = sim.connect.grant(login) if caller is None else None
        owner_account = accounts.get(grant.owner_account_sid) if grant is not None else None
        if grant is not None and _same(password, owner_account.auth_token if owner_account else None):
            caller = Caller(grant.owner_account_sid, connect_scope=login)
    if caller is None:
        raise _unauthorized()
    if not active(accounts, caller.account_sid):
        raise _inactive()
    return caller


def _unauthorized() -> TwilioReply:
    return TwilioReply(401, 20003, "Authentication Error - invalid username or password")


def _inactive() -> TwilioReply:
    return TwilioReply(401, 20003, "Authentication Error - the account is suspended or closed")


def _denied(caller: Caller) -> TwilioReply:
    if caller.api_key:
        return TwilioReply(401, 20003, "Authentication Error - the API key is not one of this account's")
    return TwilioReply(403, 20003, "Permission Denied: the credentials do not grant access to this account")


def admit(
    sim: SimulatorState, caller: Caller, account_sid: str, method: str, *, test_credentials: bool, any_status: bool
) -> SimAccount:
    """The account in the path when ``caller`` may act on it with ``method``; a 401 or 403 otherwise.

    ``test_credentials``: the endpoint answers test credentials (Messages and Calls create).
    ``any_status``: the endpoint reaches a suspended or closed account (the account resource itself,
    so that a parent can see and change its subaccount's status).
    """
    accounts = sim.config.accounts
    if accounts[caller.account_sid].test_credentials and not test_credentials:
        raise TwilioReply(403, 20003, "Permission Denied: test credentials do not reach this resource")
    account = accounts.get(account_sid)
    if account is None:
        raise _denied(caller)
    own = account_sid == caller.account_sid or is_above(accounts, caller.account_sid, account_sid)
    if caller.connect_scope is not None or not own:
        grant = sim.connect.grant(account_sid)
        if grant is None or grant.owner_account_sid != caller.account_sid:
            raise _denied(caller)
        if caller.connect_scope not in {None, account_sid}:
            raise _denied(caller)
        needed = "get-all" if method in {"GET", "HEAD"} else "post-all"
        if needed not in grant.permissions:
            raise TwilioReply(403, 20003, f"Permission Denied: the Connect App was not granted {needed}")
    if not any_status and not active(accounts, account_sid):
        raise _inactive()
    return account
