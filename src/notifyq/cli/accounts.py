"""``notifyq accounts``: the Twilio accounts notifyq sends from (the registry's and the environment's).

Secrets never come from the command line, where other users of the machine and the shell history
see them: ``add`` reads them from NOTIFYQ_ADD_AUTH_TOKEN / NOTIFYQ_ADD_API_KEY_SECRET, from stdin
(``--secrets-from-stdin``: the Auth Token on the first line, an API key's secret on the second), or
from a prompt that does not echo.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import click
from pydantic import SecretStr, ValidationError

from notifyq.accounts import Account, AccountDirectory, AccountKind, AccountRegistry, NewAccount
from notifyq.accounts.sealing import SecretKeyError, secret_box
from notifyq.cli.account_senders import senders
from notifyq.cli.config import load_settings, with_redis
from notifyq.cli.guard import BadInput, fails_cleanly
from notifyq.cli.runtime import run
from notifyq.errors import Conflict, Problem, TransportError, Unavailable, ValidationFailed
from notifyq.pacing import PacingAdmin
from notifyq.provider.account_check import check_account
from notifyq.queue.connect import redis_from_url
from notifyq.settings import Settings, TwilioAccount
from notifyq.store import Store

AUTH_TOKEN_ENV: Final = "NOTIFYQ_ADD_AUTH_TOKEN"  # noqa: S105 - the variable's name
API_KEY_SECRET_ENV: Final = "NOTIFYQ_ADD_API_KEY_SECRET"  # noqa: S105 - the variable's name


@asynccontextmanager
async def _directory(settings: Settings) -> AsyncIterator[AccountDirectory]:
    store = await Store.open(settings.sqlalchemy_url())
    try:
        yield AccountDirectory(settings, store)
    finally:
        await store.close()


async def _paused(settings: Settings, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The views with each account's pause, when a Redis is configured or the API's embedded one runs."""
    redis = redis_from_url(settings.redis_url or "")
    try:
        admin = PacingAdmin(redis, settings)
        return [{**v, "paused": await admin.paused(v["account_sid"])} for v in views]
    finally:
        await redis.aclose()


def _checker(settings: Settings) -> Callable[[TwilioAccount], Awaitable[Any]]:
    async def check(account: TwilioAccount) -> Any:
        try:
            return await check_account(settings.twilio, account)
        except TransportError as exc:
            raise Unavailable("Twilio", settings.twilio.base_url, str(exc)) from None

    return check


def _emit(data: dict[str, Any], as_json: bool, line: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else line)


def _describe(view: dict[str, Any]) -> str:
    paused = view.get("paused")
    standing = view["status"] + (f", paused: {paused}" if paused else "")
    return f"{view['name']:<24} {view['kind']:<10} {view['source']:<8} {view['account_sid']}  {standing}"


@click.group()
def accounts() -> None:
    """The Twilio accounts notifyq sends from: add, list, show, pause, resume, remove, senders."""


accounts.add_command(senders)


def _secret(label: str, env: str, lines: list[str] | None, index: int) -> SecretStr:
    if lines is not None:
        if len(lines) <= index or not lines[index].strip():
            raise click.UsageError(f"stdin has no {label} on line {index + 1}")
        return SecretStr(lines[index].strip())
    if os.environ.get(env):
        return SecretStr(os.environ[env])
    if not sys.stdin.isatty():
        raise click.UsageError(f"give the {label} in {env}, with --secrets-from-stdin, or at a terminal")
    return SecretStr(click.prompt(label, hide_input=True))


