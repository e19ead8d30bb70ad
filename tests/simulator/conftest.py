"""Simulators on port 0, a session to call them, and a callback receiver on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sim_helpers import Api, MakeApi, Receiver, accounts

from notifyq.simulator import Simulator, SimulatorConfig


@pytest.fixture
async def make_api() -> AsyncIterator[MakeApi]:
    """Start a simulator with config overrides; everything stops at teardown."""
    started: list[Simulator] = []
    session = aiohttp.ClientSession()

    async def make(**overrides: Any) -> Api:
        cfg = SimulatorConfig(**{"accounts": accounts(), "callback_delay_s": 0.01, "seed": 7, **overrides})
        sim = Simulator(cfg)
        base = await sim.start(host="127.0.0.1", port=0)
        started.append(sim)
        return Api(sim, base, session)

    yield make
    for sim in started:
        await sim.stop()
    await session.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """A simulator with callbacks on, no faults."""
    return await make_api()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/cb/{name}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    rec.base = f"http://{host}:{port}"
    yield rec
    await runner.cleanup()
