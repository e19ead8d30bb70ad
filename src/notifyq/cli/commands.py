"""``notifyq``: run the parts, watch the queue, recover deliveries.

Bad input exits with code 2 and a message (click's convention); faults exit 1 (``cli/guard.py``).
With ``NOTIFYQ_REDIS_URL`` unset, ``notifyq api`` runs an embedded Redis and every other command
with the same data directory uses it (``cli/embedded.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from contextlib import ExitStack
from typing import Any

import click
import structlog
from aiohttp import web

from notifyq import logs
from notifyq.cli.accounts import accounts
from notifyq.cli.config import load_settings as _settings
from notifyq.cli.config import with_redis as _with_redis
from notifyq.cli.guard import fails_cleanly, uses
from notifyq.cli.runtime import (
    await_redis,
    freeze_heap,
    new_loop,
    resolve_redis,
    run,
    serve,
    tune_process,
)
from notifyq.cli.tokens import tokens_commands
from notifyq.redact import mask_url
from notifyq.settings import Settings

log = structlog.get_logger("notifyq")


def _announce(service: str, settings: Settings, redis_url: str, **where: Any) -> None:
    """Log what a service listens on and which Redis and database it uses (passwords hidden)."""
    log.info(
        "starting",
        service=service,
        **where,
        redis=mask_url(redis_url),
        database=mask_url(settings.sqlalchemy_url()),
        data_dir=str(settings.data_dir),
    )


@click.group()
@click.version_option(package_name="notifyq")
def main() -> None:
    """notifyq: bulk SMS/MMS and voice notifications through Twilio."""


@main.command()
@click.option("--host", default=None, help="listen address (default: NOTIFYQ_API__HOST)")
@click.option("--port", type=int, default=None, help="listen port (default: NOTIFYQ_API__PORT)")
@click.option("--no-applier", is_flag=True, help="only buffer callbacks; `notifyq applier` applies them")
@fails_cleanly
def api(host: str | None, port: int | None, no_applier: bool) -> None:
    """Serve the producer API, Twilio's callbacks, /healthz and /metrics.

    With NOTIFYQ_REDIS_URL unset, it starts an embedded Redis that the other parts on this machine use.
    """
    from notifyq.api.app import create_app  # noqa: PLC0415 - keep `notifyq --help` fast

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    tune_process()
    with ExitStack() as stack:
        redis_url = resolve_redis(settings, stack)
        uses(redis=redis_url)
        host, port = host or settings.api.host, port or settings.api.port
        _announce("api", settings, redis_url, listen=f"http://{host}:{port}", applier=not no_applier)
        app = create_app(settings, redis_url=redis_url, apply_callbacks=not no_applier)
        app.on_startup.append(_freeze_heap)  # after the app's resources are open
        web.run_app(
            app,
            host=host,
            port=port,
            print=None,
            access_log=None,
            loop=new_loop(),  # aiohttp would otherwise build a plain asyncio loop
        )


async def _freeze_heap(_app: web.Application) -> None:
    freeze_heap()


@main.command()
@fails_cleanly
def applier() -> None:
    """Apply buffered status callbacks to the store (pairs with `notifyq api --no-applier`).

    Any number may run: they share the stream through a consumer group, and one that dies leaves its
    unacknowledged callbacks to the others after 30 s. With NOTIFYQ_REDIS_URL unset, it uses (and
    waits for) the embedded Redis of the `notifyq api` with the same data directory.
    """
    from notifyq.cli.applier import serve_applier  # noqa: PLC0415

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)

    async def service() -> None:
        redis_url = await await_redis(settings)
        uses(redis=redis_url)
        port = settings.applier.metrics_port
        metrics = f"http://{settings.applier.metrics_host}:{port}/metrics" if port is not None else None
        _announce("applier", settings, redis_url, metrics=metrics)
        await serve_applier(settings, redis_url)

    serve(service())


@main.command()
@click.option("--burst", is_flag=True, help="exit when both lanes are empty")
@fails_cleanly
def worker(burst: bool) -> None:
    """Run a worker: both lanes (urgent, bulk), sending to Twilio.

    With NOTIFYQ_REDIS_URL unset, it uses (and waits for) the embedded Redis of the `notifyq api`
    with the same data directory.
    """
    from notifyq.worker import run_worker  # noqa: PLC0415

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    metrics_port = settings.worker.metrics_port

    async def service() -> None:
        redis_url = await await_redis(settings)
        uses(redis=redis_url)
        metrics = f"http://{settings.api.host}:{metrics_port}/metrics" if metrics_port is not None else None
        _announce("worker", settings, redis_url, metrics=metrics, twilio=settings.twilio.base_url)
        for warning in settings.warnings():
            log.warning("unsafe settings", problem=warning)
        # what lives as long as the process (modules, phone metadata, the app) leaves the collector's full
        # walks: a full collection stalls the worker in the middle of sends at their slots
        await run_worker(settings, redis_url, burst=burst, ready=freeze_heap)

    serve(service())


@main.command()
@click.option("--wait", is_flag=True, help="wait for a database that cannot be reached yet, as the services do")
@fails_cleanly
def migrate(wait: bool) -> None:
    """Bring the database schema to the newest revision, then exit (a deploy step; services migrate too).

    Safe to run alongside services that start: one migrator at a time changes the schema.
    """
    from notifyq.store import Store, current_revision  # noqa: PLC0415

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)

    async def migrated() -> str | None:
        store = await Store.open(settings.sqlalchemy_url(), wait=wait)
        try:
            return await current_revision(store.engine)
        finally:
            await store.close()

    revision = run(migrated())
    click.echo(f"database {mask_url(settings.sqlalchemy_url())} is at schema revision {revision}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True)
@click.option("--account-sid", default="AC" + "0" * 32, show_default=True)
@click.option("--auth-token", default="simulator-token", show_default=True)
@click.option("--latency", "latency_s", type=float, default=0.0, show_default=True, help="seconds per request")
@click.option("--rate-429", type=float, default=0.0, show_default=True)
@click.option("--rate-5xx", type=float, default=0.0, show_default=True)
@click.option("--max-concurrency", type=int, default=None, help="per account; over it: 429 / 20429")
@fails_cleanly
def simulator(
    host: str,
    port: int,
    account_sid: str,
    auth_token: str,
    latency_s: float,
    rate_429: float,
    rate_5xx: float,
    max_concurrency: int | None,
) -> None:
    """Serve the Twilio API simulator (Messages, Calls, signed callbacks) on loopback."""
    from notifyq.simulator import SimAccount, SimulatorConfig  # noqa: PLC0415
    from notifyq.simulator import run as run_simulator  # noqa: PLC0415

    for name, value in (("--rate-429", rate_429), ("--rate-5xx", rate_5xx)):
        if not 0 <= value <= 1:
            raise click.BadParameter(f"{name} is a share between 0 and 1, not {value}")
    cfg = SimulatorConfig(
        accounts={account_sid: SimAccount(auth_token=auth_token)},
        latency_s=latency_s,
        rate_429=rate_429,
        rate_5xx=rate_5xx,
        max_concurrency_per_account=max_concurrency,
    )
    click.echo(f"simulator on http://{host}:{port} (account {account_sid})", err=True)
    # a full collection would stall it (and the creation times it stamps) for tens of milliseconds
    serve(run_simulator(cfg, host, port, ready=freeze_heap))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
@click.option("--messages", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True)
@click.option("--calls", type=click.IntRange(0, 10_000), default=50, show_default=True)
@click.option("--latency", "latency_s", type=float, default=0.02, show_default=True, help="simulated Twilio latency")
@fails_cleanly
def demo(as_json: bool, messages: int, calls: int, latency_s: float) -> None:
    """Send a realistic bulk notification through every part, on embedded defaults."""
    from notifyq.cli.demo import run_demo  # noqa: PLC0415

    summary = run(run_demo(messages=messages, calls=calls, latency_s=latency_s, live=not as_json))
    if as_json:
        click.echo(json.dumps(summary))
    sys.exit(0 if summary["all_final"] else 1)


@main.command()
@click.argument("batch_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (its shape: README)")
@click.option("--watch", "watching", is_flag=True, help="redraw the figures in the terminal until Ctrl-C")
@click.option("--interval", "interval_s", type=click.FloatRange(0.2), default=2.0, show_default=True, help="seconds")
@click.option("--iterations", type=click.IntRange(1), default=None, hidden=True, help="stop after N frames")
@fails_cleanly
def status(batch_id: str | None, as_json: bool, watching: bool, interval_s: float, iterations: int | None) -> None:
    """Lanes, accounts, senders, callbacks and the reconciler's backlog; given a BATCH_ID, its counts."""
    from notifyq.cli.status import gather_status  # noqa: PLC0415

    if watching and (as_json or batch_id):
        raise click.UsageError("--watch shows the deployment's figures: give neither --json nor a BATCH_ID")
    settings = _with_redis(_settings())
    if watching:
        from notifyq.cli.watch import watch  # noqa: PLC0415

        def write(frame: str) -> None:
            click.echo(frame, nl=False)

        with contextlib.suppress(KeyboardInterrupt):
            run(watch(settings, interval_s=interval_s, iterations=iterations, write=write, tty=sys.stdout.isatty()))
        return
    report = run(gather_status(settings, batch_id))
    _print(report, as_json)


