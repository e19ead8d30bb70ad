"""Twilio Connect's two endpoints: the Authorize URL and the Deauthorize callback.

``GET /twilio/connect/authorize``: Twilio sends the customer's browser here with the ``AccountSid``
of the subaccount made for our Connect App, and ``state``; or with ``error=unauthorized_client``
when the customer declined. The account is checked with the owner's credentials (a GET of it, so a
made-up AccountSid is refused) and kept as a ``connect`` account; either way the browser goes on to
``twilio.connect.redirect_page`` with ``result=authorized`` (and ``account``, ``state``), ``declined``
or ``failed`` (and ``reason``).

``/twilio/connect/deauthorize`` (GET or POST, as ``twilio.connect.deauthorize_method``): signed by
Twilio with the owner's Auth Token. Every worker stops sending from the account at once (the
pacer's pause), its deliveries not yet claimed end ``canceled``, and it takes no new batch.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode, urlsplit

import structlog
from aiohttp import web

from notifyq.accounts import DEAUTHORIZED_REASON, AccountRegistry, ConnectNotConfigured
from notifyq.api.accounts import ACCOUNTS_API, AccountsApi
from notifyq.api.callbacks import SIGNATURE_HEADER, form_items, public_url
from notifyq.api.problems import problem
from notifyq.errors import Conflict, TransportError, ValidationFailed
from notifyq.provider.signature import is_valid_signature
from notifyq.provider.twilio_values import SID_CHARS, bounded

log = structlog.get_logger("notifyq.connect")
_DECLINED: Final = "unauthorized_client"


def _landing(api: AccountsApi, status: int, text: str, **params: str) -> web.StreamResponse:
    """The configured page, with the outcome in its query; without one, the outcome as plain text."""
    page = api.settings.twilio.connect.redirect_page
    if page is None:
        return web.Response(status=status, text=text + "\n")
    joiner = "&" if urlsplit(page).query else "?"
    raise web.HTTPFound(page + joiner + urlencode(params))


async def authorize(request: web.Request) -> web.StreamResponse:
    """GET /twilio/connect/authorize?AccountSid=AC...&state=...  (or ?error=unauthorized_client)."""
    api = request.app[ACCOUNTS_API]
    query = request.query
    error = query.get("error")
    if error is not None:
        shown = bounded(error, 64)
        log.info("Connect authorisation declined", error=shown)
        what = "declined" if error == _DECLINED else "failed"
        text = (
            "The Twilio account owner declined to authorise notifyq (unauthorized_client); nothing was connected."
            if error == _DECLINED
            else f"Twilio reported an error ({shown}); nothing was connected."
        )
        return _landing(api, 400, text, result=what, error=shown)
    try:
        account = await AccountRegistry(api.accounts()).authorize(
            query.get("AccountSid", ""), query.get("state"), api.check
        )
    except ConnectNotConfigured:
        return problem(503, "Connect not configured", "set NOTIFYQ_TWILIO__CONNECT__OWNER_ACCOUNT")
    except (ValidationFailed, Conflict) as exc:
        reason = "; ".join(p.reason for p in exc.problems) if isinstance(exc, ValidationFailed) else str(exc)
        log.warning("Connect authorisation refused", account_sid=bounded(query.get("AccountSid", ""), SID_CHARS))
        return _landing(api, 400, f"The account could not be connected: {reason}", result="failed", reason=reason)
    except TransportError as exc:
        return problem(502, "Twilio unreachable", f"the authorised account could not be checked: {exc}")
    admin = api.admin()
    if await admin.paused(account.account_sid) == DEAUTHORIZED_REASON:  # authorised again: it may send again
        await admin.resume_account(account.account_sid)
    log.info("Connect account authorised", account=account.name, account_sid=account.account_sid)
    landing = {"result": "authorized", "account": account.name, "state": account.connect_state or ""}
    return _landing(api, 200, f"Connected {account.account_sid} as account {account.name}.", **landing)


async def _signed_params(api: AccountsApi, request: web.Request) -> dict[str, str] | web.Response:
    """The callback's parameters (a POST's form, a GET's query) when the owner's Auth Token signed it."""
    cfg = api.settings.twilio.connect
    if request.method != cfg.deauthorize_method:
        return problem(405, "Method not allowed", f"the Deauthorize callback is configured as {cfg.deauthorize_method}")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return problem(403, "Forbidden", "missing or invalid X-Twilio-Signature")
    items: list[tuple[str, str]] = []
    if request.method == "POST":
        read = await form_items(request, api.settings.api.callback_max_body_bytes)
        if isinstance(read, web.Response):
            return read
        items = read
    owner = api.accounts().connect_owner()
    if not is_valid_signature(owner.auth_token.get_secret_value(), public_url(api.settings, request), items, signature):
        log.warning("rejected unsigned or badly signed Deauthorize callback")
        return problem(403, "Forbidden", "missing or invalid X-Twilio-Signature")
    return dict(items) if request.method == "POST" else dict(request.query)


async def deauthorize(request: web.Request) -> web.StreamResponse:
    """The Deauthorize callback: the customer revoked our Connect App for ``AccountSid``."""
    api = request.app[ACCOUNTS_API]
    try:
        params = await _signed_params(api, request)
    except ConnectNotConfigured:
        return problem(503, "Connect not configured", "set NOTIFYQ_TWILIO__CONNECT__OWNER_ACCOUNT")
    if isinstance(params, web.Response):
        return params
    account_sid, app_sid = params.get("AccountSid", ""), params.get("ConnectAppSid", "")
    if not account_sid:
        return problem(400, "Bad callback", "a Deauthorize callback names its AccountSid")
    ours = api.settings.twilio.connect.connect_app_sid
    if ours is not None and app_sid != ours:
        log.warning("Deauthorize callback for another Connect App", connect_app_sid=bounded(app_sid, SID_CHARS))
        return web.Response(status=200)
    # the pause first: every worker's next grant for the account is refused from this moment
    await api.admin().pause_account(account_sid, DEAUTHORIZED_REASON)
    known, canceled = await AccountRegistry(api.accounts()).deauthorize(account_sid)
    shown = bounded(account_sid, SID_CHARS)
    log.warning("Connect account deauthorized", account_sid=shown, known=known, canceled=canceled)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Mount the Connect endpoints (after ``accounts.add_routes``: they share its ``AccountsApi``)."""
    app.router.add_get("/twilio/connect/authorize", authorize)
    # both methods: the Connect App says which one Twilio uses, and the other is answered 405
    app.router.add_get("/twilio/connect/deauthorize", deauthorize, allow_head=False)
    app.router.add_post("/twilio/connect/deauthorize", deauthorize)
