"""The ops pages as HTML: pure functions of the ``/ops/data`` object (and of a page of deliveries).

The server renders every figure, so there is one renderer: the first load and each refresh (the
script fetches ``/ops/panel``, the same ``panel``) show the same markup, and the page reads without
JavaScript too. Every value is escaped; the markup carries no inline script or style (the content
security policy allows neither), and each figure a test or a script may look for has a
``data-figure`` name. Charts and progress bars are inline SVG drawn here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Final

from notifyq.api.ops_data import PROGRESS_PARTS, code_param

CHART_W: Final = 600
CHART_H: Final = 90
BAR_W: Final = 220
BAR_H: Final = 12


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def age(seconds: float) -> str:
    """A duration the way the terminal view writes it."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def utc(at: float) -> str:
    """A moment in UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _fig(name: str, value: object, *, tag: str = "td", cls: str = "num") -> str:
    return f'<{tag} class="{cls}" data-figure="{_e(name)}">{_e(value)}</{tag}>'


def _table(head: Sequence[str], rows: Iterable[str], *, empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def chart(values: Sequence[float | None], *, label: str, unit: str, name: str) -> str:
    """A line over the window (gaps where there is no value), its peak and latest value beside it."""
    known = [v for v in values if v is not None]
    peak = max(known, default=0.0)
    top = peak if peak > 0 else 1.0
    step = CHART_W / max(len(values) - 1, 1)
    lines: list[list[str]] = []
    run: list[str] = []
    for i, v in enumerate(values):
        if v is None:
            if run:
                lines.append(run)
            run = []
            continue
        run.append(f"{i * step:.1f},{CHART_H - v / top * (CHART_H - 4) - 2:.1f}")
    if run:
        lines.append(run)
    drawn = "".join(
        f'<polyline class="line" points="{" ".join(points)}"/>'
        if len(points) > 1
        else f'<circle class="dot" cx="{points[0].split(",")[0]}" cy="{points[0].split(",")[1]}" r="2"/>'
        for points in lines
    )
    latest = next((v for v in reversed(values) if v is not None), None)
    shown = "-" if latest is None else f"{latest:g}"
    return (
        f'<figure class="chart"><figcaption>{_e(label)}: <strong data-figure="{_e(name)}-latest">{_e(shown)}</strong>'
        f" {_e(unit)} now, peak {peak:g}</figcaption>"
        f'<svg viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" role="img" '
        f'aria-label="{_e(label)}"><rect class="frame" x="0" y="0" width="{CHART_W}" height="{CHART_H}"/>'
        f"{drawn}</svg></figure>"
    )


def progress_bar(parts: dict[str, int], total: int) -> str:
    """A batch's deliveries as one bar of coloured parts (``PROGRESS_PARTS``, in that order)."""
    x = 0.0
    rects = []
    for part in PROGRESS_PARTS:
        n = parts.get(part, 0)
        if n <= 0 or total <= 0:
            continue
        w = BAR_W * n / total
        rects.append(
            f'<rect class="p-{part}" x="{x:.1f}" y="0" width="{w:.1f}" height="{BAR_H}">'
            f"<title>{part}: {n}</title></rect>"
        )
        x += w
    return (
        f'<svg class="bar" viewBox="0 0 {BAR_W} {BAR_H}" width="{BAR_W}" height="{BAR_H}" role="img" '
        f'aria-label="progress"><rect class="p-track" x="0" y="0" width="{BAR_W}" height="{BAR_H}"/>'
        f"{''.join(rects)}</svg>"
    )


def _lanes(data: dict[str, Any]) -> str:
    rows = (
        f'<tr><th scope="row">{_e(lane)}</th>'
        + _fig(f"lane-{lane}-depth", f["depth"])
        + _fig(f"lane-{lane}-due", f["due"])
        + _fig(f"lane-{lane}-scheduled", f["scheduled"])
        + _fig(f"lane-{lane}-oldest", age(f["oldest_age_s"]))
        + _fig(f"lane-{lane}-in-flight", f["in_flight"])
        + _fig(f"lane-{lane}-retrying", f["retrying"])
        + "</tr>"
        for lane, f in data["lanes"].items()
    )
    head = ["lane", "depth", "due", "scheduled", "oldest due", "in flight", "retrying"]
    return "<section><h2>Queue</h2>" + _table(head, rows, empty="no lanes") + "</section>"


