"""``notifyq replay``: run a replay (``notifyq.replay``) from the command line, and show its answer.

Over the threshold, the command asks on a terminal and refuses elsewhere (exit 2) unless given ``--yes``:
a script never sends more than it meant to by accident.
"""

from __future__ import annotations

import getpass
from typing import Any

import click

from notifyq.cli.failures import parse_since
from notifyq.errors import ConfirmationRequired, ValidationFailed
from notifyq.producer import Producer
from notifyq.replay import Replayer, ReplayRequest, filter_problems
from notifyq.settings import Settings
from notifyq.store import ReplayFilter


def operator() -> str:
    """Who runs the command, as the replay's record shows it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no password entry for the uid (a container, say)
        return "cli:unknown"


def moment(text: str | None, option: str) -> float | None:
    """``--since``/``--until``: a span back from now (``30m``, ``2d``) or an ISO time, as epoch seconds."""
    if text is None:
        return None
    try:
        return parse_since(text).timestamp()
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint=option) from None


def check(f: ReplayFilter) -> None:
    """Refuse a bad filter before Redis or the database is needed."""
    if problems := filter_problems(f):
        raise ValidationFailed(problems)


async def run_replay(settings: Settings, request: ReplayRequest) -> dict[str, Any]:
    """The replay's answer; each new batch is in Redis when it returns."""
    producer = await Producer.open(settings)
    try:
        return await Replayer(producer).replay(request)
    finally:
        await producer.close()


def confirm(exc: ConfirmationRequired) -> None:
    """Ask on the terminal whether to go on; click.Abort (exit 1, nothing sent) when not."""
    question = f"Send to {exc.recipients} recipients (over the {exc.threshold} that need no confirmation)?"
    click.confirm(question, abort=True)


def render(answer: dict[str, Any]) -> str:
    """The answer as text: counts, why deliveries were skipped, the error codes and a sample of recipients."""
    head = "dry run: nothing sent" if answer["dry_run"] else f"replay {answer['id']} by {answer['ran_by']}"
    lines = [
        head,
        (
            f"matched {answer['matched']}, skipped {answer['skipped_total']}, "
            f"replayable {answer['replayable']}, replayed {answer['replayed']}"
        ),
    ]
    lines += [f"  skipped {n:>6}  {reason}" for reason, n in answer["skipped"].items()]
    lines += [
        f"  code {'-' if g['error_code'] is None else g['error_code']:>6}  {g['count']:>6}  {g['meaning']}"
        for g in answer["by_error_code"]
    ]
    lines += [f"  e.g. {s['to']}  {s['status']}  {s['delivery_id']} (batch {s['batch_id']})" for s in answer["sample"]]
    if answer["batch_ids"]:
        lines.append("new batches: " + ", ".join(answer["batch_ids"]))
    if answer["dry_run"] and answer["needs_confirmation"]:
        lines.append("over the confirmation threshold: it needs confirming (--yes)")
    return "\n".join(lines)


def replay_filter(
    batch_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    error_codes: tuple[int, ...],
    account: str | None,
    sender: str | None,
    since: str | None,
    until: str | None,
) -> ReplayFilter:
    """The command's options as a filter (no ``--status``: the default statuses)."""
    chosen = {"statuses": tuple(dict.fromkeys(statuses))} if statuses else {}
    return ReplayFilter(
        **chosen,
        batch_ids=tuple(dict.fromkeys(batch_ids)),
        error_codes=tuple(dict.fromkeys(error_codes)),
        account=account,
        sender=sender,
        since=moment(since, "--since"),
        until=moment(until, "--until"),
    )
