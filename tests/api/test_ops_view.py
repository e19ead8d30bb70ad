"""The ops page's markup: every value escaped, progress split by status, charts with gaps."""

from __future__ import annotations

from typing import Any

from notifyq.api.ops_data import progress
from notifyq.api.ops_view import chart, panel, signin_page

EVIL = '<script>alert("x")</script>'


def _data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "at": 1_800_000_000.0,
        "lanes": {"bulk": {"depth": 3, "due": 2, "scheduled": 1, "oldest_age_s": 4.0, "in_flight": 0, "retrying": 1}},
        "throughput": {"window_s": 300, "step_s": 5, "points": []},
        "accounts": {},
        "senders": {},
        "paused": [],
        "batches": [],
        "failures": {"since": 0.0, "window_s": 86400, "groups": []},
        "callbacks": {"backlog": 0, "dead_letters": 0, "dead_letter_entries": []},
    }
    data.update(over)
    return data


def test_progress_splits_a_batch_by_where_its_deliveries_are() -> None:
    got = progress(
        "sms",
        {
            "delivered": 3,
            "read": 1,
            "undelivered": 2,
            "failed": 1,
            "canceled": 1,
            "sent": 4,
            "pending": 5,
            "retrying": 1,
        },
    )
    assert got == {"delivered": 4, "sent": 4, "failed": 3, "other_final": 1, "waiting": 6}
    assert progress("call", {"completed": 2, "busy": 1, "ringing": 1, "dispatching": 1}) == {
        "delivered": 2,
        "sent": 1,
        "failed": 0,
        "other_final": 1,
        "waiting": 1,
    }


def test_every_value_from_outside_is_escaped() -> None:
    entry = {"id": "1-0", "at": 0.0, "tries": 3, "reason": EVIL, "delivery_id": EVIL, "status": None}
    group = {
        "error_code": 30005,
        "count": 1,
        "batch_count": 1,
        "action": "fail",
        "meaning": EVIL,
        "deliveries_url": '/ops/deliveries?error_code=30005&x="',
    }
    html = panel(
        _data(
            callbacks={"backlog": 0, "dead_letters": 1, "dead_letter_entries": [entry]},
            failures={"since": 0.0, "window_s": 86400, "groups": [group]},
            paused=[EVIL],
        )
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'x=&quot;"' in html
    assert "<script>" not in signin_page(next_path=EVIL, error=EVIL)


def test_a_chart_leaves_gaps_where_there_is_no_value() -> None:
    svg = chart([1.0, 2.0, None, None, 3.0, 4.0], label="l", unit="/s", name="n")
    assert svg.count("<polyline") == 2
    assert 'data-figure="n-latest">4<' in svg
    empty = chart([None, None], label="l", unit="ms", name="n")
    assert "<polyline" not in empty
    assert 'data-figure="n-latest">-<' in empty
