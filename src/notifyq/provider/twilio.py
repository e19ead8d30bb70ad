"""Twilio REST client for Messages.json and Calls.json: one aiohttp session per process.

Creating a message or call is not idempotent, so errors are told apart by whether Twilio may have
acted: a connection that never opened is a ``TransportError`` (safe to retry), while a timeout or a
lost connection after the request was written is an ``AmbiguousSend`` (never re-sent blindly).
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from notifyq.backoff import parse_retry_after
from notifyq.errors import AmbiguousSend, ListTooLong, TransportError, TwilioApiError
from notifyq.settings import TwilioAccount, TwilioSettings

API_VERSION = "2010-04-01"
FORM = "application/x-www-form-urlencoded"
LIST_PAGE_SIZE: Final = 100  # records per list page
# pages one list call follows: a look-up needs only the records since its attempt, on the first pages
LIST_MAX_PAGES: Final = 5


@dataclass(frozen=True, slots=True)
class Form:
    """A create request's form: its (name, value) items, and the same items urlencoded (the body sent)."""

    items: list[tuple[str, str]]
    encoded: bytes


@dataclass(frozen=True, slots=True)
class Created:
    """Twilio's 201 answer, reduced to what we store."""

    sid: str
    status: str
    http_status: int
    duration_ms: float
    num_segments: int | None
    body: dict[str, Any]


class TwilioClient:
    """Talks to Twilio (or the simulator) with explicit timeouts and no retries of its own."""

    def __init__(self, settings: TwilioSettings, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = settings.base_url.rstrip("/")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.request_timeout_s
        )
        self._own_session = session is None
        self.session = session or aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            skip_auto_headers=("User-Agent",),
        )
        # per account: the GET and the POST headers (aiohttp copies them into each request)
        self._auth: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    async def close(self) -> None:
        """Close the session if we opened it."""
        if self._own_session:
            await self.session.close()

    def _headers(self, account: TwilioAccount, *, form: bool = False) -> dict[str, str]:
        """The request headers for ``account`` (``form``: a POST's, with its Content-Type), built once each."""
        key = account.account_sid + (account.api_key_sid or "")
        found = self._auth.get(key)
        if found is None:
            user, password = account.basic_auth()
            plain = {
                "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
                "Accept": "application/json",
            }
            found = self._auth[key] = (plain, plain | {"Content-Type": FORM})
        return found[1] if form else found[0]

    def headers(self, account: TwilioAccount, *, form: bool = False) -> dict[str, str]:
        """The request headers for ``account``: its Basic auth, JSON accepted (``form``: a form's Content-Type)."""
        return self._headers(account, form=form)

    def _url(self, account: TwilioAccount, resource: str) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{account.account_sid}/{resource}"

    async def create(self, account: TwilioAccount, resource: str, params: list[tuple[str, str]] | Form) -> Created:
        """POST ``params`` to ``Messages.json`` or ``Calls.json``; raise a classified error otherwise.

        ``params`` may come encoded already (a ``Form``: the worker encodes what a batch's sends share once).
        """
        data = params.encoded if isinstance(params, Form) else urlencode(params).encode()
        url = self._url(account, resource)
        headers = self._headers(account, form=True)
        started = time.perf_counter()
        written = False
        try:
            async with self.session.post(url, data=data, headers=headers) as resp:
                written = True
                body = await read_json(resp)
                duration_ms = (time.perf_counter() - started) * 1000
                if resp.status != 201:
                    raise api_error(resp, body)
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"could not connect: {exc}", url) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            # we cannot tell whether Twilio read the request: treat it as possibly sent
            if isinstance(exc, aiohttp.ConnectionTimeoutError) and not written:
                raise TransportError(f"connect timeout: {describe_error(exc)}", url) from exc
            raise AmbiguousSend(f"no answer after the request was sent: {describe_error(exc)}", url) from exc
        segments = body.get("num_segments")
        return Created(
            sid=str(body["sid"]),
            status=str(body.get("status", "queued")),
            http_status=resp.status,
            duration_ms=duration_ms,
            num_segments=int(segments) if segments is not None else None,
            body=body,
        )

    async def fetch(self, account: TwilioAccount, resource: str, sid: str) -> dict[str, Any]:
        """GET one message (``Messages``) or call (``Calls``); an answer without its SID and status is refused."""
        url = self._url(account, f"{resource}/{sid}.json")
        found = await self._get(url, account)
        if not (isinstance(found.get("sid"), str) and isinstance(found.get("status"), str)):
            raise TransportError("malformed answer: no sid and status", url)
        return found

    async def list(
        self,
        account: TwilioAccount,
        resource: str,
        filters: dict[str, str],
        *,
        newer_than: datetime | None = None,
        max_pages: int = LIST_MAX_PAGES,
        page_size: int = LIST_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """GET ``Messages.json`` or ``Calls.json`` with filters, following at most ``max_pages`` pages.

        Twilio lists the newest records first. With ``newer_than``, the pages stop after one that ends
        with a record created before it (the pages after it hold older records only; a page not in that
        order does not stop them). A list with more pages than ``max_pages`` raises ``ListTooLong``: the
        caller holds an account lease while it pages, and what it did not read is unknown.
        """
        key = "messages" if resource.startswith("Messages") else "calls"
        query = urlencode({**filters, "PageSize": str(page_size)})
        url: str | None = self._url(account, resource) + "?" + query
        found: list[dict[str, Any]] = []
        pages = 0
        while url:
            if pages == max_pages:
                raise ListTooLong(url, max_pages)
            page = await self._get(url, account)
            pages += 1
            items = page.get(key)
            # a page that is not Twilio's (a proxy's error page, a truncated body) must not read as "none found"
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("sid"), str) for i in items
            ):
                raise TransportError(f"malformed list page: no {key!r} list of records", url)
            found.extend(items)
            nxt = page.get("next_page_uri")
            url = f"{self.base_url}{nxt}" if nxt and not _ends_before(items, newer_than) else None
        return found

    async def _get(self, url: str, account: TwilioAccount) -> dict[str, Any]:
        try:
            async with self.session.get(url, headers=self._headers(account)) as resp:
                body = await read_json(resp)
                if resp.status != 200:
                    raise api_error(resp, body)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"GET failed: {describe_error(exc)}", url) from exc


