"""``notifyq twilio``: the connector's actions on an account, and the TwiML Application notifyq keeps there.

Each command takes ``--account NAME`` (the default account without it) and ``--json``. Every REST
request goes through the account's pacing in the workers' Redis (``cli/connector.py``); a message
sent here is a batch of one that a worker sends.
"""

from __future__ import annotations

import json
from typing import Any

import click

from notifyq.cli.config import load_settings as _settings
from notifyq.cli.config import with_redis as _with_redis
from notifyq.cli.guard import BadInput, Fault, fails_cleanly
from notifyq.cli.runtime import run

account_option = click.option(
    "--account", "account_name", default=None, help="a configured account (default: the default one)"
)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


def _emit(data: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:>28}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    """``k=v`` options as (name, value) pairs, in order (a name may repeat)."""
    out = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        out.append((name, value))
    return out


def _sid(value: str, prefix: str, what: str) -> str:
    if len(value) != 34 or not value.startswith(prefix) or any(c not in "0123456789abcdefABCDEF" for c in value[2:]):
        raise click.BadParameter(f"a {what} SID is {prefix} followed by 32 hex digits, not {value!r}")
    return value


@click.group()
def twilio() -> None:
    """The connector's actions on a Twilio account: messages, calls, raw requests, Applications, Connect."""


@twilio.command()
@account_option
@json_option
@fails_cleanly
def provision(account_name: str | None, as_json: bool) -> None:
    """Create, or update in place, the TwiML Application whose status callbacks reach our receiver.

    Running it again changes nothing and says so.
    """
    from notifyq.cli import connector  # noqa: PLC0415 - keep `notifyq --help` fast

    settings = _with_redis(_settings())
    done = run(connector.provision(settings, run(connector.resolve_account(settings, account_name))))
    if as_json:
        click.echo(json.dumps({k: done[k] for k in ("application_sid", "changed", "action", "changed_fields")}))
        return
    sid = done["application_sid"]
    if done["action"] == "unchanged":
        click.echo(f"application {sid} is up to date: nothing changed")
    else:
        click.echo(f"{done['action']} application {sid}: {', '.join(done['changed_fields'])}")


# ---- connect-app ---------------------------------------------------------------------------------------


@twilio.group("connect-app")
def connect_app() -> None:
    """Our Connect App, through Twilio's Connect Apps API."""


@connect_app.command("show")
@click.argument("sid")
@account_option
@json_option
@fails_cleanly
def connect_app_show(sid: str, account_name: str | None, as_json: bool) -> None:
    """Show the Connect App SID (CN...): permissions, authorize and deauthorize URLs."""
    from notifyq.cli import connector  # noqa: PLC0415

    sid = _sid(sid, "CN", "Connect App")
    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    _emit(run(connector.fetch_connect_app(settings, sending, sid)), as_json)


@connect_app.command("update")
@click.argument("sid")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice(["get-all", "post-all"]),
    help="repeat for both; `--permission none` is not a value: use --no-permissions",
)
@click.option("--no-permissions", is_flag=True, help="clear the permissions")
@click.option("--authorize-redirect-url", default=None)
@click.option("--deauthorize-callback-url", default=None)
@click.option("--deauthorize-callback-method", type=click.Choice(["GET", "POST"]), default=None)
@click.option("--friendly-name", default=None)
@account_option
@json_option
@fails_cleanly
def connect_app_update(
    sid: str,
    permissions: tuple[str, ...],
    no_permissions: bool,
    authorize_redirect_url: str | None,
    deauthorize_callback_url: str | None,
    deauthorize_callback_method: str | None,
    friendly_name: str | None,
    account_name: str | None,
    as_json: bool,
) -> None:
    """Update the Connect App SID: only the options given change."""
    from notifyq.cli import connector  # noqa: PLC0415

    if permissions and no_permissions:
        raise click.UsageError("give --permission or --no-permissions, not both")
    fields = [("Permissions", p) for p in dict.fromkeys(permissions)] + (
        [("Permissions", "")] if no_permissions else []
    )
    named = {
        "AuthorizeRedirectUrl": authorize_redirect_url,
        "DeauthorizeCallbackUrl": deauthorize_callback_url,
        "DeauthorizeCallbackMethod": deauthorize_callback_method,
        "FriendlyName": friendly_name,
    }
    fields += [(k, v) for k, v in named.items() if v is not None]
    if not fields:
        raise click.UsageError("nothing to update: give at least one option")
    sid = _sid(sid, "CN", "Connect App")
    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    _emit(run(connector.update_connect_app(settings, sending, sid, fields)), as_json)


