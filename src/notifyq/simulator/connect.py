"""Twilio Connect: Connect Apps, the accounts authorised to them, and the (de)authorisation flow.

A Connect App belongs to the account that made it (Twilio's console makes them; the simulator's
``/_sim/connect-apps``). When a customer authorises it, Twilio makes a subaccount of the
customer's account for the app ("Subaccount for ConnectApp: <name>"), grants it the app's
permissions as they are at that moment, and redirects the customer's browser to the app's
AuthorizeRedirectUrl with ``AccountSid`` (and the ``state`` the Connect button carried); a customer
who declines is sent there with ``error=unauthorized_client`` alone. Authorising again reuses the
subaccount. Deauthorising revokes the grant and calls the app's DeauthorizeCallbackUrl with
``AccountSid`` and ``ConnectAppSid``, signed with the app owner's Auth Token like any callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlencode, urlsplit

from notifyq.simulator.lifecycle import Callback, Step
from notifyq.simulator.records import API_VERSION
from notifyq.simulator.registry import Registry

if TYPE_CHECKING:
    import random
    from datetime import datetime

    from notifyq.simulator.callbacks import Timeline
    from notifyq.simulator.config import SimAccount, SimulatorConfig

PERMISSIONS: Final = ("get-all", "post-all")
# UpdateConnectApp's form parameters -> the record's attributes
FIELDS: Final[dict[str, str]] = {
    "AuthorizeRedirectUrl": "authorize_redirect_url",
    "CompanyName": "company_name",
    "DeauthorizeCallbackMethod": "deauthorize_callback_method",
    "DeauthorizeCallbackUrl": "deauthorize_callback_url",
    "Description": "description",
    "FriendlyName": "friendly_name",
    "HomepageUrl": "homepage_url",
    "Permissions": "permissions",
}


class Host(Protocol):
    """What the Connect flow needs of the simulator that holds it (``state.SimulatorState``)."""

    rng: random.Random
    timeline: Timeline

    @property
    def config(self) -> SimulatorConfig:
        """The live configuration (its accounts)."""

    def new_sid(self, prefix: str) -> str:
        """A new SID with this two-letter prefix."""

    def add_account(
        self, *, owner: str | None = None, friendly_name: str | None = None, when: datetime | None = None
    ) -> tuple[str, SimAccount]:
        """Make an account (a subaccount of ``owner`` when given)."""


@dataclass(slots=True)
class ConnectAppRecord:
    """One Connect App (``api.v2010.account.connect_app``)."""

    sid: str
    account_sid: str  # the owner: its Auth Token signs the deauthorisation callback
    friendly_name: str | None = None
    company_name: str | None = None
    description: str | None = None
    homepage_url: str | None = None
    authorize_redirect_url: str | None = None
    deauthorize_callback_url: str | None = None
    deauthorize_callback_method: str | None = "POST"
    permissions: list[str] = field(default_factory=lambda: list(PERMISSIONS))

    def resource(self) -> dict[str, Any]:
        """The JSON Twilio returns for this Connect App."""
        return {
            "account_sid": self.account_sid,
            "authorize_redirect_url": self.authorize_redirect_url,
            "company_name": self.company_name,
            "deauthorize_callback_method": self.deauthorize_callback_method,
            "deauthorize_callback_url": self.deauthorize_callback_url,
            "description": self.description,
            "friendly_name": self.friendly_name,
            "homepage_url": self.homepage_url,
            "permissions": list(self.permissions),
            "sid": self.sid,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/ConnectApps/{self.sid}.json",
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """An account authorised to a Connect App, and what it granted."""

    account_sid: str  # the subaccount made for the app
    customer_account_sid: str  # the account that authorised it (the subaccount's parent)
    connect_app_sid: str
    owner_account_sid: str  # the Connect App's owner, who may now act on ``account_sid``
    permissions: tuple[str, ...]

    @property
    def sid(self) -> str:
        """What a page token names: the Connect App."""
        return self.connect_app_sid

    def resource(self, app: ConnectAppRecord | None, account_sid: str) -> dict[str, Any]:
        """The JSON Twilio returns for this authorisation, listed under ``account_sid``."""
        return {
            "account_sid": account_sid,
            "connect_app_company_name": app.company_name if app else None,
            "connect_app_description": app.description if app else None,
            "connect_app_friendly_name": app.friendly_name if app else None,
            "connect_app_homepage_url": app.homepage_url if app else None,
            "connect_app_sid": self.connect_app_sid,
            "permissions": list(self.permissions),
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/AuthorizedConnectApps/{self.connect_app_sid}.json",
        }


@dataclass(frozen=True, slots=True)
class Authorization:
    """What an authorisation did: the redirect Twilio sends the customer's browser, and the accounts."""

    redirect_url: str | None
    account_sid: str | None  # the authorised subaccount (None when declined)
    customer_account_sid: str


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"


