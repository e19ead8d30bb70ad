"""``notifyq failures``: what failed and why, by Twilio error code, with the classification table's reading.

The store groups the deliveries (``Store.failures_by_code``); this module adds each code's meaning and our
action from ``notifyq.classify``, masks the example recipients (in Twilio's error messages too, which name
the number), and renders a table or one JSON object.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import click

from notifyq import classify
from notifyq.intake.phones import mask_number, mask_numbers_in
from notifyq.settings import Settings
from notifyq.store import FailureGroup, Store

NO_CODE: Final = "no Twilio error code: notifyq's own verdict, see each delivery's error message and events"
UNKNOWN: Final = "not in notifyq's classification table; see Twilio's error page for the code"
BATCHES_PER_CODE: Final = 5
_AGO: Final = re.compile(r"(?P<n>[0-9]+)\s*(?P<unit>[smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A span back from ``now`` (``30m``, ``1h``, ``2d``, ``1w``) or an ISO 8601 time (UTC unless it says)."""
    ago = _AGO.fullmatch(text.strip())
    try:
        if ago is not None:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[ago["unit"]]: int(ago["n"])})
        moment = datetime.fromisoformat(text.strip())
    except OverflowError:
        raise click.BadParameter(f"{text!r} reaches back before the year 1", param_hint="--since") from None
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a span back from now (30m, 1h, 2d, 1w) nor an ISO time", param_hint="--since"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def meaning(code: int | None) -> tuple[str, str, bool]:
    """What the classification table says of a code: (meaning, our action, whether the table knows it)."""
    if code is None:
        return NO_CODE, "-", False
    known = classify.explain(code)
    if known is None:
        return UNKNOWN, "-", False
    action, reason = known
    return reason, action.value, True


def _group(group: FailureGroup) -> dict[str, Any]:
    reason, action, known = meaning(group.error_code)
    return {
        "error_code": group.error_code,
        "meaning": reason,
        "action": action,
        "known": known,
        "count": group.count,
        "examples": [
            {
                "to": mask_number(e.to_number),
                "delivery_id": e.delivery_id,
                "batch_id": e.batch_id,
                "status": e.status,
                "error_message": mask_numbers_in(e.error_message) if e.error_message else e.error_message,
                "at": _iso(e.at),
            }
            for e in group.examples
        ],
        "batch_count": group.batch_count,
        "batch_ids": list(group.batch_ids),
    }


async def gather_failures(
    settings: Settings,
    *,
    batch_id: str | None,
    since: datetime | None,
    account: str | None,
    error_codes: list[int],
    examples: int,
) -> dict[str, Any]:
    """The report: the filters as understood, the number of failures, and one group per error code."""
    store = await Store.open(settings.sqlalchemy_url())
    try:
        groups = await store.failures_by_code(
            batch_id=batch_id,
            since=since.timestamp() if since is not None else None,
            account=account,
            error_codes=error_codes,
            examples=examples,
            batches_per_code=BATCHES_PER_CODE,
        )
    finally:
        await store.close()
    return {
        "filters": {
            "batch_id": batch_id,
            "since": since.astimezone(UTC).isoformat(timespec="seconds") if since is not None else None,
            "account": account,
            "error_codes": error_codes,
        },
        "total": sum(g.count for g in groups),
        "groups": [_group(g) for g in groups],
    }


def render(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one row per error code with its examples and batches beneath."""
    scope = _scope(report["filters"])
    if not report["groups"]:
        return f"no failures{scope}"
    lines = [f"{report['total']} failed or undelivered deliveries{scope}", ""]
    lines.append(f"{'count':>7}  {'code':<6} {'action':<14} meaning")
    for g in report["groups"]:
        code = "-" if g["error_code"] is None else str(g["error_code"])
        lines.append(f"{g['count']:>7}  {code:<6} {g['action']:<14} {g['meaning']}")
        if g["examples"]:
            lines.append(f"{'':>9}e.g.    " + ", ".join(f"{e['to']} ({e['delivery_id']})" for e in g["examples"]))
        more = g["batch_count"] - len(g["batch_ids"])
        lines.append(f"{'':>9}batches " + ", ".join(g["batch_ids"]) + (f" and {more} more" if more else ""))
    return "\n".join(lines)


def _scope(filters: dict[str, Any]) -> str:
    """The filters given, as a parenthesis after the headline ("" for none)."""
    shown = [
        f"{name.replace('_', ' ')} {','.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in filters.items()
        if value
    ]
    return f" ({'; '.join(shown)})" if shown else ""


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