@accounts.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in AccountKind]), default="auth_token", show_default=True)
@click.option("--account-sid", required=True, help="AC...: the account (for connect: the authorised subaccount)")
@click.option("--api-key-sid", default=None, help="SK...: for --kind api_key")
@click.option("--max-in-flight", type=int, default=50, show_default=True)
@click.option("--calls-per-second", type=float, default=1.0, show_default=True)
@click.option("--secrets-from-stdin", is_flag=True, help="the Auth Token on line 1, an API key's secret on line 2")
@click.option("--json", "as_json", is_flag=True, help="print the account as JSON")
@fails_cleanly
def accounts_add(
    name: str,
    kind: str,
    account_sid: str,
    api_key_sid: str | None,
    max_in_flight: int,
    calls_per_second: float,
    secrets_from_stdin: bool,
    as_json: bool,
) -> None:
    """Add an account after checking its credentials with Twilio once (a GET of the account)."""
    settings = load_settings()
    lines = sys.stdin.read().splitlines() if secrets_from_stdin else None
    fields: dict[str, Any] = {"name": name, "kind": kind, "account_sid": account_sid, "api_key_sid": api_key_sid}
    if kind != AccountKind.CONNECT:
        fields["auth_token"] = _secret("Auth Token", AUTH_TOKEN_ENV, lines, 0)
    if kind == AccountKind.API_KEY:
        fields["api_key_secret"] = _secret("API key secret", API_KEY_SECRET_ENV, lines, 1)
    try:
        new = NewAccount(**fields, max_in_flight=max_in_flight, calls_per_second=calls_per_second)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise ValidationFailed([Problem(".".join(map(str, e["loc"])) or "account", e["msg"]) for e in errors]) from None

    async def add() -> Account:
        async with _directory(settings) as directory:
            return await AccountRegistry(directory).add(new, _checker(settings))

    try:
        account = run(add())
    except ValidationFailed as exc:  # Twilio's refusal, said plainly
        raise BadInput("; ".join(p.reason for p in exc.problems)) from None
    _emit(account.as_dict(), as_json, f"added {account.name} ({account.kind.value}, {account.account_sid})")


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@fails_cleanly
def accounts_list(as_json: bool) -> None:
    """Every account: the environment's and the registry's, with its standing."""
    settings = with_redis(load_settings())

    async def listed() -> list[dict[str, Any]]:
        async with _directory(settings) as directory:
            return await _paused(settings, [a.as_dict() for a in await directory.all()])

    views = run(listed())
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    for view in views:
        click.echo(_describe(view))


@accounts.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the account as JSON")
@fails_cleanly
def accounts_show(name: str, as_json: bool) -> None:
    """One account, by name or AccountSid (never its secrets)."""
    settings = with_redis(load_settings())
    view = run(_one(settings, name))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for key, value in view.items():
        click.echo(f"{key:>18}: {'' if value is None else value}")


async def _one(settings: Settings, name: str) -> dict[str, Any]:
    async with _directory(settings) as directory:
        return (await _paused(settings, [(await directory.resolve(name)).as_dict()]))[0]


def _pausing(name: str, reason: str | None) -> dict[str, Any]:
    settings = with_redis(load_settings())

    async def act() -> dict[str, Any]:
        async with _directory(settings) as directory:
            account = await directory.resolve(name)
        if reason is None and account.deauthorized:
            raise Conflict(f"account {account.name!r} was deauthorized (Twilio Connect); it cannot be resumed")
        redis = redis_from_url(settings.redis_url or "")
        try:
            admin = PacingAdmin(redis, settings)
            if reason is None:
                await admin.resume_account(account.account_sid)
            else:
                await admin.pause_account(account.account_sid, reason)
        finally:
            await redis.aclose()
        return await _one(settings, name)

    return run(act())


@accounts.command("pause")
@click.argument("name")
@click.option("--reason", default="paused by an operator", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the account as JSON")
@fails_cleanly
def accounts_pause(name: str, reason: str, as_json: bool) -> None:
    """Stop every worker sending from the account, until `accounts resume`."""
    view = _pausing(name, reason)
    _emit(view, as_json, f"paused {view['name']} ({view['account_sid']}): {reason}")


@accounts.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the account as JSON")
@fails_cleanly
def accounts_resume(name: str, as_json: bool) -> None:
    """Resume an account paused by an operator, or after error 20003 or 30002 (by name or AccountSid)."""
    view = _pausing(name, None)
    _emit(view, as_json, f"resumed {view['name']} ({view['account_sid']})")


@accounts.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the removed account as JSON")
@fails_cleanly
def accounts_remove(name: str, as_json: bool) -> None:
    """Take an account out of the registry (accounts of the environment are removed there)."""
    settings = load_settings()

    async def remove() -> Account:
        async with _directory(settings) as directory:
            return await AccountRegistry(directory).remove((await directory.resolve(name)).name)

    account = run(remove())
    _emit(account.as_dict(), as_json, f"removed {account.name} ({account.account_sid})")


@accounts.command("reseal")
@click.option("--json", "as_json", is_flag=True, help='print {"resealed": N}')
@fails_cleanly
def accounts_reseal(as_json: bool) -> None:
    """Seal every registry account's secrets again with the first key of NOTIFYQ_SECRET_KEY.

    To rotate the key: set NOTIFYQ_SECRET_KEY to "NEW,OLD" everywhere, run this once, then drop OLD.
    """
    settings = load_settings()

    async def resealed() -> int:
        store = await Store.open(settings.sqlalchemy_url())
        try:
            return await store.reseal_accounts(secret_box(settings).reseal)
        finally:
            await store.close()

    try:
        n = run(resealed())
    except SecretKeyError as exc:
        raise BadInput(str(exc)) from None
    _emit({"resealed": n}, as_json, f"sealed the secrets of {n} account(s) with the first key")