# ---- messages and calls --------------------------------------------------------------------------------


def _row(record: dict[str, Any], resource: str) -> str:
    when = record.get("date_sent") or record.get("start_time") or record.get("date_created") or "-"
    text = str(record.get("body") or "")
    line = f"{record.get('sid')}  {when}  {record.get('from')} -> {record.get('to')}  {record.get('status')}"
    return line + (f"  {text[:40]!r}" if resource == "Messages" and text else "")


def _list(
    resource: str,
    filters: dict[str, str | None],
    limit: tuple[int, int | None],
    account_name: str | None,
    as_json: bool,
) -> None:
    from notifyq.cli import connector  # noqa: PLC0415

    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    given = {k: v for k, v in filters.items() if v is not None}
    records = run(connector.list_records(settings, sending, resource, given, *limit))
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    for record in records:
        click.echo(_row(record, resource))
    click.echo(f"{len(records)} {resource.lower()[:-1]}(s)")


def _get(resource: str, sid: str, account_name: str | None, as_json: bool) -> None:
    from notifyq.cli import connector  # noqa: PLC0415

    what, prefixes = ("message", ("SM", "MM")) if resource == "Messages" else ("call", ("CA",))
    sid = _sid(sid, next((p for p in prefixes if sid.startswith(p)), prefixes[0]), what)
    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    _emit(run(connector.fetch_record(settings, sending, resource, sid)), as_json)


def limit_option(command: Any) -> Any:
    """``--limit``, and the hidden ``--page-size`` (tests read several pages of a few records)."""
    command = click.option("--page-size", type=click.IntRange(1, 1000), default=None, hidden=True)(command)
    return click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)(command)


@twilio.group()
def messages() -> None:
    """Get, list and send messages."""


@messages.command("get")
@click.argument("sid")
@account_option
@json_option
@fails_cleanly
def messages_get(sid: str, account_name: str | None, as_json: bool) -> None:
    """Show the message SID (SM... or MM...) as Twilio has it."""
    _get("Messages", sid, account_name, as_json)


@messages.command("list")
@click.option("--to", default=None)
@click.option("--from", "from_", default=None)
@click.option("--date-sent", default=None, help="YYYY-MM-DD (UTC)")
@click.option("--date-sent-before", default=None, help="on or before YYYY-MM-DD")
@click.option("--date-sent-after", default=None, help="on or after YYYY-MM-DD")
@limit_option
@account_option
@json_option
@fails_cleanly
def messages_list(
    to: str | None,
    from_: str | None,
    date_sent: str | None,
    date_sent_before: str | None,
    date_sent_after: str | None,
    limit: int,
    page_size: int | None,
    account_name: str | None,
    as_json: bool,
) -> None:
    """List messages, newest first, following Twilio's pages up to --limit."""
    filters = {"To": to, "From": from_, "DateSent": date_sent, "DateSent<": date_sent_before}
    filters["DateSent>"] = date_sent_after
    _list("Messages", filters, (limit, page_size), account_name, as_json)


@messages.command("send")
@click.option("--to", required=True)
@click.option("--from", "from_", required=True)
@click.option("--body", required=True)
@account_option
@json_option
@fails_cleanly
def messages_send(to: str, from_: str, body: str, account_name: str | None, as_json: bool) -> None:
    """Send one SMS as a batch of one: recorded, queued, and sent by a worker through the sender's pacing."""
    from notifyq.cli import connector  # noqa: PLC0415

    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    done = run(connector.send_message(settings, sending, to, from_, body))
    if as_json:
        click.echo(json.dumps(done))
        return
    click.echo(
        f"queued delivery {done['delivery_id']} (batch {done['batch_id']}, account {done['account']}, "
        f"lane {done['lane']}): a worker sends it; `notifyq status {done['batch_id']}` follows it"
    )


