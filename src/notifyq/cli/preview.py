"""``notifyq preview FILE``: what a batch request would send and cost, read offline; nothing is sent.

The file is a ``POST /v1/batches`` body. It is checked as a submit checks it, but without the database:
the account it names is not looked up (``POST /v1/batches?dry_run=true`` does that).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

import click

from notifyq.cli.config import load_settings
from notifyq.cli.guard import BadInput, fails_cleanly
from notifyq.errors import ValidationFailed
from notifyq.intake import MALFORMED_JSON, BatchIntake, decode_json
from notifyq.preview import SHOWN, preview_batch


@click.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (the dry-run answer of the API)")
@click.option(
    "--show", type=click.IntRange(0, 10_000), default=SHOWN, show_default=True, help="recipients listed one by one"
)
@fails_cleanly
def preview(file: TextIO, as_json: bool, show: int) -> None:
    """Segments, encoding and price of a batch request (a JSON file, - for stdin), per recipient and in all."""
    settings = load_settings()
    try:
        payload = decode_json(file.read())
    except MALFORMED_JSON as exc:
        raise BadInput(f"{file.name}: not JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{file.name}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    intake = BatchIntake(
        payload,
        default_validity_s=settings.worker.default_validity_s,
        max_recipients=settings.api.max_recipients,
        accounts=None,
    )
    try:
        answer = preview_batch(intake, settings.pricing, shown=show)
    except ValidationFailed as exc:  # every problem, each with where, as the API's 422 lists them
        listed = "\n".join(f"  {p.field or '(request)'}: {p.reason}" for p in exc.problems)
        raise BadInput(f"{file.name}: the batch would be refused:\n{listed}") from None
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(_table(answer))


def _table(answer: dict[str, Any]) -> str:
    """The preview as a terminal reads it: the batch, its countries, then the recipients shown."""
    currency = answer["currency"]
    lines = [
        f"{answer['channel']} to {answer['total']} recipient(s)"
        + (f", {answer['duplicates_dropped']} duplicate(s) dropped" if answer["duplicates_dropped"] else ""),
        f"smart encoding: {'on' if answer['smart_encoded'] else 'off'}",
    ]
    if answer["segments"] is not None:
        encodings = ", ".join(f"{n} {name}" for name, n in sorted(answer["encodings"].items()))
        lines.append(f"segments: {answer['segments']}" + (f" ({encodings})" if encodings else ""))
    priced = f"{answer['price']} {currency}"
    if answer["unpriced"]:
        priced += f" ({answer['unpriced']} recipient(s) in countries without a price)"
    lines += [f"price: {priced}", "", f"{'country':<8} {'recipients':>10} {'segments':>9} {'price':>12}"]
    for code, c in answer["by_country"].items():
        segments = "" if c["segments"] is None else c["segments"]
        lines.append(f"{code:<8} {c['recipients']:>10} {segments:>9} {c['price'] or '-':>12}")
    if answer["recipients"]:
        lines += ["", f"{'#':>6}  {'to':<16} {'country':<7} {'segments':>8} {'encoding':<8} {'price':>10}"]
        for r in answer["recipients"]:
            segments = "" if r["segments"] is None else r["segments"]
            lines.append(
                f"{r['index']:>6}  {r['to']:<16} {r['country']:<7} {segments:>8} {r['encoding'] or '':<8} "
                f"{r['price'] or '-':>10}"
            )
    if answer["recipients_not_shown"]:
        lines.append(f"... and {answer['recipients_not_shown']} more")
    return "\n".join(lines)
