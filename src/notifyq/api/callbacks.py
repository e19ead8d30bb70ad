"""Twilio's status callbacks: verify the signature, make the report durable, answer 200.

The URL Twilio called is rebuilt from the configured public base URL plus the path and query we
received, never from the Host header. A request that is not signed by the Auth Token of the
account it names gets 403 and changes nothing. Twilio's forms are a few KB, so a body over
``api.callback_max_body_bytes`` gets 413 before it is read, and so does a request without a
signature get its 403: refusing costs next to nothing.

What a signed callback says is checked and bounded before it is kept (``twilio_values``). A signed
callback whose values are not valid is still answered 200: Twilio does not retry a callback
whatever the answer, so a 400 would change nothing on Twilio's side, while what is valid in it (its
status, when its error code is garbage; the fact that it came, when its SID is) is kept as an event
with the reason, counted (``notifyq_callbacks_invalid_values``) and logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from notifyq.accounts import AccountDirectory
from notifyq.api.metrics import API_METRICS
from notifyq.api.problems import problem
from notifyq.errors import NotFound
from notifyq.ids import is_id
from notifyq.provider.form import FORM_TYPES, TooManyFields, parse_form
from notifyq.provider.signature import is_valid_body_signature, is_valid_signature
from notifyq.provider.twilio_values import SID, SID_CHARS, bounded, status_report
from notifyq.queue.inbox import CallbackInbox
from notifyq.settings import Settings
from notifyq.store import Store

log = structlog.get_logger("notifyq.receiver")

SIGNATURE_HEADER = "X-Twilio-Signature"


def public_url(settings: Settings, request: web.Request) -> str:
    """The URL as Twilio called it: our public base URL, then the path and query we received."""
    target = request.raw_path  # as sent (str(request.rel_url) rebuilds it, and drops a bare trailing "?")
    if not target.startswith("/"):  # the absolute form, through a proxy: its path and query
        target = str(request.rel_url)
    return settings.public_base_url.rstrip("/") + target


def too_large(max_bytes: int) -> web.Response:
    """The 413 for a body over ``max_bytes``."""
    return problem(413, "Request Entity Too Large", f"the body is larger than {max_bytes} bytes")


async def read_bounded(request: web.Request, max_bytes: int) -> bytes | None:
    """The body, read piece by piece; None once it is longer than ``max_bytes`` (the rest is not read).

    ``request.read()`` would take the app's ``client_max_size`` (the batch API's) as the bound, and
    raise the connection's read buffer to it.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    body = bytearray()
    async for piece in request.content.iter_any():
        body += piece
        if len(body) > max_bytes:
            return None
    return bytes(body)


async def form_items(request: web.Request, max_bytes: int | None = None) -> list[tuple[str, str]] | web.Response:
    """The form parameters of a POST, in order; a 400 or 413 response when the body is not a readable form.

    A body over ``max_bytes`` (default: the app's ``client_max_size``) is refused without being read
    whole. An urlencoded body is parsed here, cheaper than ``request.post()``; anything else still goes
    through it, with the same bound.
    """
    limit = request.client_max_size if max_bytes is None else max_bytes
    if request.content_type not in FORM_TYPES:
        if request.content_length is not None and request.content_length > limit:
            return too_large(limit)
        form = await request.clone(client_max_size=limit).post()  # multipart: aiohttp stops past this size
        return [(k, str(v)) for k, v in form.items()]
    body = await read_bounded(request, limit)
    if body is None:
        return too_large(limit)
    try:
        return parse_form(body, request.charset, max_fields=request.client_max_fields)
    except TooManyFields as exc:
        return problem(413, "Request Entity Too Large", str(exc))
    except ValueError as exc:  # undecodable in its charset, or an unknown charset
        return problem(400, "Bad form", str(exc))


def _forbidden(request: web.Request, account_sid: str | None) -> web.Response:
    log.warning("rejected unsigned or badly signed request", path=request.path, account_sid=account_sid)
    return problem(403, "Forbidden", "missing or invalid X-Twilio-Signature")


async def verified_form(
    settings: Settings, request: web.Request, accounts: AccountDirectory | None = None
) -> dict[str, str] | web.Response:
    """The form parameters when the request is signed by the account it names; else a 403, 413 or 400 response.

    A body declared longer than ``api.callback_max_body_bytes`` (413) and a request without a
    signature (403) are refused before any of the body is read; a body that turns out longer is
    refused as soon as it passes the bound.
    """
    max_bytes = settings.api.callback_max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        return too_large(max_bytes)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return _forbidden(request, None)
    if request.content_type == "application/json":
        return await _verified_json(settings, request, signature, accounts)
    items = await form_items(request, max_bytes)
    if isinstance(items, web.Response):
        return items
    form = dict(items)  # a repeated name: its last value here, as MultiDict.items() then dict() gave
    account_sid = form.get("AccountSid", "")
    if len(form) != len(items):  # a repeated name: the account is the first AccountSid, as MultiDict.get gave
        account_sid = next((v for k, v in items if k == "AccountSid"), "")
    token = await signing_token(settings, accounts, account_sid)
    if token is None or not is_valid_signature(token, public_url(settings, request), items, signature):
        return _forbidden(request, bounded(account_sid, SID_CHARS) or None)
    return form


