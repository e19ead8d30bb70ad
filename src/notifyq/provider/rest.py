"""Any request to Twilio's 2010 REST API, each attempt through a gate, retried as the caller's options say.

The connector's commands (``notifyq twilio ...``) read and manage resources here: Applications,
Connect Apps, message and call look-ups, and a raw request. Each attempt, retries included, passes
the ``Gate`` the caller gives (``pacing.gate.AccountGate``: the account's request budget and an
account lease), so that no request of theirs leaves the account's pacing.

A raw request reaches only Twilio's API under the configured base URL, with the account's own
credentials; it cannot create a message or a call (those are recorded and paced per sender: they
go through a batch, or ``notifyq twilio messages send``).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlencode

import aiohttp

from notifyq.errors import AmbiguousSend, TransportError, TwilioApiError
from notifyq.provider.retry import Failure, RetryOptions, retry_delay_s, should_retry
from notifyq.provider.twilio import API_VERSION, TwilioClient, api_error, describe_error, read_json
from notifyq.settings import TwilioAccount

METHODS: Final = ("GET", "POST", "DELETE")
ACCOUNT_PLACEHOLDERS: Final = ("$TWILIO_ACCOUNT_SID", "{AccountSid}")
_CREATES: Final = re.compile(rf"/{API_VERSION}/Accounts/[^/]+/(Messages|Calls)\.json/?")
_SAFE_PATH: Final = re.compile(r"/[A-Za-z0-9._~/%$+-]*")


class Gate(Protocol):
    """What each attempt passes: ``enter`` before it (may wait, or refuse), ``leave`` after it."""

    async def enter(self, account_sid: str) -> object:
        """Admit one request for the account; the ticket to give back to ``leave``."""
        ...

    async def leave(self, account_sid: str, ticket: object, *, throttled: bool) -> None:
        """The request is over; ``throttled``: Twilio answered 429 / 20429."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: its HTTP status, its body (JSON, text, or None when empty), the attempts made."""

    status: int
    body: Any
    attempts: int


def api_path(path: str, account_sid: str) -> str:
    """A raw request's path under ``/2010-04-01``, the account's SID put for its placeholder; ValueError if unsafe.

    Given as the connector takes it (``/Accounts/$TWILIO_ACCOUNT_SID/Messages.json``), with or
    without the ``/2010-04-01`` prefix. A full URL, a query (use ``--query``) or a ``..`` segment is
    refused: the account's credentials go to Twilio's API and nowhere else.
    """
    for placeholder in ACCOUNT_PLACEHOLDERS:
        path = path.replace(placeholder, account_sid)
    if not path.startswith("/"):
        path = "/" + path
    if not _SAFE_PATH.fullmatch(path) or path.startswith("//") or ".." in path.split("/"):
        raise ValueError(f"a path under /{API_VERSION} like /Accounts/$TWILIO_ACCOUNT_SID/Messages.json, not {path!r}")
    prefix = f"/{API_VERSION}"
    return path if path == prefix or path.startswith(prefix + "/") else prefix + path


def refuse_create(method: str, path: str) -> None:
    """Raise ValueError for a raw POST that would create a message or a call (unrecorded, unpaced per sender)."""
    if method == "POST" and _CREATES.fullmatch(path):
        raise ValueError(
            "a raw request does not create messages or calls: send with `notifyq twilio messages send` or a batch, "
            "which record and pace every send"
        )


class TwilioRest:
    """Twilio's REST API through ``client``'s session, each attempt through ``gate``."""

    def __init__(self, client: TwilioClient, gate: Gate) -> None:
        self.client = client
        self.gate = gate
        self.attempts = 0  # requests made through this instance, retries included

    async def request(
        self,
        account: TwilioAccount,
        method: str,
        path: str,
        *,
        data: list[tuple[str, str]] | None = None,
        query: list[tuple[str, str]] | None = None,
        retry: RetryOptions | None = None,
    ) -> Answer:
        """``method`` on ``path`` (see ``api_path``); the answer, or the last attempt's error once retries end.

        Raises ``TwilioApiError`` (an error answer), ``TransportError`` (no answer; ``AmbiguousSend``
        when the request was written), ``ValueError`` for a method or path refused before sending.
        """
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"the method is one of {', '.join(METHODS)}, not {method!r}")
        full = api_path(path, account.account_sid)
        refuse_create(method, full)
        url = self.client.base_url + full + ("?" + urlencode(query) if query else "")
        body = urlencode(data).encode() if data is not None else None
        options = retry or RetryOptions()
        retries = 0
        while True:
            try:
                status, found = await self._attempt(account, method, url, body)
            except (TwilioApiError, TransportError) as exc:
                failure = _failure(exc)
                if not should_retry(options, failure, method=method, retries_done=retries):
                    raise
                retries += 1
                await asyncio.sleep(retry_delay_s(options, failure, retries))
                continue
            return Answer(status=status, body=found, attempts=retries + 1)

    async def _attempt(self, account: TwilioAccount, method: str, url: str, body: bytes | None) -> tuple[int, Any]:
        ticket = await self.gate.enter(account.account_sid)
        self.attempts += 1
        throttled = False
        written = False
        try:
            headers = self.client.headers(account, form=body is not None)
            async with self.client.session.request(method, url, data=body, headers=headers) as resp:
                written = True
                if resp.status >= 400:
                    error = api_error(resp, await read_json(resp))
                    throttled = error.status == 429 or error.code == 20429
                    raise error
                return resp.status, await _body(resp)
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"could not connect: {describe_error(exc)}", url) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError) and not written:
                raise TransportError(f"connect timeout: {describe_error(exc)}", url) from exc
            raise AmbiguousSend(f"no answer after the request was sent: {describe_error(exc)}", url) from exc
        finally:
            await self.gate.leave(account.account_sid, ticket, throttled=throttled)

    async def get(
        self, account: TwilioAccount, path: str, query: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """GET a JSON resource (no retries: a look-up is asked again by running it again)."""
        return _object(await self.request(account, "GET", path, query=query), path)

    async def post(self, account: TwilioAccount, path: str, data: list[tuple[str, str]]) -> dict[str, Any]:
        """POST a form, the JSON resource answered."""
        return _object(await self.request(account, "POST", path, data=data), path)


def _object(answer: Answer, path: str) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        raise TransportError("malformed answer: not a JSON object", path)
    return answer.body


async def _body(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _failure(exc: TwilioApiError | TransportError) -> Failure:
    if isinstance(exc, TwilioApiError):
        return Failure(exc.status, exc.code, retry_after_s=exc.retry_after_s)
    return Failure(None, None, ambiguous=isinstance(exc, AmbiguousSend))
