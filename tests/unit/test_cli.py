"""The CLI refuses bad input with a message and exit code 2, and does not start anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from notifyq.ops.cli import main


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("NOTIFYQ_REDIS_URL", "NOTIFYQ_DATABASE_URL", "NOTIFYQ_TWILIO__ACCOUNTS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulator", "--rate-429", "2"], "share between 0 and 1"),
        (["simulator", "--port", "not-a-port"], "not-a-port"),
        (["worker"], "NOTIFYQ_REDIS_URL"),
        (["applier"], "NOTIFYQ_REDIS_URL"),
        (["status"], "NOTIFYQ_REDIS_URL"),
        (["requeue"], "NOTIFYQ_REDIS_URL"),
        (["replay", "01abc"], "NOTIFYQ_REDIS_URL"),
        (["demo", "--messages", "0"], "0"),
        (["no-such-command"], "No such command"),
        (["callbacks", "dead", "list"], "NOTIFYQ_REDIS_URL"),
        (["callbacks", "dead", "retry"], "NOTIFYQ_REDIS_URL"),
        (["callbacks", "dead", "drop"], "give the IDs"),
        (["callbacks", "dead", "drop", "--all", "1-0"], "not both"),
        (["callbacks", "dead", "retry", "--all", "1-0"], "not both"),
        (["callbacks", "dead", "retry", "1-0", "abc"], "not a stream entry id"),
        (["callbacks", "dead", "drop", "1700000000000"], "not a stream entry id"),
        (["callbacks", "dead", "list", "--limit", "0"], "0"),
    ],
)
def test_bad_input_exits_2_with_a_message(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_invalid_settings_are_a_usage_error(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("NOTIFYQ_WORKER__MAX_JOBS", "lots")
    result = runner.invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "invalid NOTIFYQ_ settings" in result.output
    assert "max_jobs" in result.output


def test_resume_refuses_an_unknown_account(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    result = runner.invoke(main, ["accounts", "resume", "AC" + "1" * 32])
    assert result.exit_code == 2
    assert "no configured account" in result.output


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in (
        "api",
        "applier",
        "worker",
        "simulator",
        "demo",
        "status",
        "requeue",
        "replay",
        "accounts",
        "callbacks",
    ):
        assert command in result.output


@pytest.mark.parametrize("batch_id", ["06h50p4232e0gb4krcjbbet6", "no such id", "a\udcffb"])
def test_status_of_a_batch_that_does_not_exist_exits_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, redis_server: str, tmp_path: Path, batch_id: str
) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", redis_server)
    monkeypatch.setenv("NOTIFYQ_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}")
    result = runner.invoke(main, ["status", batch_id])
    assert result.exit_code == 2, result.output
    assert "no batch" in result.output
