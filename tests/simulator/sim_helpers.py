"""Accounts, a client wrapper and a callback receiver shared by the simulator tests."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from importlib import resources
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
KEY_OTHER = "SK" + "5" * 32  # an API key of AC_OTHER
KEY_OTHER_SECRET = "key-other-secret"
AC_SUB = "AC" + "6" * 32  # a subaccount of AC
TOKEN_SUB = "token-sub"

MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"
JSON_TYPES = ("application/json", "application/problem+json")
CALLS = f"/2010-04-01/Accounts/{AC}/Calls.json"


def accounts() -> dict[str, SimAccount]:
    return {
        AC: SimAccount(auth_token=TOKEN, api_keys={KEY_SID: KEY_SECRET}, friendly_name="main"),
        AC_TEST: SimAccount(auth_token=TOKEN_TEST, test_credentials=True),
        AC_OTHER: SimAccount(auth_token=TOKEN_OTHER, api_keys={KEY_OTHER: KEY_OTHER_SECRET}),
        AC_SUB: SimAccount(auth_token=TOKEN_SUB, owner_account_sid=AC, friendly_name="sub"),
    }


def path(account_sid: str, rest: str) -> str:
    """``/2010-04-01/Accounts/{account_sid}/{rest}``."""
    return f"/2010-04-01/Accounts/{account_sid}/{rest}"


@cache
def _schemas() -> dict[str, Any]:
    text = resources.files("notifyq.simulator").joinpath("openapi/twilio_api_v2010.json").read_text("utf-8")
    schemas: dict[str, Any] = json.loads(text)["components"]["schemas"]
    return schemas


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _value_problems(where: str, value: Any, schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        schema = _schemas()[schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        return [] if schema.get("nullable") else [f"{where} is null"]
    kind = schema.get("type", "string")
    if not isinstance(value, _TYPES[kind]) or (kind == "integer" and isinstance(value, bool)):
        return [f"{where} is not a {kind}: {value!r}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where} is not one of {schema['enum']}: {value!r}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where} does not match {schema['pattern']}: {value!r}")
    if schema.get("format") == "date-time-rfc-2822" and parsedate_to_datetime(value).utcoffset() is None:
        problems.append(f"{where} is not an RFC 2822 date with a zone: {value!r}")
    if kind == "array":
        for n, item in enumerate(value):
            problems += _value_problems(f"{where}[{n}]", item, schema.get("items", {}))
    return problems


def schema_problems(resource: dict[str, Any], schema_name: str) -> list[str]:
    """How ``resource`` differs from the spec's schema: fields missing or extra, types, enums, patterns."""
    properties = _schemas()[schema_name]["properties"]
    problems = [f"missing {name}" for name in properties if name not in resource]
    problems += [f"extra {name}" for name in resource if name not in properties]
    for name, value in resource.items():
        if name in properties:
            problems += _value_problems(name, value, properties[name])
    return problems


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
        # never follows a redirect: the Connect control answers one to the app's URL, which tests only read
        async with self.session.request(
            method, self.base + path, data=data, params=params, headers=headers, allow_redirects=False
        ) as r:
            body = await r.json(content_type=None) if r.content_type in JSON_TYPES else await r.text()
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
    tokens: dict[str, str] = field(
        default_factory=lambda: {AC: TOKEN, AC_TEST: TOKEN_TEST, AC_OTHER: TOKEN_OTHER, AC_SUB: TOKEN_SUB}
    )
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


@dataclass(frozen=True)
class Connected:
    """A Connect App of AC and an account a customer authorised to it."""

    app_sid: str
    account_sid: str  # the subaccount authorised to the app
    customer_sid: str


async def connect_app(api: Api, **fields: Any) -> dict[str, Any]:
    """Make a Connect App for AC through ``/_sim/connect-apps``."""
    body = json.dumps({"account_sid": AC, **fields})
    status, app = await api.request("POST", "/_sim/connect-apps", data=body, auth=None)
    assert status == 201, app
    return app


async def connected(api: Api, **fields: Any) -> Connected:
    """A Connect App of AC, authorised by a new customer."""
    app = await connect_app(api, **fields)
    status, outcome = await api.request("POST", f"/_sim/connect-apps/{app['sid']}/authorize", data="{}", auth=None)
    assert status == 200, outcome
    return Connected(app["sid"], outcome["account_sid"], outcome["customer_account_sid"])


async def deauthorize(api: Api, who: Connected) -> None:
    body = json.dumps({"account_sid": who.account_sid})
    status, answer = await api.request("POST", f"/_sim/connect-apps/{who.app_sid}/deauthorize", data=body, auth=None)
    assert status == 200, answer
