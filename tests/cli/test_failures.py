"""`notifyq failures`: what failed and why, read from a seeded data directory's store, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from notifyq import classify
from notifyq import statuses as st
from notifyq.cli import main
from notifyq.cli.failures import NO_CODE, UNKNOWN, meaning, parse_since, render
from notifyq.ids import new_ids
from notifyq.intake.phones import mask_number, mask_numbers_in
from notifyq.store import Store
from notifyq.store.schema import deliveries

MAIN_SID, OTHER_SID = "AC" + "1" * 32, "AC" + "2" * 32
HOUR = 3600.0


@dataclass(frozen=True)
class Seeded:
    data_dir: Path
    main_batch: str
    other_batch: str
    numbers: list[str]  # every recipient, failed or not: none may be printed whole


def _batch(bid: str, account: str, sid: str) -> dict[str, Any]:
    return {
        "id": bid, "created_at": 1.0, "idempotency_key": None, "channel": "sms", "account": account,
        "account_sid": sid, "sender": "+15005550006", "messaging_service_sid": None, "priority": "bulk",
        "content": {}, "send_at": None, "valid_until": 4e9, "total": 0, "duplicates_dropped": 0, "meta": None,
    }  # fmt: skip


async def _seed(url: str, batches: list[tuple[dict[str, Any], list[tuple[str, str, int | None, float]]]]) -> None:
    store = await Store.open(url)
    try:
        for batch, rows in batches:
            ids = new_ids(len(rows))
            await store.create_batch(batch, [[(d, to, None) for d, (to, *_) in zip(ids, rows, strict=True)]])
            async with store.engine.begin() as conn:
                for delivery_id, (to, status, code, at) in zip(ids, rows, strict=True):
                    await conn.execute(
                        update(deliveries)
                        .where(deliveries.c.id == delivery_id)
                        .values(
                            status=status,
                            status_rank=st.rank("sms", status),
                            error_code=code,
                            error_message=f"error {code} for {to}" if code else "no answer to 3 attempts",
                            updated_at=at,
                            final_at=at,
                        )
                    )
    finally:
        await store.close()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("NOTIFYQ_") and not v.startswith("NOTIFYQ_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTIFYQ_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


@pytest.fixture
def seeded(runner: CliRunner, tmp_path: Path) -> Seeded:
    del runner  # for its environment
    now = time.time()
    main_batch, other_batch = new_ids(2)
    main_rows = [
        ("+14155550100", st.UNDELIVERED, 30003, now - 600),
        ("+14155550101", st.UNDELIVERED, 30003, now - 500),
        ("+14155550102", st.UNDELIVERED, 30003, now - 400),
        ("+447700900123", st.FAILED, 21211, now - 2 * HOUR),
        ("+14155550103", st.FAILED, None, now - 300),
        ("+14155550104", "delivered", None, now - 200),
        ("+14155550105", st.EXPIRED, None, now - 100),
    ]
    other_rows = [
        ("+14155550200", st.UNDELIVERED, 30003, now - 3 * HOUR),
        ("+14155550201", st.FAILED, 30550, now - 50),  # in a range of the table
        ("+14155550202", st.UNDELIVERED, 99999, now - 40),  # in no entry of the table
    ]
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'notifyq.db'}"
    asyncio.run(
        _seed(
            url,
            [(_batch(main_batch, "main", MAIN_SID), main_rows), (_batch(other_batch, "other", OTHER_SID), other_rows)],
        )
    )
    return Seeded(tmp_path / "data", main_batch, other_batch, [r[0] for r in main_rows + other_rows])


def _json(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(main, ["failures", "--json", *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def _codes(report: dict[str, Any]) -> list[tuple[int | None, int]]:
    return [(g["error_code"], g["count"]) for g in report["groups"]]


# ---- the table and the JSON object ---------------------------------------------------------------------------


def test_the_table_lists_each_code_with_its_meaning_most_first(runner: CliRunner, seeded: Seeded) -> None:
    result = runner.invoke(main, ["failures"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "8 failed or undelivered deliveries"
    rows = [line.split()[:2] for line in lines if line[:7].strip().isdigit()]
    assert rows == [["4", "30003"], ["1", "21211"], ["1", "30550"], ["1", "99999"], ["1", "-"]]
    reason_30003 = classify.CODES[30003][1]
    assert f"retry          {reason_30003}" in result.output
    for shown in ("+1•••0100", "+44•••0123", UNKNOWN, NO_CODE):
        assert shown in result.output
    for number in seeded.numbers:
        assert number not in result.output


def test_json_is_one_object_with_filters_total_and_groups(runner: CliRunner, seeded: Seeded) -> None:
    report = _json(runner)
    assert set(report) == {"filters", "total", "groups"}
    assert report["filters"] == {"batch_id": None, "since": None, "account": None, "error_codes": []}
    assert report["total"] == 8 == sum(g["count"] for g in report["groups"])
    by_code = {g["error_code"]: g for g in report["groups"]}
    top = report["groups"][0]
    assert set(top) == {"error_code", "meaning", "action", "known", "count", "examples", "batch_count", "batch_ids"}
    assert (top["error_code"], top["action"], top["known"]) == (30003, "retry", True)
    assert (top["batch_ids"], top["batch_count"]) == ([seeded.main_batch, seeded.other_batch], 2)
    assert [e["to"] for e in top["examples"]] == ["+1•••0102", "+1•••0101", "+1•••0100"]  # latest first
    assert set(top["examples"][0]) == {"to", "delivery_id", "batch_id", "status", "error_message", "at"}
    assert (by_code[30550]["action"], by_code[30550]["meaning"]) == ("fail", classify.CODE_RANGES[0][2])
    assert (by_code[99999]["known"], by_code[99999]["action"], by_code[99999]["meaning"]) == (False, "-", UNKNOWN)
    assert by_code[None]["examples"][0]["error_message"] == "no answer to 3 attempts"
    assert top["examples"][0]["error_message"] == "error 30003 for +1•••0102"  # Twilio's messages name the number
    for number in seeded.numbers:
        assert number not in json.dumps(report)


# ---- filters -------------------------------------------------------------------------------------------------


def test_a_batch_id_keeps_that_batch(runner: CliRunner, seeded: Seeded) -> None:
    report = _json(runner, seeded.other_batch)
    assert report["filters"]["batch_id"] == seeded.other_batch
    assert _codes(report) == [(30003, 1), (30550, 1), (99999, 1)]


def test_since_keeps_the_recent_ones(runner: CliRunner, seeded: Seeded) -> None:
    report = _json(runner, "--since", "1h")
    assert _codes(report) == [(30003, 3), (30550, 1), (99999, 1), (None, 1)]
    assert datetime.fromisoformat(report["filters"]["since"]) < datetime.now(UTC)
    older = _json(runner, "--since", (datetime.now(UTC) - timedelta(hours=2.5)).isoformat())
    assert _codes(older) == [(30003, 3), (21211, 1), (30550, 1), (99999, 1), (None, 1)]


def test_an_account_is_its_name_or_sid(runner: CliRunner, seeded: Seeded) -> None:
    by_name = _json(runner, "--account", "main")
    assert _codes(by_name) == [(30003, 3), (21211, 1), (None, 1)]
    assert _codes(_json(runner, "--account", OTHER_SID)) == [(30003, 1), (30550, 1), (99999, 1)]


def test_error_codes_and_the_number_of_examples(runner: CliRunner, seeded: Seeded) -> None:
    report = _json(runner, "--error-code", "30003", "--error-code", "21211", "--limit-examples", "1")
    assert report["filters"]["error_codes"] == [30003, 21211]
    assert _codes(report) == [(30003, 4), (21211, 1)]
    assert [len(g["examples"]) for g in report["groups"]] == [1, 1]
    assert _json(runner, "--limit-examples", "0")["groups"][0]["examples"] == []


def test_filters_are_named_in_the_headline(runner: CliRunner, seeded: Seeded) -> None:
    result = runner.invoke(main, ["failures", seeded.main_batch, "--account", "main", "--error-code", "30003"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"3 failed or undelivered deliveries (batch id {seeded.main_batch}; account main; error codes 30003)"
    )


# ---- nothing to show, bad input ------------------------------------------------------------------------------


def test_no_failures_is_said_and_exits_0(runner: CliRunner) -> None:
    result = runner.invoke(main, ["failures"])
    assert (result.exit_code, result.output) == (0, "no failures\n")
    assert _json(runner) == {
        "filters": {"batch_id": None, "since": None, "account": None, "error_codes": []},
        "total": 0,
        "groups": [],
    }


def test_filters_that_match_nothing_say_so(runner: CliRunner, seeded: Seeded) -> None:
    result = runner.invoke(main, ["failures", "--error-code", "30007"])
    assert (result.exit_code, result.output) == (0, "no failures (error codes 30007)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "neither a span back from now"),
        (["--since", "5y"], "neither a span back from now"),
        (["--since", "99999999999d"], "before the year 1"),
        (["--error-code", "30003x"], "not a valid integer"),
        (["--limit-examples", "-1"], "-1"),
        (["--account", "nobody"], "no account 'nobody'"),
        ([new_ids(1)[0]], "no batch"),
    ],
)
def test_bad_input_exits_2_with_a_message(runner: CliRunner, seeded: Seeded, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["failures", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# ---- the parts -------------------------------------------------------------------------------------------------


def test_since_reads_spans_and_iso_times() -> None:
    now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("1h", now=now) == now - timedelta(hours=1)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since(" 1w ", now=now) == now - timedelta(weeks=1)
    assert parse_since("2026-12-07T15:00:00", now=now) == datetime(2026, 12, 7, 15, tzinfo=UTC)  # naive: UTC
    assert parse_since("2026-12-07T15:00:00+01:00", now=now) == datetime(2026, 12, 7, 14, tzinfo=UTC)
    for bad in ("", "1", "h", "-1h", "1.5h", "1 hour"):
        with pytest.raises(click.BadParameter):
            parse_since(bad, now=now)


def test_meaning_comes_from_the_classification_table() -> None:
    assert meaning(21211) == (classify.CODES[21211][1], "fail", True)
    assert meaning(21610) == (classify.CODES[21610][1], "suppress", True)
    assert meaning(30599) == (classify.CODE_RANGES[0][2], "fail", True)
    assert meaning(30600) == (UNKNOWN, "-", False)
    assert meaning(None) == (NO_CODE, "-", False)


def test_render_bounds_the_batches_it_names() -> None:
    group = {
        "error_code": 30003, "meaning": "m", "action": "retry", "known": True, "count": 9, "examples": [],
        "batch_count": 7, "batch_ids": ["b1", "b2"],
    }  # fmt: skip
    text = render({"filters": {}, "total": 9, "groups": [group]})
    assert "batches b1, b2 and 5 more" in text
    assert "e.g." not in text


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550100", "+1•••0100"),  # country code 1, the last 4
        ("+447700900123", "+44•••0123"),
        ("+353861234567", "+353•••4567"),  # a 3-digit country code
        ("+35312345", "+353•••45"),  # short: at least 3 digits stay hidden
        ("+4915", "+49•••"),
        ("whatsapp:+14155550100", "whatsapp:+1•••0100"),
        ("client:alice", "client:•••ce"),
        ("+999123456789", "•••6789"),  # no such country code: nothing read as one
        ("", "•••"),
    ],
)
def test_a_number_is_masked_to_its_country_code_and_last_digits(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_numbers_in_a_message_are_masked() -> None:
    text = "The 'To' number +15005550001 is not a valid phone number. (+447700900123, +4412)"
    assert mask_numbers_in(text) == "The 'To' number +1•••0001 is not a valid phone number. (+44•••0123, +4412)"
    assert mask_numbers_in("queue overflow") == "queue overflow"