def _throughput(data: dict[str, Any]) -> str:
    t = data["throughput"]
    points = t["points"]
    sends = chart([p["sends_per_s"] for p in points], label="Sends per second", unit="/s", name="sends")
    latency = chart([p["latency_ms"] for p in points], label="Twilio latency (mean)", unit="ms", name="latency")
    window = f"last {t['window_s'] // 60} minutes, {t['step_s']} s steps, every worker"
    return f'<section><h2>Throughput</h2><p class="note">{_e(window)}</p>{sends}{latency}</section>'


def _accounts(data: dict[str, Any]) -> str:
    accounts = (
        f'<tr><th scope="row">{_e(name)}</th><td class="mono">{_e(a["account_sid"])}</td>'
        + _fig(f"account-{name}-in-flight", a["in_flight"])
        + _fig(f"account-{name}-cap", f"{a['cap']:g}")
        + _fig(f"account-{name}-use", f"{a['use']:.0%}")
        + _fig(f"account-{name}-cps", f"{a['calls_per_second']:g}")
        + _fig(
            f"account-{name}-paused",
            f"paused: {a['paused_reason']}" if a["paused"] else "sending",
            cls="paused" if a["paused"] else "ok",
        )
        + "</tr>"
        for name, a in data["accounts"].items()
    )
    senders = (
        f'<tr><th scope="row" class="mono">{_e(sender)}</th>'
        + _fig(f"sender-{sender}-rate", f"{s['rate']:g}")
        + _fig(f"sender-{sender}-waiting", s["waiting"])
        + _fig(f"sender-{sender}-booked", age(s["backlog_s"]))
        + "</tr>"
        for sender, s in data["senders"].items()
    )
    return (
        "<section><h2>Accounts</h2>"
        + _table(
            ["account", "SID", "in flight", "cap", "use", "calls/s", "state"], accounts, empty="no accounts configured"
        )
        + "<h2>Senders</h2>"
        + _table(
            ["sender", "rate (segments/s)", "waiting", "booked ahead"],
            senders,
            empty="no sender or sender group has a rate of its own (pacing.senders, pacing.groups)",
        )
        + "</section>"
    )


def _batches(data: dict[str, Any]) -> str:
    rows = (
        f'<tr data-batch="{_e(b["id"])}"><td class="mono">{_e(b["id"])}</td><td>{_e(utc(b["created_at"]))}</td>'
        f"<td>{_e(b['channel'])}</td><td>{_e(b['account'])}</td>"
        f"<td>{progress_bar(b['progress'], b['total'])}</td>"
        + _fig(f"batch-{b['id']}-final", b["final"])
        + _fig(f"batch-{b['id']}-total", b["total"])
        + _fig(f"batch-{b['id']}-delivered", b["progress"]["delivered"])
        + _fig(f"batch-{b['id']}-failed", b["progress"]["failed"])
        + f"<td>{'canceled' if b['canceled'] else ('done' if b['done'] else 'sending')}</td></tr>"
        for b in data["batches"]
    )
    head = ["batch", "created", "channel", "account", "progress", "final", "total", "delivered", "failed", "state"]
    legend = "".join(f'<span class="key p-{p}">{_e(p.replace("_", " "))}</span>' for p in PROGRESS_PARTS)
    return (
        f'<section><h2>Recent batches</h2><p class="legend">{legend}</p>'
        + _table(head, rows, empty="no batches yet")
        + "</section>"
    )


def _failures(data: dict[str, Any]) -> str:
    f = data["failures"]
    rows = (
        f'<tr><th scope="row">{_e(g["error_code"] if g["error_code"] is not None else "-")}</th>'
        + _fig(f"failures-{code_param(g['error_code'])}", g["count"])
        + f"<td>{_e(g['batch_count'])}</td><td>{_e(g['action'])}</td><td>{_e(g['meaning'])}</td>"
        f'<td><a href="{_e(g["deliveries_url"])}">deliveries</a></td></tr>'
        for g in f["groups"]
    )
    return (
        f"<section><h2>Failures by Twilio error code</h2>"
        f'<p class="note">failed and undelivered, last {f["window_s"] // 3600} h</p>'
        + _table(["code", "deliveries", "batches", "action", "meaning", ""], rows, empty="no failures")
        + "</section>"
    )