def record_created(record: dict[str, Any]) -> datetime | None:
    """When a listed message (``date_created``) or call (``start_time``, else ``date_created``) was made."""
    raw = record.get("date_created") or record.get("start_time")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None


def _ends_before(items: list[dict[str, Any]], moment: datetime | None) -> bool:
    """Whether a page, newest first, ends with a record created before ``moment``: later pages are older still."""
    if moment is None or not items:
        return False
    times = [t for i in items if (t := record_created(i)) is not None]
    if len(times) < len(items):
        return False  # a record of unknown time: the page's order cannot be checked
    return times[-1] < moment and all(a >= b for a, b in itertools.pairwise(times))


def describe_error(exc: BaseException) -> str:
    """An error's type and message, for the text of our own errors.

    Never its repr: for aiohttp's response errors (a redirect loop's ``TooManyRedirects`` among them)
    that holds the request's headers, the Authorization header too.
    """
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """A response's body as a JSON object; ``{}`` for an empty body, one not JSON, or JSON not an object."""
    try:
        # JSON is UTF-8 (RFC 8259): no charset sniffing per response, whatever Content-Type says; json.loads
        # reads the bytes as they are (aiohttp's resp.json decodes them to a str first)
        body = await resp.read()
        data = json.loads(body) if body.strip() else None
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def api_error(resp: aiohttp.ClientResponse, body: dict[str, Any]) -> TwilioApiError:
    """Twilio's error answer (``{code, message, more_info}`` and ``Retry-After``) as a ``TwilioApiError``."""
    code = body.get("code")
    return TwilioApiError(
        status=resp.status,
        code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        message=str(body.get("message") or resp.reason or "error"),
        more_info=body.get("more_info"),
        retry_after_s=parse_retry_after(resp.headers.get("Retry-After")),
        details=body.get("details") or {},
    )
