"""``notifyq preview FILE``: the preview of a batch file, as a table or JSON; bad input exits 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifyq.cli import main

BATCH = {
    "channel": "sms",
    "from": "+15005550006",
    "smart_encoded": True,
    "body": "Hi {name} \u2014 your code\u2019s {code}",
    "recipients": [
        {"to": "+14155550101", "vars": {"name": "Ann", "code": "123"}},
        {"to": "+447400123456", "vars": {"name": "Zo\u00eb", "code": "456"}},
        {"to": "+33612345678", "vars": {"name": "Jo", "code": "789"}},
        "+14155550101",
    ],
}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("NOTIFYQ_") and not v.startswith("NOTIFYQ_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTIFYQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOTIFYQ_PRICING__SMS", '{"US": "0.0083", "GB": "0.0524", "default": "0.07"}')
    return CliRunner()


def _file(tmp_path: Path, batch: object) -> str:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch), encoding="utf-8")
    return str(path)


def test_json_is_the_api_answer(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["preview", _file(tmp_path, BATCH), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [(r["country"], r["segments"], r["encoding"], r["price"]) for r in answer["recipients"]] == [
        ("US", 1, "GSM-7", "0.0083"),  # smart-encoded: the dash and the apostrophe are replaced
        ("GB", 1, "UCS-2", "0.0524"),  # e-diaeresis has no GSM-7 form
        ("FR", 1, "GSM-7", "0.07"),
    ]
    assert (answer["total"], answer["duplicates_dropped"], answer["price"]) == (3, 1, "0.1307")
    assert not (tmp_path / "data").exists()  # offline: no database, no Redis


def test_the_table_shows_the_batch_and_the_rest_counted(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["preview", _file(tmp_path, BATCH), "--show", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == [
        "sms to 3 recipient(s), 1 duplicate(s) dropped",
        "smart encoding: on",
        "segments: 3 (2 GSM-7, 1 UCS-2)",
        "price: 0.1307 USD",
    ]
    assert lines[-1] == "... and 2 more"
    assert sum("+14155550101" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        (json.dumps(BATCH | {"smart_encoded": "yes"}), "smart_encoded: must be true or false"),
        (json.dumps(BATCH | {"recipients": ["+1 nope"]}), "recipients[0]"),
    ],
)
def test_bad_input_exits_2(runner: CliRunner, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(main, ["preview", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
