"""``notifyq tokens create|list|revoke``: a token shown once, listed without it, revoked; bad input exits 2."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from notifyq.cli import main
from notifyq.store import Store
from notifyq.store.schema import api_tokens
from notifyq.testing import ACCOUNT_SID, AUTH_TOKEN
from notifyq.tokens import parse, secret_hash


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("NOTIFYQ_") and not v.startswith("NOTIFYQ_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTIFYQ_DATA_DIR", str(tmp_path / "data"))
    accounts = {"main": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}}
    monkeypatch.setenv("NOTIFYQ_TWILIO__ACCOUNTS", json.dumps(accounts))
    return CliRunner()


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'notifyq.db'}")
        try:
            async with store.engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(select(api_tokens))]
        finally:
            await store.close()

    return asyncio.run(read())


def _create(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(main, ["tokens", "create", *args, "--json"])
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.output)
    return created


def test_create_shows_the_token_once_and_stores_only_its_hash(runner: CliRunner, tmp_path: Path) -> None:
    created = _create(
        runner,
        "billing",
        "--scope",
        "submit",
        "--scope",
        "read",
        "--account",
        "main",
        "--rate",
        "2.5",
        "--daily",
        "100",
    )
    parsed = parse(created["token"])
    assert parsed is not None
    assert parsed[0] == created["id"]
    assert (created["scopes"], created["accounts"], created["rate"], created["burst"]) == (
        ["submit", "read"],
        ["main"],
        2.5,
        3,  # the rate rounded up, when no burst is given
    )
    assert (created["daily"], created["monthly"], created["revoked_at"]) == (100, None, None)
    [row] = _rows(tmp_path)
    assert row["secret_hash"] == secret_hash(parsed[1])
    assert created["token"] not in repr(row)
    assert parsed[1] not in repr(row)


def test_create_as_text_says_it_is_shown_once(runner: CliRunner) -> None:
    result = runner.invoke(main, ["tokens", "create", "ops team", "--scope", "ops"])
    assert result.exit_code == 0, result.output
    assert "token: nq_" in result.output
    assert "shown this once" in result.output


def test_list_never_shows_a_token_and_revoke_marks_it(runner: CliRunner) -> None:
    first = _create(runner, "first", "--scope", "read")
    second = _create(runner, "second", "--scope", "submit", "--monthly", "5000")
    listed = json.loads(runner.invoke(main, ["tokens", "list", "--json"]).output)
    assert [t["name"] for t in listed] == ["first", "second"]
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    text = runner.invoke(main, ["tokens", "list"]).output
    assert first["token"] not in text
    assert second["token"] not in text
    assert "2 token(s)" in text
    result = runner.invoke(main, ["tokens", "revoke", first["id"]])
    assert (result.exit_code, result.output.strip()) == (0, f"revoked {first['id']}")
    listed = {t["id"]: t for t in json.loads(runner.invoke(main, ["tokens", "list", "--json"]).output)}
    assert listed[first["id"]]["revoked_at"] is not None
    assert listed[second["id"]]["revoked_at"] is None
    again = runner.invoke(main, ["tokens", "revoke", first["id"]])
    assert again.exit_code == 2
    assert "no active token" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "x"], "Missing option '--scope'"),
        (["create", "x", "--scope", "admin"], "'admin' is not one of"),
        (["create", "", "--scope", "read"], "1 to 100 printable characters"),
        (["create", "a\nb", "--scope", "read"], "1 to 100 printable characters"),
        (["create", "x" * 101, "--scope", "read"], "1 to 100 printable characters"),
        (["create", "x", "--scope", "submit", "--account", "nowhere"], "no configured account nowhere"),
        (["create", "x", "--scope", "read", "--rate", "0"], "--rate"),
        (["create", "x", "--scope", "read", "--rate", "fast"], "--rate"),
        (["create", "x", "--scope", "read", "--burst", "5"], "--burst needs --rate"),
        (["create", "x", "--scope", "read", "--rate", "1", "--burst", "0"], "--burst"),
        (["create", "x", "--scope", "read", "--daily", "0"], "--daily"),
        (["create", "x", "--scope", "read", "--monthly", "-1"], "--monthly"),
        (["revoke", "not-an-id"], "12 hex characters"),
        (["revoke", "0123456789ab"], "no active token 0123456789ab"),
        (["revoke"], "Missing argument 'ID'"),
    ],
)
def test_bad_input_exits_2_with_a_message(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["tokens", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if args[0] == "create":
        assert not (tmp_path / "data" / "notifyq.db").exists() or _rows(tmp_path) == []
