"""``notifyq accounts``: the registry from the command line, against the simulator, in a process of its own."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from helpers.stack import settings_env
from notifyq.accounts import KEY_FILE
from notifyq.api.app import STATE
from notifyq.pacing import PacingAdmin
from notifyq.simulator import SimAccount, SimulatorConfig
from notifyq.testing import LocalStack

from .helpers import AC_TENANT, SK_SECRET, SK_TENANT, TENANT_TOKEN, accounts_stack, call


@pytest.fixture
async def stack(
    tmp_path: Path, redis_url: str, database_url: str, sim_config: SimulatorConfig
) -> AsyncIterator[LocalStack]:
    sim_config.accounts[AC_TENANT] = SimAccount(auth_token=TENANT_TOKEN, api_keys={SK_TENANT: SK_SECRET})
    async with accounts_stack(tmp_path, redis_url, database_url, sim_config) as s:
        yield s


async def _cli(stack: LocalStack, *args: str, stdin: str = "", **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyq",
        "accounts",
        *args,
        env={**settings_env(stack.settings), **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_add_list_show_pause_resume_remove(stack: LocalStack) -> None:
    sid = ["--account-sid", AC_TENANT, "--api-key-sid", SK_TENANT]
    code, out = await _cli(stack, "add", "tenant", "--kind", "api_key", *sid, "--secrets-from-stdin", "--json",
                           stdin=f"{TENANT_TOKEN}\n{SK_SECRET}\n")  # fmt: skip
    assert code == 0, out
    added = json.loads(out)
    assert (added["name"], added["kind"], added["api_key_sid"]) == ("tenant", "api_key", SK_TENANT)
    assert SK_SECRET not in out
    assert TENANT_TOKEN not in out
    code, out = await _cli(stack, "list", "--json")
    assert code == 0, out
    assert [(a["name"], a["source"], a["paused"]) for a in json.loads(out)] == [
        ("main", "settings", None),
        ("tenant", "registry", None),
    ]
    code, out = await _cli(stack, "pause", "tenant", "--reason", "invoice unpaid", "--json")
    assert (code, json.loads(out)["paused"]) == (0, "invoice unpaid")
    assert await PacingAdmin(stack.app[STATE].require_redis(), stack.settings).paused(AC_TENANT) == "invoice unpaid"
    code, out = await _cli(stack, "show", AC_TENANT)
    assert code == 0
    assert "invoice unpaid" in out
    assert SK_SECRET not in out
    code, out = await _cli(stack, "resume", "tenant")
    assert (code, out.strip()) == (0, f"resumed tenant ({AC_TENANT})")
    status, shown = await call(stack, "GET", "/v1/accounts/tenant")  # the API opens what the command sealed
    assert (status, shown["paused"]) == (200, None)
    code, out = await _cli(stack, "remove", "main")
    assert code == 2
    assert "configured in the environment" in out
    code, out = await _cli(stack, "remove", "tenant")
    assert (code, out.strip()) == (0, f"removed tenant ({AC_TENANT})")


async def test_add_says_why_twilio_refused_and_keeps_nothing(stack: LocalStack) -> None:
    code, out = await _cli(
        stack, "add", "tenant", "--account-sid", AC_TENANT, NOTIFYQ_ADD_AUTH_TOKEN="a-wrong-token-0000"
    )
    assert code == 2
    assert "Twilio does not accept the AccountSid and its Auth Token" in out
    assert "a-wrong-token-0000" not in out
    code, out = await _cli(stack, "show", "tenant")
    assert code == 2
    assert "no account 'tenant'" in out


async def test_secrets_are_never_taken_from_the_command_line(stack: LocalStack) -> None:
    code, out = await _cli(stack, "add", "tenant", "--account-sid", AC_TENANT, "--auth-token", TENANT_TOKEN)
    assert code == 2
    assert "No such option" in out
    code, out = await _cli(stack, "add", "tenant", "--account-sid", AC_TENANT)  # no terminal, no env, no stdin
    assert code == 2
    assert "NOTIFYQ_ADD_AUTH_TOKEN" in out


async def test_the_secret_key_rotates_with_reseal(stack: LocalStack) -> None:
    """NOTIFYQ_SECRET_KEY="NEW,OLD": the first seals, any opens; `reseal` moves every account to NEW."""
    code, out = await _cli(stack, "add", "tenant", "--kind", "auth_token", "--account-sid", AC_TENANT,
                           "--secrets-from-stdin", stdin=f"{TENANT_TOKEN}\n")  # fmt: skip
    assert code == 0, out
    old = (stack.settings.data_dir / KEY_FILE).read_text().strip()  # the key kept on the embedded defaults
    new = Fernet.generate_key().decode()
    code, out = await _cli(stack, "show", "tenant", NOTIFYQ_SECRET_KEY=new)
    assert code != 0, out  # sealed with the old key: the new one alone cannot open it
    assert old not in out
    assert new not in out
    code, out = await _cli(stack, "reseal", "--json", NOTIFYQ_SECRET_KEY=f"{new},{old}")
    assert (code, json.loads(out)) == (0, {"resealed": 1}), out
    code, out = await _cli(stack, "show", "tenant", "--json", NOTIFYQ_SECRET_KEY=new)
    assert code == 0, out
    assert json.loads(out)["account_sid"] == AC_TENANT
    code, out = await _cli(stack, "reseal", NOTIFYQ_SECRET_KEY="not-a-key")
    assert code == 2
    assert "not a Fernet key" in out


async def test_sender_groups_set_list_remove_and_refuse_a_number_in_two(stack: LocalStack) -> None:
    code, out = await _cli(stack, "add", "tenant", "--account-sid", AC_TENANT, NOTIFYQ_ADD_AUTH_TOKEN=TENANT_TOKEN)
    assert code == 0, out
    a, b = "+14155550100", "+14155550101"
    code, out = await _cli(stack, "senders", "tenant", "set", "campaign", "--rate", "12", "--sender", a,
                           "--sender", b, "--json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out) == {"account": "tenant", "sender_groups": {"campaign": {"rate": 12.0, "senders": [a, b]}}}
    code, out = await _cli(stack, "senders", "tenant", "set", "other", "--rate", "3", "--sender", b)
    assert code == 2
    assert f"sender '{b}' is in two groups, 'campaign' and 'other'" in out
    code, out = await _cli(stack, "senders", "tenant", "set", "other", "--rate", "0", "--sender", "+14155550102")
    assert code == 2
    assert "sender group 'other': rate: Input should be greater than 0" in out
    code, out = await _cli(stack, "senders", "tenant", "list")
    assert (code, out.split()) == (0, ["campaign", "12/s", a, b])
    code, out = await _cli(stack, "senders", "main", "list", "--json")  # an environment account: none kept
    assert (code, json.loads(out)["sender_groups"]) == (0, {})
    code, out = await _cli(stack, "senders", "tenant", "remove", "campaign", "--json")
    assert (code, json.loads(out)["sender_groups"]) == (0, {})
    code, out = await _cli(stack, "senders", "tenant", "remove", "campaign")
    assert code == 2
    assert "no sender group 'campaign'" in out
