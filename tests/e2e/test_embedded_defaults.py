"""The parts, each a process of its own, on embedded defaults, started from an empty directory.

`notifyq api` starts the embedded Redis and records its URL in the data directory; a worker started
before it waits for that Redis, then joins it; `notifyq status` finds it the same way. Each service
says what it listens on and which Redis and database it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyq.client import Client
from notifyq.testing import free_port

ACCOUNT_SID = "AC" + "e1" * 16
AUTH_TOKEN = "Wm4cRt8yHq2sLx6vNb9z"  # the simulator's: no log line may show any part of it
API_TOKEN = "Pj3kFd7wQa5eZr1u"
SENDER = "+15005550006"
START_TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def started(self) -> dict[str, Any]:
        return next(line for line in self.lines() if line.get("event") == "starting")


class Processes:
    """Child processes in an empty working directory, stopped (then killed) at the end."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.services: list[Service] = []

    def start(self, name: str, *args: str) -> Service:
        log = self.work.parent / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "notifyq", *args],
                cwd=self.work,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def stop(self, service: Service) -> int:
        if service.proc.poll() is None:
            service.proc.send_signal(signal.SIGTERM)
        try:
            return service.proc.wait(timeout=25)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.proc.pid, signal.SIGKILL)  # and whatever it started
            service.proc.wait()

    def stop_all(self) -> None:
        for service in reversed(self.services):
            self.stop(service)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYQ_")}  # embedded defaults
    procs = Processes(work, env)
    try:
        yield procs
    finally:
        procs.stop_all()


async def _until(what: str, check: Any, *services: Service, timeout_s: float = START_TIMEOUT_S) -> Any:
    """Poll ``check()`` until it returns something; fail early if one of ``services`` has exited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        for service in services:
            assert service.proc.poll() is None, f"{service.name} exited: {service.text()[-2000:]}"
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"no {what} within {timeout_s} s")


async def _healthy(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_the_parts_run_on_embedded_defaults_from_an_empty_directory(processes: Processes) -> None:
    api_port, sim_port = free_port(), free_port()
    api_url, sim_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}"
    processes.env.update(
        {
            "NOTIFYQ_API__PORT": str(api_port),
            "NOTIFYQ_PUBLIC_BASE_URL": api_url,
            "NOTIFYQ_API__TOKENS": json.dumps([API_TOKEN]),
            "NOTIFYQ_TWILIO__BASE_URL": sim_url,
            "NOTIFYQ_TWILIO__ACCOUNTS": json.dumps({"main": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}}),
            "NOTIFYQ_PACING__SENDERS": json.dumps({SENDER: 100}),
            "NOTIFYQ_LOG_FORMAT": "json",
        }
    )
    args = ["--port", str(sim_port), "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN]
    simulator = processes.start("simulator", "simulator", *args)
    worker = processes.start("worker", "worker")  # before the API: it waits for the API's Redis
    await _until("wait", lambda: _logged(worker, "waiting for the embedded Redis of `notifyq api`"), worker)
    api = processes.start("api", "api")
    await _until("API", lambda: _healthy(api_url), api, worker, simulator)
    data_dir = processes.work / ".notifyq"
    redis_url = (data_dir / "redis.url").read_text().strip()

    async with Client(api_url, token=API_TOKEN) as client:
        recipients = [{"to": f"+1415555{n:04d}", "vars": {"name": f"P{n}"}} for n in range(5)]
        batch = await client.submit({"channel": "sms", "from": SENDER, "body": "Hi {name}", "recipients": recipients})

        async def done() -> dict[str, Any] | None:
            status = await client.batch(batch["id"])
            return status if status["done"] else None

        status = await _until("final statuses", done, api, worker, simulator)
    assert status["by_status"] == {"delivered": 5}

    # an operator's command in the same directory finds the same Redis and database
    shown = subprocess.run(  # noqa: S603, ASYNC221 - our own interpreter; a one-shot command
        [sys.executable, "-m", "notifyq", "status", batch["id"], "--json"],
        cwd=processes.work,
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["batch"]["by_status"] == {"delivered": 5}

    database = f"sqlite+aiosqlite:///{data_dir / 'notifyq.db'}"
    for service in (api, worker):
        started = service.started()
        assert (started["service"], started["redis"], started["database"]) == (service.name, redis_url, database)
    assert api.started()["listen"] == api_url

    # the API restarts: its Redis comes back on the same port, and the running worker finds it again
    assert processes.stop(api) == 0
    assert not (data_dir / "redis.url").exists()  # the API's Redis stopped with it
    api = processes.start("api", "api")
    await _until("API", lambda: _healthy(api_url), api, worker, simulator)
    assert (data_dir / "redis.url").read_text().strip() == redis_url
    async with Client(api_url, token=API_TOKEN) as client:
        batch = await client.submit({"channel": "sms", "from": SENDER, "body": "Hi", "recipients": ["+14155559999"]})

        async def done_again() -> dict[str, Any] | None:
            status = await client.batch(batch["id"])
            return status if status["done"] else None

        status = await _until("final statuses after the restart", done_again, api, worker, simulator, timeout_s=60)
    assert status["by_status"] == {"delivered": 1}

    assert processes.stop(worker) == 0
    assert processes.stop(api) == 0
    assert not (data_dir / "redis.url").exists()
    for service in (api, worker, simulator):
        text = service.text()
        assert "Traceback" not in text
        for secret in (AUTH_TOKEN, API_TOKEN):
            assert not any(secret[i : i + 6] in text for i in range(len(secret) - 5)), service.name


async def _logged(service: Service, event: str) -> bool:
    return any(line.get("event") == event for line in service.lines())
