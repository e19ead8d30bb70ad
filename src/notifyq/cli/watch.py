"""``notifyq status --watch``: the status figures redrawn in the terminal every few seconds.

Plain text and two ANSI sequences (cursor home, clear the rest), not a TUI library: the view is one
table that fits a screen, it needs no new dependency, and ``render`` stays a pure function of the
``status --json`` object, so what the view shows is what scripts read. When the output is not a
terminal, frames are printed one after another without the escapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

from notifyq.queue.connect import redis_from_url
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.report import gather_report
from notifyq.settings import Settings
from notifyq.store import Store

HOME_AND_CLEAR: Final = "\x1b[H\x1b[2J"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _table(header: list[str], rows: list[list[str]], *, text: frozenset[int] = frozenset({0})) -> list[str]:
    """Columns padded to their widest cell: the ``text`` ones to the left, figures to the right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) if i in text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def render(status: dict[str, Any], *, at: float, interval_s: float | None = None) -> str:
    """One frame of the view, from the object ``notifyq status --json`` prints."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    title = f"notifyq status  {stamp}"
    if interval_s is not None:
        title += f"  (every {interval_s:g} s; Ctrl-C to stop)"
    lines = [title, ""]
    lanes = status["lanes"]
    lines += _table(
        ["LANE", "DEPTH", "DUE", "SCHEDULED", "OLDEST DUE", "IN FLIGHT", "RETRYING"],
        [
            [
                lane,
                str(f["depth"]),
                str(f["due"]),
                str(f["scheduled"]),
                _age(f["oldest_age_s"]),
                str(f["in_flight"]),
                str(f["retrying"]),
            ]
            for lane, f in lanes.items()
        ],
    )
    accounts = status["accounts"]
    if accounts:
        lines.append("")
        lines += _table(
            ["ACCOUNT", "SID", "IN FLIGHT", "CAP", "USE", "CALLS/S", "PAUSED"],
            [
                [
                    name,
                    a["account_sid"],
                    str(a["in_flight"]),
                    f"{a['cap']:g}",
                    f"{a['use']:.0%}",
                    f"{a['calls_per_second']:g}",
                    a["paused_reason"] or "-",
                ]
                for name, a in accounts.items()
            ],
            text=frozenset({0, 1, 6}),
        )
    senders = status["senders"]
    if senders:
        lines.append("")
        lines += _table(
            ["SENDER", "RATE/S", "WAITING", "BOOKED AHEAD"],
            [[name, f"{s['rate']:g}", str(s["waiting"]), _age(s["backlog_s"])] for name, s in senders.items()],
        )
    behind = status["reconcile_backlog"]
    oldest = _age(behind["oldest_stale_s"])
    lines += [
        "",
        f"callbacks: {status['callback_backlog']} waiting, {status['dead_letters']['callbacks']} dead-lettered",
        f"reconciler: {behind['stale']} stale (oldest {oldest}), {behind['unanswered']} unanswered",
    ]
    if status["paused"]:
        lines.append(f"PAUSED: {', '.join(status['paused'])}  (notifyq accounts resume ACCOUNT_SID)")
    return "\n".join(lines) + "\n"


async def watch(
    settings: Settings, *, interval_s: float, iterations: int | None, write: Callable[[str], None], tty: bool
) -> int:
    """Redraw the view every ``interval_s`` until cancelled (Ctrl-C), or ``iterations`` times; returns the frames."""
    redis = redis_from_url(settings.redis_url or "")
    store = await Store.open(settings.sqlalchemy_url())
    frames = 0
    try:
        jobs, inbox = JobQueue(redis), CallbackInbox(redis, store)
        while iterations is None or frames < iterations:
            if frames:
                await asyncio.sleep(interval_s)
            report = await gather_report(jobs, inbox, store, settings)
            frame = render(report.as_status(), at=report.at, interval_s=interval_s)
            write(HOME_AND_CLEAR + frame if tty else frame + "\n")
            frames += 1
        return frames
    finally:
        await redis.aclose()
        await store.close()