class Connect:
    """The simulator's Connect Apps and grants."""

    def __init__(self) -> None:
        self.apps: Registry[ConnectAppRecord] = Registry()
        self._grants: dict[str, Grant] = {}  # by authorised account
        self._subaccounts: dict[tuple[str, str], str] = {}  # (customer, app) -> the subaccount made for it

    def grant(self, account_sid: str) -> Grant | None:
        """The grant that lets a Connect App's owner act on ``account_sid``, if any."""
        return self._grants.get(account_sid)

    def grants_in(self, account_sid: str) -> list[Grant]:
        """The grants an account holds or made (as the customer), oldest first."""
        return [g for g in self._grants.values() if account_sid in {g.account_sid, g.customer_account_sid}]

    def app(self, sid: str) -> ConnectAppRecord | None:
        """A Connect App of any account."""
        return next((app for app in self.apps if app.sid == sid), None)

    def add_app(self, sim: Host, account_sid: str, **fields: Any) -> ConnectAppRecord:
        """Make a Connect App for ``account_sid``, as Twilio's console does."""
        return self.apps.add(ConnectAppRecord(sid=sim.new_sid("CN"), account_sid=account_sid, **fields))

    def authorize(
        self, sim: Host, app: ConnectAppRecord, *, customer: str | None, state: str | None, decline: bool
    ) -> Authorization:
        """A customer (a new account when ``customer`` is None) authorises ``app``, or declines."""
        if customer is None:
            customer, _ = sim.add_account(friendly_name="Connect customer")
        redirect = app.authorize_redirect_url
        if decline:
            url = _with_query(redirect, [("error", "unauthorized_client")]) if redirect else None
            return Authorization(url, None, customer)
        sub = self._subaccounts.get((customer, app.sid))
        if sub is None:
            name = f"Subaccount for ConnectApp: {app.friendly_name or app.sid}"
            sub, _ = sim.add_account(owner=customer, friendly_name=name)
            self._subaccounts[customer, app.sid] = sub
        self._grants[sub] = Grant(sub, customer, app.sid, app.account_sid, tuple(app.permissions))
        params = [("AccountSid", sub)] + ([("state", state)] if state is not None else [])
        return Authorization(_with_query(redirect, params) if redirect else None, sub, customer)

    def deauthorize(self, sim: Host, account_sid: str, *, notify: bool = True) -> Grant | None:
        """Revoke the grant of ``account_sid``; with ``notify``, call the app's DeauthorizeCallbackUrl."""
        grant = self._grants.pop(account_sid, None)
        app = self.apps.get(grant.owner_account_sid, grant.connect_app_sid) if grant else None
        owner = sim.config.accounts.get(grant.owner_account_sid) if grant else None
        if grant is None or app is None or owner is None or not app.deauthorize_callback_url or not notify:
            return grant
        if sim.config.callbacks:
            params = [("AccountSid", account_sid), ("ConnectAppSid", app.sid)]
            token = f"{app.sid}-{account_sid}-{sim.rng.getrandbits(64):016x}"
            method = app.deauthorize_callback_method or "POST"
            callback = Callback(app.deauthorize_callback_url, method, params, owner.auth_token, token)
            sim.timeline.schedule([Step(0.0, _nothing, callback)])
        return grant

    def delete_app(self, sim: Host, account_sid: str, sid: str) -> ConnectAppRecord | None:
        """Delete a Connect App; the accounts authorised to it are no longer reachable by its owner."""
        app = self.apps.remove(account_sid, sid)
        if app is not None:
            for grant in [g for g in self._grants.values() if g.connect_app_sid == sid]:
                self.deauthorize(sim, grant.account_sid, notify=False)
        return app

    def clear(self) -> None:
        """Forget every Connect App and grant."""
        self.apps.clear()
        self._grants.clear()
        self._subaccounts.clear()


def _nothing() -> None:
    """A callback step that changes no record."""
