"""No secret anywhere: a batch runs with distinctive credentials and tokens, and no log line, stored event or
row, metric, API answer, command output or error message holds any part of them.

"Any part": every run of ``PART`` characters of each secret is looked for, so a secret cut short or
masked only at its end is caught too.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from helpers import notifyq_process, run_cli, settings_env, wait_until
from notifyq.client import Client
from notifyq.settings import TwilioAccount
from notifyq.simulator import SimAccount, SimulatorConfig
from notifyq.testing import ACCOUNT_SID, local_stack

PART = 8
AUTH_TOKEN = "AuthTok" + "9f3b1c7e5a2d4068" * 2
KEY_SID = "SK" + "7a" * 16
KEY_SECRET = "KeySecr" + "e1d2c3b4a5968778" * 2
PRODUCER_TOKEN = "ProdTok" + "0c9d8e7f6a5b4c3d" * 2
SECRETS = (AUTH_TOKEN, KEY_SECRET, PRODUCER_TOKEN)


def _leaks(text: str) -> list[str]:
    """The parts of a secret found in ``text``."""
    return [s[i : i + PART] for s in SECRETS for i in range(len(s) - PART + 1) if s[i : i + PART] in text]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Secrets would reach the store through the same code on either database: SQLite is enough here."""
    return f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"


async def test_no_part_of_a_secret_is_anywhere(
    tmp_path: Path, redis_url: str, database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    sim = SimulatorConfig(accounts={ACCOUNT_SID: SimAccount(auth_token=AUTH_TOKEN, api_keys={KEY_SID: KEY_SECRET})})
    account = TwilioAccount(
        account_sid=ACCOUNT_SID,
        auth_token=SecretStr(AUTH_TOKEN),
        api_key_sid=KEY_SID,
        api_key_secret=SecretStr(KEY_SECRET),
    )
    seen: list[str] = []
    async with local_stack(
        data_dir=tmp_path,
        redis_url=redis_url,
        database_url=database_url,
        sim_config=sim,
        run_worker=False,
        api={"tokens": [SecretStr(PRODUCER_TOKEN)]},
        twilio={"accounts": {"main": account}},
        log_level="debug",
    ) as stack:
        env = settings_env(stack.settings) | {
            "NOTIFYQ_API__TOKENS": f'["{PRODUCER_TOKEN}"]',
            "NOTIFYQ_LOG_LEVEL": "debug",
        }
        async with Client(stack.api_url, token=PRODUCER_TOKEN) as client:
            # delivered, refused at create (21211), and a call
            batch = {
                "channel": "sms",
                "from": "+15005550006",
                "body": "hello {{name}}",
                "recipients": [{"to": f"+1415555{i:04d}", "vars": {"name": "x"}} for i in range(100, 110)]
                + [{"to": "+15005550001", "vars": {"name": "y"}}],
            }
            accepted = await client.submit(batch)
            async with notifyq_process("worker", env=env) as worker:
                await wait_until(lambda: len(stack.simulator.messages) >= 10, "the batch sent", timeout_s=60)  # type: ignore[union-attr]

                async def done() -> bool:
                    await stack.inbox.drain()
                    return bool((await client.batch(accepted["id"]))["done"])

                await wait_until(done, "every delivery final", timeout_s=60)
                assert await worker.stop() == 0
                seen += worker.lines
            seen.append(repr(await client.batch(accepted["id"])))
            seen.append(repr(await client.deliveries(accepted["id"])))
        store = stack.worker_app.store
        for row in await store.list_deliveries(accepted["id"], limit=100):
            seen.append(repr(row))
            seen.append(repr(await store.events(row.id)))
        async with aiohttp.ClientSession() as session:
            for path, headers in [
                ("/metrics", {}),
                ("/metrics/cluster", {}),
                ("/healthz", {}),
                ("/v1/batches/nope", {"Authorization": "Bearer " + PRODUCER_TOKEN[:-1]}),  # a token almost right
                (f"/v1/batches/{accepted['id']}", {"Authorization": "Bearer " + PRODUCER_TOKEN[::-1]}),
            ]:
                async with session.get(stack.api_url + path, headers=headers) as resp:
                    seen.append(f"{resp.status} {dict(resp.headers)} {await resp.text()}")
        for args in (["status", "--json"], ["failures", "--json"], ["status", accepted["id"]]):
            code, out = await run_cli(stack.settings, *args)
            assert code == 0, out
            seen.append(out)
        # a settings error names the field, not the value
        bad = settings_env(stack.settings) | {
            "NOTIFYQ_TWILIO__ACCOUNTS": f'{{"main": {{"auth_token": "{AUTH_TOKEN}"}}}}'
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifyq",
            "status",
            env=bad,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 2, err.decode()
        seen.append(out.decode() + err.decode())
    captured = capfd.readouterr()
    seen += [captured.out, captured.err]
    assert worker.said("stopping")  # its log was read to its end
    everything = "\n".join(seen)
    assert "21211" in everything  # the failure's reason is there, only without the secrets
    assert _leaks(everything) == []
