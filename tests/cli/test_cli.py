"""The CLI refuses bad input with a message and exit code 2, reports a fault in one line with exit code 1,
and never prints a traceback or any part of a secret."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notifyq import simulator
from notifyq.cli import commands, main, runtime
from notifyq.testing import free_port

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "Tq8vLm2ZrW9xKc4NbY7pHs3JdF6gAe5U"  # made up: no output may show any part of it
REDIS_PASSWORD = "Rx4kP9zQw2"
DATABASE_PASSWORD = "Dv7nM3tLs8"
SECRETS = (AUTH_TOKEN, REDIS_PASSWORD, DATABASE_PASSWORD)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("NOTIFYQ_") and not v.startswith("NOTIFYQ_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTIFYQ_DATA_DIR", str(tmp_path / "data"))  # never the working directory's
    return CliRunner()


def _fragments(secret: str, size: int = 6) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        shown = {f for f in _fragments(secret) if f in text}
        assert not shown, f"{shown} of a secret in: {text}"


def assert_one_line(result: Result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]
    assert_no_secret(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulator", "--rate-429", "2"], "share between 0 and 1"),
        (["simulator", "--port", "not-a-port"], "not-a-port"),
        (["demo", "--messages", "0"], "0"),
        (["no-such-command"], "No such command"),
        (["callbacks", "dead", "drop"], "give the IDs"),
        (["callbacks", "dead", "drop", "--all", "1-0"], "not both"),
        (["callbacks", "dead", "retry", "--all", "1-0"], "not both"),
        (["callbacks", "dead", "retry", "1-0", "abc"], "not a stream entry id"),
        (["callbacks", "dead", "drop", "1700000000000"], "not a stream entry id"),
        (["callbacks", "dead", "list", "--limit", "0"], "0"),
        (["twilio", "messages", "get", "SMnope"], "SM followed by 32 hex digits"),
        (["twilio", "calls", "get", "SM" + "0" * 32], "CA followed by 32 hex digits"),
        (["twilio", "connect-app", "update", "CN" + "0" * 32], "nothing to update"),
        (["twilio", "request", "PATCH", "/Accounts.json"], "PATCH"),
        (["twilio", "messages", "list", "--limit", "0"], "0"),
        (["purge"], "give --older-than"),
        (["purge", "--older-than", "soon"], "not a span"),
        (["purge", "--older-than", "30m"], "under an hour"),
    ],
)
def test_bad_input_exits_2_with_a_message(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"a": {"rate": 5, "senders": ["+14155550100"]}, "b": {"rate": 3, "senders": ["+14155550100"]}},
         "sender '+14155550100' is in two groups, 'a' and 'b'"),
        ({"a": {"rate": 0, "senders": ["+14155550100"]}}, "pacing.groups.a.rate: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_bad_sender_groups_stop_a_process_at_start(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, groups: dict[str, object], message: str
) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("NOTIFYQ_PACING__GROUPS", json.dumps(groups))
    result = runner.invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "invalid NOTIFYQ_ settings" in result.output
    assert message in result.output


def test_invalid_settings_are_a_usage_error(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("NOTIFYQ_WORKER__MAX_JOBS", "lots")
    result = runner.invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "invalid NOTIFYQ_ settings" in result.output
    assert "max_jobs" in result.output
    assert "Traceback" not in result.output


def _account(**fields: str) -> str:
    # the token last, where pydantic's shortened input_value shows the most of it
    return json.dumps({"main": {"account_sid": ACCOUNT_SID, **fields, "auth_token": AUTH_TOKEN}})


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        # an API key SID without its secret: pydantic's message used to echo the account, token and all
        ("NOTIFYQ_TWILIO__ACCOUNTS", _account(api_key_sid="SK" + "2" * 32), "api_key_sid and api_key_secret"),
        ("NOTIFYQ_TWILIO__ACCOUNTS", _account(account_sid="AC-not-a-sid"), "account_sid"),
        ("NOTIFYQ_TWILIO__ACCOUNTS", _account(max_in_flight="lots"), "max_in_flight"),
        ("NOTIFYQ_TWILIO__ACCOUNTS", '{"main": {"auth_token": "' + AUTH_TOKEN + '"', "twilio"),  # not JSON
        ("NOTIFYQ_API__TOKENS", f'["{AUTH_TOKEN}", 7]', "tokens"),
        ("NOTIFYQ_REDIS_URL", f"http://:{REDIS_PASSWORD}@127.0.0.1:1/0", "redis_url"),
        ("NOTIFYQ_DATABASE_URL", f"mysql://root:{DATABASE_PASSWORD}@127.0.0.1/notifyq", "database_url"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["worker"], ["migrate"]])
def test_a_settings_error_shows_no_part_of_a_secret(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str], variable: str, value: str, reason: str
) -> None:
    if variable != "NOTIFYQ_TWILIO__ACCOUNTS":
        monkeypatch.setenv("NOTIFYQ_TWILIO__ACCOUNTS", _account())
    monkeypatch.setenv(variable, value)
    result = runner.invoke(main, command)
    assert result.exit_code == 2, result.output
    assert "invalid NOTIFYQ_ settings" in result.output
    assert reason in result.output
    assert "Traceback" not in result.output
    assert_no_secret(result.output)


def test_resume_refuses_an_unknown_account(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    result = runner.invoke(main, ["accounts", "resume", "AC" + "1" * 32])
    assert result.exit_code == 2
    assert "no account" in result.output


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    commands = (
        "api",
        "applier",
        "worker",
        "migrate",
        "simulator",
        "demo",
        "status",
        "requeue",
        "purge",
        "replay",
        "failures",
        "accounts",
        "callbacks",
        "twilio",
        "preview",
    )
    for command in commands:
        assert command in result.output


def test_the_simulator_command_tunes_the_process_once_it_serves(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the simulator package knows nothing of process tuning: its command hands it the hook
    given: dict[str, object] = {}

    async def fake_run(cfg: object, host: str, port: int, *, ready: object = None) -> None:
        given.update(host=host, port=port, ready=ready)

    monkeypatch.setattr(simulator, "run", fake_run)
    monkeypatch.setattr(commands, "serve", asyncio.run)
    result = runner.invoke(main, ["simulator", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert given == {"host": "127.0.0.1", "port": 8123, "ready": runtime.freeze_heap}


OPERATOR_COMMANDS = [
    ["status"],
    ["status", "01jdzzzzzzzzzzzzzzzzzzzzzz"],
    ["requeue"],
    ["requeue", "--dry-run"],
    ["replay", "01jdzzzzzzzzzzzzzzzzzzzzzz"],
    ["accounts", "resume", ACCOUNT_SID],
    ["callbacks", "dead", "list"],
    ["callbacks", "dead", "retry"],
    ["callbacks", "dead", "drop", "--all"],
]


@pytest.mark.parametrize("args", OPERATOR_COMMANDS)
def test_without_redis_url_or_a_running_api_an_operator_command_says_so(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, args, env={"NOTIFYQ_TWILIO__ACCOUNTS": _account()})
    assert_one_line(result, 1, "no `notifyq api` runs an embedded Redis", "NOTIFYQ_REDIS_URL")


# a replay of a batch that is not there is refused before Redis is needed
@pytest.mark.parametrize("args", [a for a in OPERATOR_COMMANDS if a[0] != "replay"])
def test_redis_down_is_a_one_line_fault_naming_redis(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    env = {
        "NOTIFYQ_REDIS_URL": url,
        "NOTIFYQ_DATABASE_URL": f"sqlite:///{tmp_path / 'notifyq.db'}",  # the driver is implied
        "NOTIFYQ_TWILIO__ACCOUNTS": _account(),
    }
    result = runner.invoke(main, args, env=env)
    assert_one_line(result, 1, "Redis unreachable at redis://:***@127.0.0.1:")


@pytest.mark.parametrize("args", [a for a in OPERATOR_COMMANDS if a[0] not in ("accounts", "callbacks")])  # Redis only
def test_database_down_is_a_one_line_fault_naming_the_database(
    runner: CliRunner, redis_server: str, args: list[str]
) -> None:
    port = free_port()
    env = {
        "NOTIFYQ_REDIS_URL": redis_server,
        "NOTIFYQ_DATABASE_URL": f"postgres://notifyq:{DATABASE_PASSWORD}@127.0.0.1:{port}/notifyq",
        "NOTIFYQ_TWILIO__ACCOUNTS": _account(),
    }
    result = runner.invoke(main, args, env=env)
    assert_one_line(result, 1, f"database unreachable at postgresql+asyncpg://notifyq:***@127.0.0.1:{port}/notifyq")


@pytest.mark.parametrize(
    "args", [["status", "nosuchbatch"], ["replay", "nosuchbatch"], ["replay", "nosuchbatch", "--dry-run"]]
)
def test_no_such_batch_is_bad_input(runner: CliRunner, redis_server: str, tmp_path: Path, args: list[str]) -> None:
    env = {"NOTIFYQ_REDIS_URL": redis_server, "NOTIFYQ_DATABASE_URL": f"sqlite:///{tmp_path / 'notifyq.db'}"}
    result = runner.invoke(main, args, env=env)
    assert_one_line(result, 2, "no batch 'nosuchbatch'")


def test_replay_of_a_status_that_is_not_final_is_bad_input(
    runner: CliRunner, redis_server: str, tmp_path: Path
) -> None:
    env = {"NOTIFYQ_REDIS_URL": redis_server, "NOTIFYQ_DATABASE_URL": f"sqlite:///{tmp_path / 'notifyq.db'}"}
    result = runner.invoke(main, ["replay", "nosuchbatch", "--status", "queued"], env=env)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["replay", "--since", "yesterday"], "--since"),
        (["replay", "--until", "soon"], "--until"),
        (["replay", "--error-code", "x"], "--error-code"),
        (["replay", "--status", "delivered"], "reached its recipient"),
        (["replay", "--status", "suppressed"], "opted out"),
        (["replay", "--since", "1h", "--until", "2h"], "later than since"),
    ],
)
def test_a_replay_filter_that_could_send_to_the_wrong_people_is_bad_input(
    runner: CliRunner, tmp_path: Path, args: list[str], said: str
) -> None:
    env = {"NOTIFYQ_DATABASE_URL": f"sqlite:///{tmp_path / 'notifyq.db'}", "NOTIFYQ_TWILIO__ACCOUNTS": _account()}
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "Traceback" not in result.output


def test_status_on_a_reachable_empty_store_prints_the_queue(
    runner: CliRunner, redis_server: str, tmp_path: Path
) -> None:
    env = {"NOTIFYQ_REDIS_URL": redis_server, "NOTIFYQ_DATABASE_URL": f"sqlite:///{tmp_path / 'notifyq.db'}"}
    result = runner.invoke(main, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"queue_depth"' in result.output


def test_migrate_brings_a_fresh_database_to_head_and_says_where(runner: CliRunner, tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    env = {"NOTIFYQ_DATABASE_URL": f"sqlite:///{database}"}
    first = runner.invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert f"sqlite+aiosqlite:///{database} is at schema revision " in first.output
    again = runner.invoke(main, ["migrate"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output == first.output


def test_migrate_with_the_database_down_is_a_one_line_fault(runner: CliRunner) -> None:
    env = {"NOTIFYQ_DATABASE_URL": f"postgresql://u:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/notifyq"}
    result = runner.invoke(main, ["migrate"], env=env)
    assert_one_line(result, 1, "database unreachable at postgresql+asyncpg://u:***@127.0.0.1:")


@pytest.mark.postgres
def test_a_plain_postgresql_url_runs_on_asyncpg(runner: CliRunner, postgres_database: str) -> None:
    # the form platforms hand out (and its short alias): SQLAlchemy alone would look for psycopg
    for scheme in ("postgresql", "postgres"):
        url = postgres_database.replace("postgresql+asyncpg", scheme, 1)
        result = runner.invoke(main, ["migrate"], env={"NOTIFYQ_DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert "postgresql+asyncpg://" in result.output


@pytest.mark.parametrize("batch_id", ["06h50p4232e0gb4krcjbbet6", "no such id", "a\udcffb"])
def test_status_of_a_batch_that_does_not_exist_exits_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, redis_server: str, tmp_path: Path, batch_id: str
) -> None:
    monkeypatch.setenv("NOTIFYQ_REDIS_URL", redis_server)
    monkeypatch.setenv("NOTIFYQ_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}")
    result = runner.invoke(main, ["status", batch_id])
    assert result.exit_code == 2, result.output
    assert "no batch" in result.output