async def _verified_json(
    settings: Settings, request: web.Request, signature: str, accounts: AccountDirectory | None
) -> dict[str, str] | web.Response:
    """A JSON body's fields, when its hash is the URL's ``bodySHA256`` and the URL is signed by the account named."""
    max_bytes = settings.api.callback_max_body_bytes
    body = await read_bounded(request, max_bytes)
    if body is None:
        return too_large(max_bytes)
    try:
        decoded = json.loads(body.decode(request.charset or "utf-8"))
    except (ValueError, LookupError, RecursionError) as exc:  # not JSON, not text in its charset, nested too deep
        return problem(400, "Bad JSON body", f"not a JSON object: {str(exc)[:200]}")
    if not isinstance(decoded, dict):
        return problem(400, "Bad JSON body", "not a JSON object")
    form = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
    account_sid = form.get("AccountSid", "")
    token = await signing_token(settings, accounts, account_sid)
    if token is None or not is_valid_body_signature(token, public_url(settings, request), body, signature):
        return _forbidden(request, bounded(account_sid, SID_CHARS) or None)
    return form


async def signing_token(settings: Settings, accounts: AccountDirectory | None, account_sid: str) -> str | None:
    """The Auth Token Twilio signs the account's requests with (a Connect account's: our Connect App owner's)."""
    if not account_sid:
        return None
    if accounts is None:
        found = settings.twilio.account_by_sid(account_sid)
        return None if found is None else found[1].auth_token.get_secret_value()
    try:
        account = await accounts.resolve(account_sid)
    except NotFound:
        return None
    if account.account_sid != account_sid:
        return None
    return account.twilio.auth_token.get_secret_value()


Accounts = Callable[[], AccountDirectory | None]


def status_handler(settings: Settings, inbox: Callable[[], CallbackInbox], kind: str, accounts: Accounts) -> Any:
    """A handler for one kind (``message`` or ``call``) of status callback, the delivery id in its path."""
    counters: dict[str, Any] = {}  # the metric's children by destination, bound once

    async def handle(request: web.Request) -> web.StreamResponse:
        form = await verified_form(settings, request, accounts())
        if isinstance(form, web.Response):
            request.app[API_METRICS].callbacks_forbidden.inc()
            return form
        return await _keep(request, inbox(), form, request.match_info["delivery_id"], kind, counters)

    return handle


def application_status_handler(
    settings: Settings, inbox: Callable[[], CallbackInbox], store: Callable[[], Store], kind: str, accounts: Accounts
) -> Any:
    """A handler for the status callbacks a TwiML Application's URLs receive: no delivery id in the path.

    A call made with an ``ApplicationSid`` reports to its Application's ``StatusCallback`` (Twilio
    ignores the call's own), so the delivery is found by the SID Twilio gave it, which the worker
    stored when the create was answered. A SID no delivery holds (not ours, or a callback that came
    before its create's answer was stored) is answered 200 and logged: the reconciler's look-up
    brings the delivery's status in later.
    """
    counters: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        form = await verified_form(settings, request, accounts())
        if isinstance(form, web.Response):
            request.app[API_METRICS].callbacks_forbidden.inc()
            return form
        names = ("CallSid",) if kind == "call" else ("MessageSid", "SmsSid")
        sid = next((form[n] for n in names if form.get(n)), "")
        if not SID.fullmatch(sid):
            return problem(400, "Bad callback", "not a status callback for a message or call")
        try:
            delivery_id = await store().delivery_id_by_sid(sid)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("application callback: no store to find its delivery", sid=sid, error=str(exc))
            return problem(503, "Unavailable", "the store is not available")
        if delivery_id is None:
            log.info("application callback for no delivery of ours", sid=sid, kind=kind)
            return web.Response(status=200)
        return await _keep(request, inbox(), form, delivery_id, kind, counters)

    return handle


async def _keep(
    request: web.Request,
    inbox: CallbackInbox,
    form: dict[str, str],
    delivery_id: str,
    kind: str,
    counters: dict[str, Any],
) -> web.StreamResponse:
    """Make a verified callback's report durable (the inbox, else the store) and answer 200."""
    metrics = request.app[API_METRICS]
    read = status_report(delivery_id, form, kind=kind, at=time.time()) if is_id(delivery_id) else None
    if read is None:
        return problem(400, "Bad callback", "not a status callback for a notifyq delivery")
    if read.invalid_fields:
        log.warning("callback with invalid values", delivery_id=delivery_id, fields=read.invalid_fields)
        for name in read.invalid_fields:
            metrics.callbacks_invalid.labels(field=name).inc()
    try:
        where = await inbox.put(read.report)
    except (SQLAlchemyError, RedisError, OSError) as exc:
        # the last resort: Twilio will not retry this, so say loudly that it may be lost
        log.exception("callback could not be made durable", delivery_id=delivery_id, error=str(exc))
        return problem(503, "Unavailable", "neither the callback buffer nor the store is available")
    counter = counters.get(where)
    if counter is None:
        counter = counters[where] = metrics.callbacks.labels(kind=kind, to=where)
    counter.inc()
    return web.Response(status=200)


def add_routes(
    app: web.Application,
    settings: Settings,
    inbox: Callable[[], CallbackInbox],
    store: Callable[[], Store],
    accounts: Accounts = lambda: None,
) -> None:
    """Mount the callback endpoints: per delivery, and the TwiML Application's (``notifyq twilio provision``).

    ``accounts``: the resolver of the account each callback names (None: the configured accounts only).
    """
    app.router.add_post("/twilio/message-status/{delivery_id}", status_handler(settings, inbox, "message", accounts))
    app.router.add_post("/twilio/call-status/{delivery_id}", status_handler(settings, inbox, "call", accounts))
    message, call = (application_status_handler(settings, inbox, store, k, accounts) for k in ("message", "call"))
    app.router.add_post("/twilio/message-status", message)
    app.router.add_post("/twilio/call-status", call)
