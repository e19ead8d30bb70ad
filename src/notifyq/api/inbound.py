"""Inbound messages: opt-out and opt-in keywords keep the suppression list true.

STOP, STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT put the texter on the account's suppression list;
START, YES and UNSTOP take them off; HELP is recorded. Every inbound message is signed like any
Twilio request (and bounded like a status callback: ``callbacks.verified_form``) and kept in the
``inbound_messages`` table whatever it says, its values cut to what the table holds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from aiohttp import web

from notifyq.accounts import AccountDirectory
from notifyq.api.callbacks import verified_form
from notifyq.provider.twilio_values import SID, bounded
from notifyq.settings import Settings
from notifyq.store import Store

log = structlog.get_logger("notifyq.inbound")

OPT_OUT: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN: Final = frozenset({"START", "YES", "UNSTOP"})
HELP: Final = frozenset({"HELP", "INFO"})
EMPTY_TWIML: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
ADDRESS_CHARS: Final = 32  # the store's numbers (recipients, suppressions) are at most this long
BODY_CHARS: Final = 4096  # Twilio's inbound bodies are at most 1,600 characters


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


def handler(
    settings: Settings, store: Callable[[], Store], accounts: Callable[[], AccountDirectory | None] = lambda: None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The inbound-message webhook; ``store`` returns the app's Store once it has started."""

    async def handle(request: web.Request) -> web.StreamResponse:
        form = await verified_form(settings, request, accounts())
        if isinstance(form, web.Response):
            return form
        s = store()
        account_sid, texter, ours = form.get("AccountSid", ""), form.get("From", ""), form.get("To", "")
        body = form.get("Body", "")
        action = keyword_action(body)
        if len(texter) > ADDRESS_CHARS or len(ours) > ADDRESS_CHARS:
            # longer than any number we send to: kept (bounded) below, but no list entry can name it
            log.warning("inbound message from or to an address too long to act on", action=action)
        elif action == "opt_out":
            await s.suppress(account_sid, texter, source=body.strip().upper(), sender=ours)
        elif action == "opt_in":
            await s.unsuppress(account_sid, texter)
        message_sid = form.get("MessageSid") or form.get("SmsSid")
        await s.record_inbound(
            at=time.time(),
            account_sid=account_sid,
            message_sid=message_sid if message_sid and SID.fullmatch(message_sid) else None,
            from_number=bounded(texter, ADDRESS_CHARS),
            to_number=bounded(ours, ADDRESS_CHARS),
            body=bounded(body, BODY_CHARS),
            action=action,
        )
        log.info("inbound message", action=action, account_sid=account_sid)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    return handle
