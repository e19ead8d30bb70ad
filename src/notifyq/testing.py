"""Every part on one machine, in one process: the simulator, the API and receiver, and a worker.

Used by ``notifyq demo``, the end-to-end tests and the benchmarks, and open to an application's own
tests, so that they all drive the system the way it runs: over real HTTP, on a real Redis and a real
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from notifyq.api.app import STATE, create_app
from notifyq.queue.inbox import CallbackInbox
from notifyq.settings import Settings, TwilioAccount
from notifyq.simulator import SimAccount, Simulator, SimulatorConfig
from notifyq.store import Store
from notifyq.worker import NotifyqWorker, WorkerApp, build_worker_app

ACCOUNT_SID = "AC" + "d0" * 16
AUTH_TOKEN = "local-auth-token-0123456789abcdef"  # noqa: S105 - the simulator's, not a real secret
API_TOKEN = "local-producer-token"  # noqa: S105 - same


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_settings(
    *,
    data_dir: Path,
    redis_url: str,
    sim_url: str,
    api_port: int,
    database_url: str | None = None,
    calls_per_second: float = 1.0,
    **extra: Any,
) -> Settings:
    """Settings that point every part at the local ones."""
    base: dict[str, Any] = {
        "redis_url": redis_url,
        "database_url": database_url,
        "data_dir": data_dir,
        "public_base_url": f"http://127.0.0.1:{api_port}",
        "api": {"host": "127.0.0.1", "port": api_port, "tokens": [SecretStr(API_TOKEN)]},
        "twilio": {
            "base_url": sim_url,
            "accounts": {
                "main": TwilioAccount(
                    account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN), calls_per_second=calls_per_second
                )
            },
            "default_account": "main",
        },
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings(**base)


@dataclass
class LocalStack:
    """Handles on the running parts."""

    settings: Settings
    simulator: Simulator | None  # None when the simulator runs in a process of its own (the demo)
    api_url: str
    app: web.Application
    worker_app: WorkerApp
    worker_task: asyncio.Task[None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inbox(self) -> CallbackInbox:
        """The API's callback inbox."""
        return self.app[STATE].require_inbox()

    async def run_burst(self) -> NotifyqWorker:
        """Run a burst worker until both lanes are empty (deferred jobs included)."""
        worker = NotifyqWorker(self.worker_app, burst=True)
        await worker.run()
        return worker


@asynccontextmanager
async def local_stack(
    *,
    data_dir: Path,
    redis_url: str,
    sim_config: SimulatorConfig | None = None,
    database_url: str | None = None,
    run_worker: bool = True,
    sim_url: str | None = None,
    apply_callbacks: bool = True,
    **settings_extra: Any,
) -> AsyncIterator[LocalStack]:
    """Start the simulator, the API (with its callback applier) and, unless told not to, a worker.

    ``sim_url`` names a simulator that already runs elsewhere (then none is started here);
    ``apply_callbacks=False`` leaves applying callbacks to another process (``notifyq applier``).
    """
    async with AsyncExitStack() as stack:
        sim: Simulator | None = None
        if sim_url is None:
            cfg = sim_config or SimulatorConfig(accounts={})
            cfg.accounts.setdefault(ACCOUNT_SID, SimAccount(auth_token=AUTH_TOKEN))
            sim = Simulator(cfg)
            sim_url = await sim.start(host="127.0.0.1", port=0)
            stack.push_async_callback(sim.stop)
        api_port = free_port()
        settings = local_settings(
            data_dir=data_dir,
            redis_url=redis_url,
            sim_url=sim_url,
            api_port=api_port,
            database_url=database_url,
            **settings_extra,
        )
        store = await Store.open(settings.sqlalchemy_url())
        stack.push_async_callback(store.close)
        app = create_app(settings, redis_url=redis_url, store=store, apply_callbacks=apply_callbacks)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", api_port).start()
        worker_app = await build_worker_app(settings, stack, redis_url, store=store)
        local = LocalStack(settings, sim, f"http://127.0.0.1:{api_port}", app, worker_app)
        if run_worker:
            local.worker_task = asyncio.create_task(NotifyqWorker(worker_app).run())

            async def _stop_worker() -> None:
                if local.worker_task is not None:
                    local.worker_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await local.worker_task

            stack.push_async_callback(_stop_worker)
        yield local
