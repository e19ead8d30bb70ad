"""Driving the local stack from a test: batches to submit, running them to their final statuses, child processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from notifyq.client import Client
from notifyq.settings import Settings
from notifyq.testing import LocalStack

SENDER = "+15005550006"


def sms_batch(recipients: list[dict[str, object]] | list[str], **extra: object) -> dict[str, object]:
    """An SMS batch from ``SENDER`` whose body uses two variables."""
    return {
        "channel": "sms",
        "from": SENDER,
        "body": "Hi {name}, code {code}",
        "recipients": recipients,
        **extra,
    }


def people(n: int, start: int = 2000) -> list[dict[str, object]]:
    """``n`` recipients with distinct numbers (clear of the simulator's magic ones) and their variables."""
    return [{"to": f"+1415555{start + i:04d}", "vars": {"name": f"P{i}", "code": str(i)}} for i in range(n)]


async def settle(stack: LocalStack, client: Client, batch_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """Run burst workers and apply callbacks until every delivery of the batch is final; its status then.

    Each round waits for what it can see: the burst worker ends when both lanes are empty, the
    simulator says when every callback it planned has been made, the inbox when its stream is empty.
    When ``timeout_s`` has passed the status is returned as it is, for the caller's assertion to show.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await stack.run_burst()
        if stack.simulator is not None:
            await stack.simulator.settle(timeout_s=5)
        await stack.inbox.drain()
        status: dict[str, Any] = await client.batch(batch_id)
        if status["done"] or loop.time() > deadline:
            return status


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a separate notifyq process needs to join this stack."""
    accounts: dict[str, dict[str, object]] = {
        name: {
            "account_sid": a.account_sid,
            "auth_token": a.auth_token.get_secret_value(),
            "calls_per_second": a.calls_per_second,
        }
        for name, a in settings.twilio.accounts.items()
    }
    for name, a in settings.twilio.accounts.items():
        if a.api_key_sid is not None and a.api_key_secret is not None:
            accounts[name] |= {"api_key_sid": a.api_key_sid, "api_key_secret": a.api_key_secret.get_secret_value()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYQ_")}
    env.update(
        {
            "NOTIFYQ_REDIS_URL": settings.redis_url or "",
            "NOTIFYQ_DATABASE_URL": settings.sqlalchemy_url(),
            "NOTIFYQ_DATA_DIR": str(settings.data_dir),  # the account registry's key is kept there
            "NOTIFYQ_PUBLIC_BASE_URL": settings.public_base_url,
            "NOTIFYQ_TWILIO__BASE_URL": settings.twilio.base_url,
            "NOTIFYQ_TWILIO__ACCOUNTS": json.dumps(accounts),
            "NOTIFYQ_PACING__SENDERS": json.dumps(settings.pacing.senders),
            "NOTIFYQ_PACING__GROUPS": json.dumps(
                {name: g.model_dump(exclude_none=True) for name, g in settings.pacing.groups.items()}
            ),
            "NOTIFYQ_WORKER__POLL_DELAY_S": "0.01",
            "NOTIFYQ_LOG_LEVEL": "warning",
            "NOTIFYQ_REPLAY__CONFIRM_ABOVE": str(settings.replay.confirm_above),
        }
    )
    return env


class NotifyqProcess:
    """``python -m notifyq ARGS`` in a child process whose log lines (stderr) the test can read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    def said(self, text: str) -> bool:
        """Whether a log line so far contains ``text``."""
        return any(text in line for line in self.lines)

    def tail(self, n: int = 20) -> str:
        return "".join(self.lines[-n:])

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (SIGKILL after ``timeout_s``); the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await self._reader
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def notifyq_process(*args: str, env: dict[str, str]) -> AsyncIterator[NotifyqProcess]:
    """A ``NotifyqProcess``, stopped (and reaped) on the way out."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifyq", *args, env=env, stderr=asyncio.subprocess.PIPE
    )
    child = NotifyqProcess(proc)
    try:
        yield child
    finally:
        await child.stop()


async def run_cli(settings: Settings, *args: str, timeout_s: float = 120.0) -> tuple[int, str]:
    """``python -m notifyq ARGS`` against ``settings``, to its end: the exit code, and stdout then stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyq",
        *args,
        env=settings_env(settings),
        stdin=asyncio.subprocess.DEVNULL,  # no terminal: a command that would ask refuses instead
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()
