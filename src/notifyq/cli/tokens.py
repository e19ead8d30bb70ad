"""``notifyq tokens create|list|revoke``: the producer token registry.

A token is printed once, when it is created; the database keeps only the hash of its secret.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from notifyq import tokens as tk
from notifyq.cli.guard import BadInput, fails_cleanly
from notifyq.cli.runtime import run
from notifyq.settings import Settings
from notifyq.store import Store, TokenRow

T = TypeVar("T")
MAX_NAME = 100


async def _with_store(settings: Settings, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    store = await Store.open(settings.sqlalchemy_url())
    try:
        return await work(store)
    finally:
        await store.close()


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise click.BadParameter(f"a name is 1 to {MAX_NAME} printable characters", param_hint="NAME")
    return name


def _limits(rate: float | None, burst: int | None, daily: int | None, monthly: int | None) -> tk.TokenLimits:
    if burst is not None and rate is None:
        raise click.UsageError("--burst needs --rate")
    if rate is not None and burst is None:
        burst = max(1, math.ceil(rate))
    return tk.TokenLimits(rate, burst, daily, monthly)


def _check_accounts(settings: Settings, accounts: tuple[str, ...]) -> None:
    unknown = [a for a in accounts if a not in settings.twilio.accounts]
    if unknown:
        raise click.BadParameter(f"no configured account {', '.join(unknown)}", param_hint="--account")


def _check_id(token_id: str) -> None:
    if len(token_id) != tk.ID_CHARS or not all(c in "0123456789abcdef" for c in token_id):
        raise click.BadParameter(f"a token id is {tk.ID_CHARS} hex characters", param_hint="ID")


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _line(row: TokenRow) -> str:
    lim = row.limits
    rate = "-" if lim.rate is None else f"{lim.rate:g}/s burst {lim.burst}"
    accounts = "*" if row.accounts is None else ",".join(row.accounts)
    state = f"revoked {_when(row.revoked_at)}" if row.revoked_at is not None else "active"
    return (
        f"{row.id}  {row.name}  scopes={','.join(row.scopes)}  accounts={accounts}  rate={rate}  "
        f"daily={lim.daily or '-'}  monthly={lim.monthly or '-'}  created {_when(row.created_at)}  {state}"
    )


def tokens_commands(load_settings: Callable[[], Settings]) -> click.Group:
    """The ``tokens`` group, reading its settings with ``load_settings`` (the command line's own)."""

    @click.group("tokens")
    def tokens() -> None:
        """Producer tokens: each with scopes, accounts, a rate limit and recipient quotas."""

    @tokens.command("create")
    @click.argument("name")
    @click.option(
        "--scope",
        "scopes",
        multiple=True,
        required=True,
        type=click.Choice([s.value for s in tk.Scope]),
        help="what the token may do (repeat for more)",
    )
    @click.option("--account", "accounts", multiple=True, help="an account it may send from (repeat; default: all)")
    @click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="requests a second")
    @click.option("--burst", type=click.IntRange(min=1), help="requests at once (default: the rate, rounded up)")
    @click.option("--daily", type=click.IntRange(min=1), help="recipients a UTC day")
    @click.option("--monthly", type=click.IntRange(min=1), help="recipients a UTC month")
    @click.option("--json", "as_json", is_flag=True, help="print one JSON object")
    @fails_cleanly
    def create(
        name: str,
        scopes: tuple[str, ...],
        accounts: tuple[str, ...],
        rate: float | None,
        burst: int | None,
        daily: int | None,
        monthly: int | None,
        as_json: bool,
    ) -> None:
        """Create a token and print it (the only time it is shown)."""
        _check_name(name)
        limits = _limits(rate, burst, daily, monthly)
        settings = load_settings()
        _check_accounts(settings, accounts)
        issued = tk.issue()
        wanted = tuple(tk.Scope(s) for s in dict.fromkeys(scopes))
        row = run(
            _with_store(
                settings,
                lambda store: store.add_token(
                    issued.id,
                    issued.secret_hash,
                    name=name,
                    scopes=wanted,
                    accounts=tuple(dict.fromkeys(accounts)) or None,
                    limits=limits,
                ),
            )
        )
        if as_json:
            click.echo(json.dumps(row.as_dict() | {"token": issued.text}, indent=2))
            return
        click.echo(_line(row))
        click.echo(f"token: {issued.text}")
        click.echo("It is shown this once: only its hash is stored.")

    @tokens.command("list")
    @click.option("--json", "as_json", is_flag=True, help="print a JSON array")
    @fails_cleanly
    def list_(as_json: bool) -> None:
        """List every token (never the token itself), revoked ones too."""
        rows = run(_with_store(load_settings(), lambda store: store.list_tokens()))
        if as_json:
            click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
            return
        for row in rows:
            click.echo(_line(row))
        click.echo(f"{len(rows)} token(s)")

    @tokens.command("revoke")
    @click.argument("token_id", metavar="ID")
    @fails_cleanly
    def revoke(token_id: str) -> None:
        """Revoke a token: every request with it is refused from now on, and its ops sessions end."""
        _check_id(token_id)
        if not run(_with_store(load_settings(), lambda store: store.revoke_token(token_id))):
            raise BadInput(f"no active token {token_id} (see `notifyq tokens list`)")
        click.echo(f"revoked {token_id}")

    return tokens