@main.command()
@click.option("--dry-run", is_flag=True, help="count what would be queued, change nothing")
@fails_cleanly
def requeue(dry_run: bool) -> None:
    """Queue again every non-final delivery that has no job in Redis (after Redis lost its data)."""
    from notifyq.cli.requeue import requeue_missing  # noqa: PLC0415

    settings = _with_redis(_settings())
    result = run(requeue_missing(settings, settings.redis_url or "", dry_run=dry_run))
    _print(result, as_json=False)


@main.command()
@click.option("--older-than", help="a span like 30d, 12h or 2w (default: NOTIFYQ_RETENTION__DAYS)")
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@fails_cleanly
def purge(older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete finished batches, their deliveries and events, once every delivery has been final that long."""
    from notifyq.cli.purge import purge_command, retention_s  # noqa: PLC0415

    settings = _settings()
    bound = retention_s(older_than, settings)
    uses(database=settings.sqlalchemy_url())
    _print(run(purge_command(settings, bound, dry_run=dry_run)), as_json)


@main.command()
@click.argument("batch_ids", nargs=-1)
@click.option(
    "--status", "statuses", multiple=True, help="final status to replay (repeatable)  [default: failed, undelivered]"
)
@click.option(
    "--error-code", "error_codes", type=int, multiple=True, help="only this code; names a permanent one (repeatable)"
)
@click.option("--account", help="only this account's batches (its name or SID)")
@click.option("--sender", "--from", "sender", help="only batches sent from this number, ID or Messaging Service")
@click.option("--since", help="only deliveries final from then on: 30m, 1h, 2d, or an ISO time (UTC)")
@click.option("--until", help="only deliveries final before then: 30m, 1h, 2d, or an ISO time (UTC)")
@click.option("--again", is_flag=True, help="replay deliveries replayed before once more")
@click.option("--dry-run", is_flag=True, help="count and show what would be sent, send nothing")
@click.option("--yes", "-y", "confirmed", is_flag=True, help="confirm a replay over replay.confirm_above recipients")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@fails_cleanly
def replay(
    batch_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    error_codes: tuple[int, ...],
    account: str | None,
    sender: str | None,
    since: str | None,
    until: str | None,
    again: bool,
    dry_run: bool,
    confirmed: bool,
    as_json: bool,
) -> None:
    """Send failed deliveries again (of BATCH_IDS, or any batch), as new batches; see docs/runbook.md.

    Never to a suppressed or reached recipient, nor for a permanent error code unless --error-code names
    it, nor twice for one delivery unless --again.
    """
    from notifyq.cli import replay as cli_replay  # noqa: PLC0415
    from notifyq.errors import ConfirmationRequired  # noqa: PLC0415
    from notifyq.replay import ReplayRequest  # noqa: PLC0415

    f = cli_replay.replay_filter(batch_ids, statuses, error_codes, account, sender, since, until)
    cli_replay.check(f)
    request = ReplayRequest(f, cli_replay.operator(), again=again, dry_run=dry_run, confirmed=confirmed)
    settings = _with_redis(_settings())
    try:
        answer = run(cli_replay.run_replay(settings, request))
    except ConfirmationRequired as exc:
        if as_json or not sys.stdin.isatty():  # nobody to ask: exit 2, saying --yes
            raise
        click.echo(cli_replay.render(run(cli_replay.run_replay(settings, dataclasses.replace(request, dry_run=True)))))
        cli_replay.confirm(exc)
        answer = run(cli_replay.run_replay(settings, dataclasses.replace(request, confirmed=True)))
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False) if as_json else cli_replay.render(answer))


@main.command()
@click.argument("batch_id", required=False)
@click.option("--since", help="only failures from then on: 30m, 1h, 2d, or an ISO time (UTC)")
@click.option("--account", help="only this account's batches (its name or SID)")
@click.option("--error-code", "error_codes", type=int, multiple=True, help="only this Twilio error code (repeatable)")
@click.option("--limit-examples", type=click.IntRange(0, 50), default=3, show_default=True, help="examples per code")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@fails_cleanly
def failures(
    batch_id: str | None,
    since: str | None,
    account: str | None,
    error_codes: tuple[int, ...],
    limit_examples: int,
    as_json: bool,
) -> None:
    """What failed and why: failed and undelivered deliveries by Twilio error code, with its meaning."""
    from notifyq.cli.failures import gather_failures, parse_since, render  # noqa: PLC0415

    report = run(
        gather_failures(
            _settings(),
            batch_id=batch_id,
            since=parse_since(since) if since is not None else None,
            account=account,
            error_codes=list(error_codes),
            examples=limit_examples,
        )
    )
    click.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else render(report))


# ---- callbacks dead: the callbacks the applier could not apply ----------------------------------------


@main.group()
def callbacks() -> None:
    """Status callbacks Twilio sent that the applier could not apply."""


@callbacks.group("dead")
def callbacks_dead() -> None:
    """The dead letter: callbacks that failed MAX_TRIES times, each with its reason."""


def _dead_ids(ids: tuple[str, ...], every: bool, *, default_all: bool) -> list[str] | None:
    """The IDs asked for (None: all of them), or a usage error."""
    from notifyq.queue.deadletter import ENTRY_ID  # noqa: PLC0415

    if ids and every:
        raise click.UsageError("give IDs or --all, not both")
    if not ids and not every and not default_all:
        raise click.UsageError("give the IDs to act on (see `notifyq callbacks dead list`), or --all")
    bad = [i for i in ids if not ENTRY_ID.fullmatch(i)]
    if bad:
        raise click.BadParameter(f"not a stream entry id (like 1700000000000-0): {', '.join(bad)}", param_hint="ID")
    return list(ids) or None


@callbacks_dead.command("list")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@click.option("--limit", type=click.IntRange(1), default=None, help="at most this many, oldest first")
@fails_cleanly
def callbacks_dead_list(as_json: bool, limit: int | None) -> None:
    """List the dead-lettered callbacks: id, delivery, status, tries and reason."""
    from notifyq.cli.callbacks import list_dead  # noqa: PLC0415

    entries = run(list_dead(_with_redis(_settings()), limit=limit))
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for e in entries:
        click.echo(f"{e['id']}  delivery={e.get('delivery_id')} status={e.get('status')} tries={e['tries']}")
        click.echo(f"    {e['reason']}")
    click.echo(f"{len(entries)} dead-lettered callback(s)")


@callbacks_dead.command("retry")
@click.argument("ids", metavar="[ID...]", nargs=-1)
@click.option("--all", "every", is_flag=True, help="every entry (the default when no ID is given)")
@fails_cleanly
def callbacks_dead_retry(ids: tuple[str, ...], every: bool) -> None:
    """Put dead-lettered callbacks back into the stream, to be applied again (tries start again)."""
    from notifyq.cli.callbacks import retry_dead  # noqa: PLC0415
    from notifyq.errors import NotFound  # noqa: PLC0415

    wanted = _dead_ids(ids, every, default_all=True)
    try:
        moved = run(retry_dead(_with_redis(_settings()), wanted))
    except NotFound as exc:
        raise click.UsageError(f"{exc}; nothing was retried") from exc
    click.echo(f"retried {len(moved)} callback(s)")


@callbacks_dead.command("drop")
@click.argument("ids", metavar="ID...|--all", nargs=-1)
@click.option("--all", "every", is_flag=True, help="every entry")
@fails_cleanly
def callbacks_dead_drop(ids: tuple[str, ...], every: bool) -> None:
    """Delete dead-lettered callbacks for good."""
    from notifyq.cli.callbacks import drop_dead  # noqa: PLC0415
    from notifyq.errors import NotFound  # noqa: PLC0415

    wanted = _dead_ids(ids, every, default_all=False)
    try:
        dropped = run(drop_dead(_with_redis(_settings()), wanted))
    except NotFound as exc:
        raise click.UsageError(f"{exc}; nothing was dropped") from exc
    click.echo(f"dropped {len(dropped)} callback(s)")


main.add_command(accounts)
main.add_command(tokens_commands(_settings))


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:>24}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")
