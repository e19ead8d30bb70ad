"""The operators' API of the account registry: ``/v1/accounts`` (list, show, add, pause, resume, remove).

Only operator tokens reach it (``api.operator_tokens``; ``api/auth.py``). No answer holds a secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from pydantic import ValidationError
from redis.asyncio import Redis

from notifyq.accounts import Account, AccountDirectory, AccountRegistry, ConnectNotConfigured, NewAccount
from notifyq.api.problems import problem
from notifyq.errors import TransportError, ValidationFailed
from notifyq.pacing import PacingAdmin
from notifyq.provider.account_check import check_account
from notifyq.settings import Settings, TwilioAccount

PAUSE_REASON_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class AccountsApi:
    """What the handlers need, each once the app has started."""

    settings: Settings
    accounts: Callable[[], AccountDirectory]
    redis: Callable[[], Redis]

    def admin(self) -> PacingAdmin:
        """The pacer's pause switch, over the app's Redis."""
        return PacingAdmin(self.redis(), self.settings)

    async def view(self, account: Account) -> dict[str, Any]:
        """The public view of an account, with its pause (the pacer's) if any."""
        return {**account.as_dict(), "paused": await self.admin().paused(account.account_sid)}

    async def check(self, account: TwilioAccount) -> dict[str, Any]:
        """A GET of the account with its credentials."""
        return await check_account(self.settings.twilio, account)


ACCOUNTS_API = web.AppKey("notifyq_accounts_api", AccountsApi)


def _invalid(problems: list[dict[str, Any]], detail: str = "the account was not added") -> web.Response:
    return problem(422, "Invalid account", detail, errors=problems)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="Malformed JSON", text="the body is not a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="Malformed JSON", text="the body is not a JSON object")
    return body


async def _one(request: web.Request) -> Account:
    return await request.app[ACCOUNTS_API].accounts().resolve(request.match_info["name"])


async def list_accounts(request: web.Request) -> web.StreamResponse:
    """GET /v1/accounts."""
    api = request.app[ACCOUNTS_API]
    return web.json_response({"accounts": [await api.view(a) for a in await api.accounts().all()]})


async def show_account(request: web.Request) -> web.StreamResponse:
    """GET /v1/accounts/{name} (a name or an AccountSid)."""
    return web.json_response(await request.app[ACCOUNTS_API].view(await _one(request)))


async def add_account(request: web.Request) -> web.StreamResponse:
    """POST /v1/accounts: check the credentials with Twilio once, then keep the account (201)."""
    api = request.app[ACCOUNTS_API]
    try:
        new = NewAccount.model_validate(await _body(request))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        return _invalid([{"field": ".".join(map(str, e["loc"])) or "(body)", "reason": e["msg"]} for e in errors])
    registry = AccountRegistry(api.accounts())
    try:
        account = await registry.add(new, api.check)
    except ConnectNotConfigured:
        # the body names a kind this deployment cannot check: a field's problem, not a missing resource
        reason = "a connect account is checked with the Connect App owner's credentials, and none is configured"
        return _invalid([{"field": "kind", "reason": reason}])
    except ValidationFailed as exc:
        return _invalid([p.as_dict() for p in exc.problems], "Twilio did not accept the credentials")
    except TransportError as exc:
        return problem(502, "Twilio unreachable", f"the credentials could not be checked: {exc}")
    return web.json_response(await api.view(account), status=201)


async def pause_account(request: web.Request) -> web.StreamResponse:
    """POST /v1/accounts/{name}/pause {"reason": "..."}: every worker stops sending from it."""
    api = request.app[ACCOUNTS_API]
    account = await _one(request)
    reason = (await _body(request) if request.can_read_body else {}).get("reason") or "paused by an operator"
    if not isinstance(reason, str) or len(reason) > PAUSE_REASON_MAX:
        return _invalid([{"field": "reason", "reason": f"a text of at most {PAUSE_REASON_MAX} characters"}], "")
    await api.admin().pause_account(account.account_sid, reason)
    return web.json_response(await api.view(account))


async def resume_account(request: web.Request) -> web.StreamResponse:
    """POST /v1/accounts/{name}/resume: lift a pause (an operator's, or one after 20003/30002)."""
    api = request.app[ACCOUNTS_API]
    account = await _one(request)
    if account.deauthorized:
        return problem(409, "Deauthorized", f"account {account.name!r} was deauthorized (Twilio Connect)")
    await api.admin().resume_account(account.account_sid)
    return web.json_response(await api.view(account))


async def remove_account(request: web.Request) -> web.StreamResponse:
    """DELETE /v1/accounts/{name}: take it out of the registry (environment accounts are refused, 409)."""
    api = request.app[ACCOUNTS_API]
    account = await _one(request)
    await AccountRegistry(api.accounts()).remove(account.name)
    return web.json_response(account.as_dict())


def add_routes(app: web.Application, api: AccountsApi) -> None:
    """Mount ``/v1/accounts``."""
    app[ACCOUNTS_API] = api
    app.router.add_get("/v1/accounts", list_accounts)
    app.router.add_post("/v1/accounts", add_account)
    app.router.add_get("/v1/accounts/{name}", show_account)
    app.router.add_delete("/v1/accounts/{name}", remove_account)
    app.router.add_post("/v1/accounts/{name}/pause", pause_account)
    app.router.add_post("/v1/accounts/{name}/resume", resume_account)