@twilio.group()
def calls() -> None:
    """Get and list calls."""


@calls.command("get")
@click.argument("sid")
@account_option
@json_option
@fails_cleanly
def calls_get(sid: str, account_name: str | None, as_json: bool) -> None:
    """Show the call SID (CA...) as Twilio has it."""
    _get("Calls", sid, account_name, as_json)


@calls.command("list")
@click.option("--to", default=None)
@click.option("--from", "from_", default=None)
@click.option("--status", default=None, help="queued, ringing, in-progress, completed, busy, failed, no-answer ...")
@click.option("--start-time", default=None, help="YYYY-MM-DD (UTC)")
@limit_option
@account_option
@json_option
@fails_cleanly
def calls_list(
    to: str | None,
    from_: str | None,
    status: str | None,
    start_time: str | None,
    limit: int,
    page_size: int | None,
    account_name: str | None,
    as_json: bool,
) -> None:
    """List calls, newest first, following Twilio's pages up to --limit."""
    filters = {"To": to, "From": from_, "Status": status, "StartTime": start_time}
    _list("Calls", filters, (limit, page_size), account_name, as_json)


# ---- request -------------------------------------------------------------------------------------------


@twilio.command("request")
@click.argument("method", type=click.Choice(["GET", "POST", "DELETE"], case_sensitive=False))
@click.argument("path")
@click.option("--data", "data", multiple=True, metavar="NAME=VALUE", help="a form parameter (POST); repeatable")
@click.option("--query", "query", multiple=True, metavar="NAME=VALUE", help="a query parameter; repeatable")
@click.option("--max-retries", type=click.IntRange(0, 10), default=0, show_default=True)
@click.option("--retry-delay-ms", type=click.IntRange(0, 60_000), default=0, show_default=True)
@click.option("--exponential-backoff", is_flag=True, help="notifyq's backoff schedule instead of --retry-delay-ms")
@click.option("--retry-on-all-errors", is_flag=True, help="retry any error, not only the retryable ones")
@account_option
@json_option
@fails_cleanly
def request(
    method: str,
    path: str,
    data: tuple[str, ...],
    query: tuple[str, ...],
    max_retries: int,
    retry_delay_ms: int,
    exponential_backoff: bool,
    retry_on_all_errors: bool,
    account_name: str | None,
    as_json: bool,
) -> None:
    """A raw request to Twilio's API: PATH under /2010-04-01, like /Accounts/$TWILIO_ACCOUNT_SID/Calls.json.

    Without --retry-on-all-errors only what notifyq's error table retries is retried (429, 5xx, a
    connection that never opened, the retryable Twilio codes). Each attempt goes through the account's pacing.
    """
    from notifyq.cli import connector  # noqa: PLC0415
    from notifyq.provider.retry import RetryOptions  # noqa: PLC0415

    method = method.upper()
    if data and method != "POST":
        raise click.UsageError("--data is a POST's form")
    settings = _with_redis(_settings())
    sending = run(connector.resolve_account(settings, account_name))
    options = RetryOptions(
        max_retries=max_retries,
        retry_delay_ms=retry_delay_ms,
        exponential_backoff=exponential_backoff,
        retry_on_all_errors=retry_on_all_errors,
        backoff_base_s=settings.worker.backoff_base_s,
    )
    try:
        answer = run(
            connector.raw_request(
                settings,
                sending,
                method,
                path,
                data=_pairs(data, "--data"),
                query=_pairs(query, "--query"),
                retry=options,
            )
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    except connector.RequestFailed as failed:
        if as_json:
            click.echo(json.dumps(failed.as_dict()))
        status = failed.as_dict()["status"]
        refused = status is not None and 400 <= status < 500 and status != 429
        raise (BadInput if refused else Fault)(str(failed)) from None
    if as_json:
        click.echo(json.dumps({"ok": True, "status": answer.status, "attempts": answer.attempts, "body": answer.body}))
        return
    click.echo(f"HTTP {answer.status} after {answer.attempts} attempt(s)", err=True)
    body = answer.body
    click.echo(json.dumps(body, indent=2) if isinstance(body, dict | list) else (body or ""))
