"""Twilio's status callbacks: verify the signature, make the report durable, answer 200.

The URL Twilio called is rebuilt from the configured public base URL plus the path and query we
received, never from the Host header. A request that is not signed by the Auth Token of the
account it names gets 403 and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from notifyq.api.problems import problem
from notifyq.ids import is_id
from notifyq.ops.metrics import API_METRICS
from notifyq.provider.signature import is_valid_signature
from notifyq.queue.inbox import CallbackInbox
from notifyq.settings import Settings
from notifyq.store.records import StatusReport

log = structlog.get_logger("notifyq.receiver")

SIGNATURE_HEADER = "X-Twilio-Signature"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def public_url(settings: Settings, request: web.Request) -> str:
    """The URL as Twilio called it: our public base URL, then the path and query we received."""
    return settings.public_base_url.rstrip("/") + str(request.rel_url)


async def verified_form(settings: Settings, request: web.Request) -> dict[str, str] | web.Response:
    """The form parameters when the request is signed by the account it names; else a 403 response."""
    form = await request.post()
    items = [(k, str(v)) for k, v in form.items()]
    account_sid = str(form.get("AccountSid", ""))
    found = settings.twilio.account_by_sid(account_sid)
    signature = request.headers.get(SIGNATURE_HEADER)
    if found is None or not is_valid_signature(
        found[1].auth_token.get_secret_value(), public_url(settings, request), items, signature
    ):
        log.warning("rejected unsigned or badly signed request", path=request.path, account_sid=account_sid or None)
        return problem(403, "Forbidden", "missing or invalid X-Twilio-Signature")
    return dict(items)


def _report(delivery_id: str, form: dict[str, str], *, kind: str) -> StatusReport | None:
    """The status report in a message or call callback (None when it carries none)."""
    if kind == "call":
        status, sid, sequence = form.get("CallStatus"), form.get("CallSid"), _int(form.get("SequenceNumber"))
    else:
        status = form.get("MessageStatus") or form.get("SmsStatus")
        sid, sequence = form.get("MessageSid") or form.get("SmsSid"), None
    if not status or not sid:
        return None
    return StatusReport(
        delivery_id=delivery_id,
        sid=sid,
        status=status,
        source="callback",
        at=time.time(),
        sequence=sequence,
        error_code=_int(form.get("ErrorCode")),
        error_message=form.get("ErrorMessage"),
        raw=form,
    )


def status_handler(settings: Settings, inbox: Callable[[], CallbackInbox], kind: str) -> Any:
    """A handler for one kind (``message`` or ``call``) of status callback."""
    counters: dict[str, Any] = {}  # the metric's children by destination, bound once

    async def handle(request: web.Request) -> web.StreamResponse:
        metrics = request.app[API_METRICS]
        form = await verified_form(settings, request)
        if isinstance(form, web.Response):
            metrics.callbacks_forbidden.inc()
            return form
        delivery_id = request.match_info["delivery_id"]
        report = _report(delivery_id, form, kind=kind) if is_id(delivery_id) else None
        if report is None:
            return problem(400, "Bad callback", "not a status callback for a notifyq delivery")
        try:
            where = await inbox().put(report)
        except (SQLAlchemyError, RedisError, OSError) as exc:
            # the last resort: Twilio will not retry this, so say loudly that it may be lost
            log.exception("callback could not be made durable", delivery_id=delivery_id, error=str(exc))
            return problem(503, "Unavailable", "neither the callback buffer nor the store is available")
        counter = counters.get(where)
        if counter is None:
            counter = counters[where] = metrics.callbacks.labels(kind=kind, to=where)
        counter.inc()
        return web.Response(status=200)

    return handle


def add_routes(app: web.Application, settings: Settings, inbox: Callable[[], CallbackInbox]) -> None:
    """Mount the callback endpoints."""
    app.router.add_post("/twilio/message-status/{delivery_id}", status_handler(settings, inbox, "message"))
    app.router.add_post("/twilio/call-status/{delivery_id}", status_handler(settings, inbox, "call"))
