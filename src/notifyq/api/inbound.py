"""Inbound messages: opt-out and opt-in keywords keep the suppression list true.

STOP, STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT put the texter on the account's suppression list;
START, YES and UNSTOP take them off; HELP is recorded. Every inbound message is signed like any
Twilio request and kept in the ``inbound_messages`` table whatever it says.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from aiohttp import web

from notifyq.api.callbacks import verified_form
from notifyq.settings import Settings
from notifyq.store.repo import Store

log = structlog.get_logger("notifyq.inbound")

OPT_OUT: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN: Final = frozenset({"START", "YES", "UNSTOP"})
HELP: Final = frozenset({"HELP", "INFO"})
EMPTY_TWIML: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def keyword_action(body: str) -> str:
    """What an inbound body asks for: ``opt_out``, ``opt_in``, ``help`` or ``none``.

    As Twilio reads keywords: the whole message, trimmed, in any case, is the keyword.
    """
    word = body.strip().upper()
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    return "none"


def handler(settings: Settings, store: Callable[[], Store]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The inbound-message webhook; ``store`` returns the app's Store once it has started."""

    async def handle(request: web.Request) -> web.StreamResponse:
        form = await verified_form(settings, request)
        if isinstance(form, web.Response):
            return form
        s = store()
        account_sid, texter, ours = form.get("AccountSid", ""), form.get("From", ""), form.get("To", "")
        action = keyword_action(form.get("Body", ""))
        if action == "opt_out":
            await s.suppress(account_sid, texter, source=form.get("Body", "").strip().upper(), sender=ours)
        elif action == "opt_in":
            await s.unsuppress(account_sid, texter)
        await s.record_inbound(
            at=time.time(),
            account_sid=account_sid,
            message_sid=form.get("MessageSid") or form.get("SmsSid"),
            from_number=texter,
            to_number=ours,
            body=form.get("Body", ""),
            action=action,
        )
        log.info("inbound message", action=action, account_sid=account_sid)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    return handle
