"""What the account tests share: a stack that takes operators and knows its Connect App owner, and its calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from notifyq.simulator import SimulatorConfig
from notifyq.testing import LocalStack, local_stack

OPERATOR_TOKEN = "local-operator-token"
HEX = "0123456789abcdef"
AC_TENANT = "AC" + "7e" * 16
TENANT_TOKEN = "tenant-auth-token-" + HEX
SK_TENANT = "SK" + "5e" * 16
SK_SECRET = "tenant-api-key-secret-" + HEX
SETTINGS: dict[str, Any] = {
    "pacing": {"senders": {"+15005550006": 10_000.0}},
    "calls_per_second": 1000.0,
    "worker": {"callback_grace_s": 0.3, "backoff_base_s": 0.05, "backoff_cap_s": 0.2, "poll_delay_s": 0.01},
    "api": {"operator_tokens": [SecretStr(OPERATOR_TOKEN)]},
}


@asynccontextmanager
async def accounts_stack(
    tmp_path: Path, redis_url: str, database_url: str, sim_config: SimulatorConfig, **extra: Any
) -> AsyncIterator[LocalStack]:
    """The local stack (no worker running) with operator tokens; ``extra`` settings on top."""
    settings = {**SETTINGS, **extra}
    settings["twilio"] = {"connect": {"owner_account": "main"}, **extra.get("twilio", {})}
    settings["api"] = {**SETTINGS["api"], **extra.get("api", {})}
    async with local_stack(
        data_dir=tmp_path,
        redis_url=redis_url,
        database_url=database_url,
        sim_config=sim_config,
        run_worker=False,
        **settings,
    ) as stack:
        yield stack


async def call(
    stack: LocalStack, method: str, path: str, body: Any = None, *, token: str = OPERATOR_TOKEN
) -> tuple[int, Any]:
    """One request to the stack's API with a bearer token: the status and the JSON body (None when empty)."""
    headers = {"Authorization": f"Bearer {token}"}
    data = None if body is None else json.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, stack.api_url + path, data=data, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def sim_control(stack: LocalStack, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A ``/_sim`` control request (what a person does at Twilio's console); redirects are not followed."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.settings.twilio.base_url + route, json=body, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.json()
