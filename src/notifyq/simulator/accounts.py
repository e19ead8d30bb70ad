"""Accounts: ``/2010-04-01/Accounts.json`` and ``/2010-04-01/Accounts/{Sid}.json``.

Fetch an account, list the caller's account with its subaccounts (``FriendlyName``, ``Status``,
paging), create a subaccount, and update a name or a status. The account resource answers for a
suspended or closed account too, so that a parent sees and changes its subaccount's status; the
Auth Token is shown to the account itself and to the accounts above it, never to a Connect App's
owner. A status changes only by an account above (a main account is closed in Twilio's console),
and a closed account stays closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from notifyq.simulator.auth import Caller, is_above
from notifyq.simulator.endpoint import RECEIVED_AT, Access, form_items, twilio_endpoint
from notifyq.simulator.listing import envelope, parse_list_query
from notifyq.simulator.records import API_VERSION, paginate, rfc2822
from notifyq.simulator.replies import TwilioReply, bad_request
from notifyq.simulator.spec import load_spec
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from collections.abc import Mapping

    from notifyq.simulator.config import SimAccount
    from notifyq.simulator.state import SimulatorState

ACCOUNTS_PATH: Final = "/2010-04-01/Accounts.json"
ACCOUNT_PATH: Final = "/2010-04-01/Accounts/{AccountSid}.json"
# the account resource's subresource_uris, as Twilio lists them
_SUBRESOURCES: Final = (
    ("available_phone_numbers", "AvailablePhoneNumbers"),
    ("calls", "Calls"),
    ("conferences", "Conferences"),
    ("incoming_phone_numbers", "IncomingPhoneNumbers"),
    ("notifications", "Notifications"),
    ("outgoing_caller_ids", "OutgoingCallerIds"),
    ("recordings", "Recordings"),
    ("transcriptions", "Transcriptions"),
    ("addresses", "Addresses"),
    ("signing_keys", "SigningKeys"),
    ("connect_apps", "ConnectApps"),
    ("sip", "SIP"),
    ("authorized_connect_apps", "AuthorizedConnectApps"),
    ("usage", "Usage"),
    ("keys", "Keys"),
    ("applications", "Applications"),
    ("short_codes", "SMS/ShortCodes"),
    ("queues", "Queues"),
    ("messages", "Messages"),
    ("balance", "Balance"),
)


def account_resource(sid: str, account: SimAccount, *, show_token: bool) -> dict[str, Any]:
    """The JSON Twilio returns for an account (``api.v2010.account``)."""
    base = f"/{API_VERSION}/Accounts/{sid}"
    return {
        "auth_token": account.auth_token if show_token else None,
        "date_created": rfc2822(account.date_created),
        "date_updated": rfc2822(account.date_updated),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.owner_account_sid or sid,  # a main account owns itself
        "sid": sid,
        "status": account.status,
        "subresource_uris": {name: f"{base}/{path}.json" for name, path in _SUBRESOURCES},
        "type": account.account_type,
        "uri": f"{base}.json",
    }


def _own(accounts: Mapping[str, SimAccount], caller: Caller, sid: str) -> bool:
    """Whether ``caller`` holds the account's own credentials or a parent's (not a Connect App's)."""
    return caller.connect_scope is None and (sid == caller.account_sid or is_above(accounts, caller.account_sid, sid))


def _shown(sim: SimulatorState, caller: Caller, sid: str, account: SimAccount) -> dict[str, Any]:
    return account_resource(sid, account, show_token=_own(sim.config.accounts, caller, sid))


@twilio_endpoint(any_status=True)
async def fetch_account(_request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Accounts/{Sid}.json``."""
    return web.json_response(_shown(sim, access.caller, access.account_sid, access.account))


@twilio_endpoint(any_status=True)
async def update_account(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Accounts/{Sid}.json``: FriendlyName, and Status by an account above."""
    accounts, caller, account = sim.config.accounts, access.caller, access.account
    if not _own(accounts, caller, access.account_sid):
        raise TwilioReply(403, 20003, "Permission Denied: only the account and its parent change an account")
    form = validate(load_spec().forms["UpdateAccount"], await form_items(request))
    status = form.get("Status")
    if isinstance(status, str) and status != account.status:
        if not is_above(accounts, caller.account_sid, access.account_sid):
            raise TwilioReply(403, 20003, "Permission Denied: an account's status is changed by its parent")
        if account.status == "closed":
            raise bad_request(20001, "A closed account cannot be reopened")
        account.status = status
    name = form.get("FriendlyName")
    if isinstance(name, str):
        account.friendly_name = name
    account.date_updated = request[RECEIVED_AT]
    return web.json_response(_shown(sim, caller, access.account_sid, account))


@dataclass(frozen=True, slots=True)
class _Listed:
    sid: str
    account: SimAccount


@twilio_endpoint()
async def list_accounts(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Accounts.json``: the caller's account, then its subaccounts, oldest first."""
    q = parse_list_query(request.query, load_spec().queries["ListAccount"])
    accounts, top = sim.config.accounts, access.account_sid
    below = [sid for sid in accounts if is_above(accounts, top, sid)] if access.caller.connect_scope is None else []
    listed = (_Listed(sid, accounts[sid]) for sid in [top, *below])

    def keep(item: _Listed) -> bool:
        return q.matches("FriendlyName", item.account.friendly_name) and q.matches("Status", item.account.status)

    page = paginate(listed, keep, page=q.page, page_size=q.page_size, page_token=q.page_token)
    return web.json_response(
        envelope("accounts", request.path, q, page, lambda item: _shown(sim, access.caller, item.sid, item.account))
    )


def _default_name(when: datetime) -> str:
    """Twilio's name for a subaccount made without one: ``SubAccount Created at 2024-05-01 03:04 pm``."""
    return f"SubAccount Created at {when:%Y-%m-%d %I:%M} {when:%p}".replace("AM", "am").replace("PM", "pm")


@twilio_endpoint()
async def create_account(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Accounts.json``: a subaccount of the caller's (main) account."""
    if access.caller.connect_scope is not None or access.account.owner_account_sid is not None:
        raise TwilioReply(403, 20003, "Permission Denied: subaccounts are made with a main account's credentials")
    form = validate(load_spec().forms["CreateAccount"], await form_items(request))
    when = request[RECEIVED_AT]
    name = form.get("FriendlyName")
    sid, account = sim.add_account(
        owner=access.account_sid, friendly_name=name if isinstance(name, str) else _default_name(when), when=when
    )
    return web.json_response(account_resource(sid, account, show_token=True), status=201)


def add_routes(app: web.Application) -> None:
    """Mount the Accounts routes."""
    app.router.add_get(ACCOUNTS_PATH, list_accounts)
    app.router.add_post(ACCOUNTS_PATH, create_account)
    app.router.add_get(ACCOUNT_PATH, fetch_account)
    app.router.add_post(ACCOUNT_PATH, update_account)
