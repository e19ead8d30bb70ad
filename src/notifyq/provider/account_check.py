"""Checking an account's credentials once, with a GET of the account (``Accounts/{Sid}.json``)."""

from __future__ import annotations

import base64
from typing import Any, Final

import aiohttp

from notifyq.errors import Problem, TransportError, ValidationFailed
from notifyq.provider.twilio import API_VERSION
from notifyq.settings import TwilioAccount, TwilioSettings

_HTTP_UNAUTHORIZED: Final = 401
_HTTP_FORBIDDEN: Final = 403
_HTTP_NOT_FOUND: Final = 404


def _why(status: int, code: Any, message: str, account: TwilioAccount) -> str:
    """What the operator should look at, by Twilio's answer (the credentials themselves are never named)."""
    login = "the API key and its secret" if account.api_key_sid else "the AccountSid and its Auth Token"
    said = f"Twilio answered {status}" + (f", error {code}" if code else "") + f": {message}"
    if status == _HTTP_UNAUTHORIZED:
        return f"{said}. Twilio does not accept {login} (wrong, revoked, or the account is suspended or closed)"
    if status == _HTTP_FORBIDDEN:
        return f"{said}. {login.capitalize()} are valid but do not reach account {account.account_sid}"
    if status == _HTTP_NOT_FOUND:
        return f"{said}. No account {account.account_sid} exists for these credentials"
    return said


async def check_credentials(session: aiohttp.ClientSession, base_url: str, account: TwilioAccount) -> dict[str, Any]:
    """The account resource, fetched with the account's own credentials.

    ValidationFailed saying why when Twilio refuses them or the account is not active;
    TransportError when Twilio cannot be asked.
    """
    url = f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{account.account_sid}.json"
    user, password = account.basic_auth()
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        "Accept": "application/json",
    }
    try:
        async with session.get(url, headers=headers) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = {}
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TransportError(f"Twilio could not be asked to check the credentials: {exc}", url) from exc
    if not isinstance(body, dict):
        body = {}
    if status != 200:
        reason = _why(status, body.get("code"), str(body.get("message") or "error"), account)
        raise ValidationFailed([Problem("credentials", reason)])
    if body.get("status") not in (None, "active"):
        raise ValidationFailed([Problem("credentials", f"account {account.account_sid} is {body.get('status')}")])
    return body


async def check_account(settings: TwilioSettings, account: TwilioAccount) -> dict[str, Any]:
    """``check_credentials`` over a session of its own with the configured timeouts (adding an account is rare)."""
    timeout = aiohttp.ClientTimeout(sock_connect=settings.connect_timeout_s, sock_read=settings.request_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await check_credentials(session, settings.base_url, account)
