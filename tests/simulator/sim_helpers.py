"""Accounts, a client wrapper and a callback receiver shared by the simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from notifyq.provider.signature import is_valid_signature
from notifyq.simulator import SimAccount, Simulator

AC = "AC" + "1" * 32
TOKEN = "token-one"
KEY_SID = "SK" + "2" * 32
KEY_SECRET = "key-secret"
AC_TEST = "AC" + "3" * 32  # an account used with test credentials
TOKEN_TEST = "token-test"
AC_OTHER = "AC" + "4" * 32
TOKEN_OTHER = "token-other"

MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{AC}/Calls.json"


def accounts() -> dict[str, SimAccount]:
    return {
        AC: SimAccount(auth_token=TOKEN, api_keys={KEY_SID: KEY_SECRET}),
        AC_TEST: SimAccount(auth_token=TOKEN_TEST, test_credentials=True),
        AC_OTHER: SimAccount(auth_token=TOKEN_OTHER),
    }


def basic(login: str = AC, password: str = TOKEN) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(login, password)}


@dataclass
class Api:
    """A started simulator and a session to call it."""

    sim: Simulator
    base: str
    session: aiohttp.ClientSession

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        params: Any = None,
        auth: tuple[str, str] | None = (AC, TOKEN),
    ) -> tuple[int, Any]:
        headers = basic(*auth) if auth else {}
        async with self.session.request(method, self.base + path, data=data, params=params, headers=headers) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def send(self, data: Any, path: str = MESSAGES, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, data=data, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)


MakeApi = Callable[..., Awaitable[Api]]


@dataclass
class Hit:
    """One callback as the receiver saw it."""

    path: str
    method: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    signature_ok: bool

    @property
    def form(self) -> dict[str, str]:
        return dict(self.params)


@dataclass
class Receiver:
    """Collects callbacks on port 0 and checks each signature with the account's token."""

    base: str = ""
    tokens: dict[str, str] = field(default_factory=lambda: {AC: TOKEN, AC_TEST: TOKEN_TEST, AC_OTHER: TOKEN_OTHER})
    hits: list[Hit] = field(default_factory=list)
    reply_status: int = 200
    reply_delay_s: float = 0.0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str = "d1") -> str:
        return f"{self.base}/cb/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        posted = await request.post()
        params = [(k, str(v)) for k, v in posted.items()]
        query_params = [] if params else list(request.query.items())
        token = self.tokens.get(dict(params + query_params).get("AccountSid", ""), "")
        # the URL exactly as called; a GET callback is signed over its URL alone
        called = self.base + request.raw_path
        ok = is_valid_signature(token, called, params, request.headers.get("X-Twilio-Signature"))
        self.hits.append(Hit(request.path, request.method, params or query_params, dict(request.headers), ok))
        self._arrived.set()
        await asyncio.sleep(self.reply_delay_s)
        return web.Response(status=self.reply_status)

    def on(self, name: str) -> list[Hit]:
        return [h for h in self.hits if h.path == f"/cb/{name}"]

    async def wait(self, count: int, name: str | None = None, timeout_s: float = 3.0) -> list[Hit]:
        async def enough() -> None:
            while len(self.hits if name is None else self.on(name)) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout_s)
        return self.hits if name is None else self.on(name)


def sms(to: str = "+14155550100", **extra: str) -> dict[str, str]:
    return {"To": to, "From": "+15005550006", "Body": "hello", **extra}


def call(to: str = "+14155550100", **extra: str) -> dict[str, str]:
    return {"To": to, "From": "+15005550006", "Url": "https://example.com/twiml", **extra}
