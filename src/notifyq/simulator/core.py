"""The simulator: its state (``state.SimulatorState``) served over HTTP by ``app.make_app``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from notifyq.simulator.app import make_app
from notifyq.simulator.state import SimulatorState

if TYPE_CHECKING:
    from collections.abc import Callable

    from notifyq.simulator.config import SimulatorConfig

log = structlog.get_logger(__name__)


class Simulator(SimulatorState):
    """Twilio's REST API (Messages, Calls, Accounts, Applications, Connect) over HTTP, with faults and callbacks."""

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); the base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(make_app(self), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self, drain_timeout_s: float = 1.0) -> None:
        """Stop serving, give due callbacks ``drain_timeout_s`` to go out, cancel the rest."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.drain_timeout_s = drain_timeout_s
        await runner.cleanup()


async def run(
    cfg: SimulatorConfig, host: str = "127.0.0.1", port: int = 8099, *, ready: Callable[[], None] | None = None
) -> None:
    """Serve a simulator until cancelled; ``ready`` runs once it serves (the CLI tunes the process there)."""
    sim = Simulator(cfg)
    base_url = await sim.start(host, port)
    if ready is not None:
        ready()
    log.info("simulator.started", base_url=base_url, accounts=sorted(cfg.accounts))
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
        log.info("simulator.stopped", **sim.counters.as_dict())
