"""``notifyq accounts senders ACCOUNT``: a registry account's sender groups (senders sharing one rate).

A group is what Twilio counts as one sender for throughput: the numbers of a 10DLC campaign share the
campaign's segments per second. Every worker paces a group's numbers together on one schedule.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import click

from notifyq.accounts import Account, AccountDirectory, AccountRegistry
from notifyq.cli.config import load_settings
from notifyq.cli.guard import fails_cleanly
from notifyq.cli.runtime import run
from notifyq.settings import Settings
from notifyq.store import Store


@asynccontextmanager
async def _registry(settings: Settings) -> AsyncIterator[AccountRegistry]:
    store = await Store.open(settings.sqlalchemy_url())
    try:
        yield AccountRegistry(AccountDirectory(settings, store))
    finally:
        await store.close()


def _show(account: Account, as_json: bool, line: str | None = None) -> None:
    view: dict[str, Any] = {"account": account.name, "sender_groups": account.sender_groups}
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    if line:
        click.echo(line)
    for name, group in sorted(account.sender_groups.items()):
        click.echo(f"{name:<24} {group['rate']:>8g}/s  {' '.join(group['senders'])}")


@click.group()
@click.argument("account")
@click.pass_context
def senders(ctx: click.Context, account: str) -> None:
    """Sender groups of a registry ACCOUNT: numbers that share one rate (a 10DLC campaign's MPS)."""
    ctx.obj = account


@senders.command("list")
@click.option("--json", "as_json", is_flag=True, help='print {"account": ..., "sender_groups": {...}}')
@click.pass_obj
@fails_cleanly
def senders_list(account: str, as_json: bool) -> None:
    """The account's sender groups: name, rate and senders."""
    settings = load_settings()

    async def listed() -> Account:
        async with _registry(settings) as registry:
            return await registry.directory.resolve(account)

    _show(run(listed()), as_json)


@senders.command("set")
@click.argument("group")
@click.option("--rate", type=float, required=True, help="segments per second the group's senders share")
@click.option("--sender", "members", multiple=True, required=True, help="a sender of the group (repeat it)")
@click.option("--json", "as_json", is_flag=True, help="print the account's groups as JSON")
@click.pass_obj
@fails_cleanly
def senders_set(account: str, group: str, rate: float, members: tuple[str, ...], as_json: bool) -> None:
    """Add GROUP, or replace it: its senders are paced together at RATE."""
    settings = load_settings()

    async def changed() -> Account:
        async with _registry(settings) as registry:
            return await registry.set_sender_group(account, group, rate, list(members))

    _show(run(changed()), as_json, f"set group {group} ({rate:g}/s)")


@senders.command("remove")
@click.argument("group")
@click.option("--json", "as_json", is_flag=True, help="print the account's groups as JSON")
@click.pass_obj
@fails_cleanly
def senders_remove(account: str, group: str, as_json: bool) -> None:
    """Drop GROUP: its senders are paced each on its own again."""
    settings = load_settings()

    async def changed() -> Account:
        async with _registry(settings) as registry:
            return await registry.remove_sender_group(account, group)

    _show(run(changed()), as_json, f"removed group {group}")
