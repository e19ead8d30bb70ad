"""The ops page's figures as one JSON object (``GET /ops/data``), read from what the whole deployment holds.

The lanes, accounts and senders are ``notifyq status``'s report (``notifyq.report``); the chart is the
cluster's throughput series in Redis (``notifyq.queue.throughput``); batches, failures and the
deliveries behind a failure code come from the store; dead-lettered callbacks from their stream. Every
API replica reads the same sources, so every replica shows the same page. Recipients are masked
wherever they appear, in Twilio's error messages too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from notifyq import classify
from notifyq import statuses as st
from notifyq.intake.phones import mask_number, mask_numbers_in
from notifyq.queue.inbox import CallbackInbox
from notifyq.queue.jobs import JobQueue
from notifyq.queue.throughput import read_series
from notifyq.report import gather_report
from notifyq.settings import Settings
from notifyq.store import BatchProgress, DeliveryRow, Store

FAILURE_WINDOW_S: Final = 86_400  # failures of the last day: what on-call looks back over first
SERIES_WINDOW_S: Final = 300
SERIES_STEP_S: Final = 5
RECENT_BATCHES: Final = 10
DEAD_LETTERS_SHOWN: Final = 20
NO_CODE: Final = "no Twilio error code: notifyq's own verdict (see each delivery's error message)"
UNKNOWN: Final = "not in notifyq's classification table; see Twilio's error page for the code"
# a batch's progress bar: its deliveries in these parts, in this order
PROGRESS_PARTS: Final = ("delivered", "sent", "failed", "other_final", "waiting")
DELIVERED: Final = frozenset({"delivered", "read", "partially_delivered", "completed"})


@dataclass(frozen=True, slots=True)
class OpsSources:
    """Where the figures come from: the API's own clients."""

    jobs: JobQueue
    inbox: CallbackInbox
    store: Store
    settings: Settings


def meaning(code: int | None) -> tuple[str, str]:
    """What the classification table says of a Twilio error code: (its meaning, notifyq's action)."""
    if code is None:
        return NO_CODE, "-"
    known = classify.explain(code)
    if known is None:
        return UNKNOWN, "-"
    action, reason = known
    return reason, action.value


def code_param(code: int | None) -> str:
    """A failure code as the deliveries view takes it (``none``: deliveries without one)."""
    return "none" if code is None else str(code)


def progress(channel: str, by_status: dict[str, int]) -> dict[str, int]:
    """A batch's deliveries in the parts of its progress bar."""
    parts = dict.fromkeys(PROGRESS_PARTS, 0)
    for status, n in by_status.items():
        rank = st.rank(channel, status) or 0
        if status in DELIVERED:
            parts["delivered"] += n
        elif status in st.FAILURES:
            parts["failed"] += n
        elif rank >= st.FINAL_RANK:
            parts["other_final"] += n  # canceled, expired, suppressed; busy, no-answer
        elif rank > st.MESSAGE_RANKS[st.DISPATCHING]:
            parts["sent"] += n  # Twilio has it; its final status is to come
        else:
            parts["waiting"] += n  # still ours: pending, retrying, dispatching
    return parts


def _batch(p: BatchProgress) -> dict[str, Any]:
    b = p.batch
    parts = progress(b.channel, p.by_status)
    final = parts["delivered"] + parts["failed"] + parts["other_final"]
    return {
        "id": b.id,
        "created_at": b.created_at,
        "channel": b.channel,
        "account": b.account,
        "sender": b.sender or b.messaging_service_sid,
        "priority": b.priority,
        "total": b.total,
        "canceled": b.canceled_at is not None,
        "by_status": dict(sorted(p.by_status.items())),
        "progress": parts,
        "final": final,
        "done": final == b.total,
    }


def delivery_view(d: DeliveryRow) -> dict[str, Any]:
    """One delivery as the ops views show it: the recipient masked."""
    return {
        "id": d.id,
        "batch_id": d.batch_id,
        "to": mask_number(d.to_number),
        "status": d.status,
        "error_code": d.error_code,
        "error_message": mask_numbers_in(d.error_message) if d.error_message else d.error_message,
        "attempts": d.attempts,
        "twilio_sid": d.twilio_sid,
        "updated_at": d.updated_at,
    }


async def gather_ops(sources: OpsSources, *, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, at one moment."""
    now = time.time() if now is None else now
    report = await gather_report(sources.jobs, sources.inbox, sources.store, sources.settings)
    status = report.as_status()
    series = await read_series(sources.jobs.redis, window_s=SERIES_WINDOW_S, step_s=SERIES_STEP_S, now=now)
    since = now - FAILURE_WINDOW_S
    groups = await sources.store.failures_by_code(since=since, examples=0, batches_per_code=1)
    batches = await sources.store.recent_batches(limit=RECENT_BATCHES)
    dead = await sources.inbox.dead.entries(limit=DEAD_LETTERS_SHOWN)
    failures = []
    for g in groups:
        text, action = meaning(g.error_code)
        query = urlencode({"error_code": code_param(g.error_code), "since": f"{since:.0f}"})
        failures.append(
            {
                "error_code": g.error_code,
                "meaning": text,
                "action": action,
                "count": g.count,
                "batch_count": g.batch_count,
                "deliveries_url": f"/ops/deliveries?{query}",
            }
        )
    return {
        "at": report.at,
        "lanes": status["lanes"],
        "throughput": {
            "window_s": SERIES_WINDOW_S,
            "step_s": SERIES_STEP_S,
            "points": [
                {
                    "start": p.start,
                    "sends_per_s": p.sends_per_s,
                    "latency_ms": p.latency_ms,
                    "requests": p.requests,
                    "accepted": p.accepted,
                }
                for p in series
            ],
        },
        "accounts": status["accounts"],
        "senders": status["senders"],
        "paused": status["paused"],
        "batches": [_batch(p) for p in batches],
        "failures": {"since": since, "window_s": FAILURE_WINDOW_S, "groups": failures},
        "callbacks": {
            "backlog": report.callback_backlog,
            "dead_letters": report.callback_dead_letters,
            "dead_letter_entries": [{**e.summary(), "reason": mask_numbers_in(e.reason)} for e in dead],
        },
        "reconcile_backlog": status["reconcile_backlog"],
    }