def _callbacks(data: dict[str, Any]) -> str:
    c = data["callbacks"]
    rows = (
        f'<tr><td class="mono">{_e(e["id"])}</td><td>{_e(utc(e["at"]))}</td><td class="num">{_e(e["tries"])}</td>'
        f"<td>{_e(e.get('delivery_id') or '-')}</td><td>{_e(e.get('status') or '-')}</td>"
        f"<td>{_e(e['reason'])}</td></tr>"
        for e in c["dead_letter_entries"]
    )
    summary = (
        f'<p><span data-figure="callbacks-backlog">{_e(c["backlog"])}</span> waiting to be applied, '
        f'<span data-figure="callbacks-dead">{_e(c["dead_letters"])}</span> dead-lettered '
        "(<code>notifyq callbacks dead</code>, <code>notifyq callbacks retry</code>)</p>"
    )
    head = ["entry", "at", "tries", "delivery", "status", "reason"]
    return (
        "<section><h2>Dead-lettered callbacks</h2>"
        + summary
        + _table(head, rows, empty="none dead-lettered")
        + "</section>"
    )


def panel(data: dict[str, Any]) -> str:
    """The live part of the page: every figure, as of ``data["at"]``."""
    paused = data["paused"]
    alert = f'<p class="alert" data-figure="paused">Paused: {_e(", ".join(paused))}</p>' if paused else ""
    return (
        f'<p class="stamp">as of <time data-figure="at">{_e(utc(data["at"]))}</time></p>{alert}'
        + _lanes(data)
        + _throughput(data)
        + _accounts(data)
        + _batches(data)
        + _failures(data)
        + _callbacks(data)
    )


def _document(title: str, body: str, *, script: bool = False) -> str:
    js = '<script src="/ops/static/ops.js" defer></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title><link rel="icon" href="/ops/static/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="/ops/static/ops.css">{js}</head>'
        f"<body>{body}</body></html>"
    )


def _header(*, signed_in: bool) -> str:
    out = (
        '<form method="post" action="/ops/signout"><button type="submit">Sign out</button></form>' if signed_in else ""
    )
    return f'<header><h1><a href="/ops">notifyq ops</a></h1><span id="live" class="live"></span>{out}</header>'


def page(data: dict[str, Any], *, refresh_s: float, signed_in: bool) -> str:
    """The whole ops page; its script refreshes the panel every ``refresh_s`` seconds."""
    main = f'<main id="panel" data-src="/ops/panel" data-every="{refresh_s:g}">{panel(data)}</main>'
    return _document("notifyq ops", _header(signed_in=signed_in) + main, script=True)


def deliveries_page(title: str, rows: Sequence[dict[str, Any]], *, next_url: str | None, signed_in: bool) -> str:
    """A page of deliveries (masked recipients) with a link to the next one."""
    body = (
        f'<tr><td class="mono">{_e(d["id"])}</td><td class="mono">{_e(d["batch_id"])}</td>'
        f'<td class="mono" data-figure="to">{_e(d["to"])}</td><td>{_e(d["status"])}</td>'
        f"<td>{_e(d['error_code'] if d['error_code'] is not None else '-')}</td>"
        f'<td>{_e(d["error_message"] or "")}</td><td class="num">{_e(d["attempts"])}</td>'
        f"<td>{_e(utc(d['updated_at']))}</td></tr>"
        for d in rows
    )
    more = f'<p><a rel="next" href="{_e(next_url)}">next page</a></p>' if next_url else ""
    head = ["delivery", "batch", "to", "status", "code", "error", "attempts", "updated"]
    table = _table(head, body, empty="no deliveries")
    return _document(title, _header(signed_in=signed_in) + f"<main><h2>{_e(title)}</h2>{table}{more}</main>")


def signin_page(*, next_path: str, error: str | None = None) -> str:
    """The sign-in form: an operator token, posted once, exchanged for a session cookie."""
    problem = f'<p class="alert" role="alert">{_e(error)}</p>' if error else ""
    form = (
        '<main class="signin"><h2>Sign in</h2>'
        f"{problem}"
        '<form method="post" action="/ops/signin">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        '<label for="token">Operator token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        '<button type="submit">Sign in</button></form>'
        '<p class="note">The token is one of the API tokens (NOTIFYQ_API__TOKENS); '
        "the session lasts one shift.</p></main>"
    )
    return _document("notifyq ops: sign in", _header(signed_in=False) + form)
