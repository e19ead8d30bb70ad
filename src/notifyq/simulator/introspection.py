"""``/_sim``: what the simulator saw and holds, for tests and benchmarks in other processes.

No auth: the simulator serves loopback only, and these routes hold no secrets (accounts are left
out of the config view).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from notifyq.simulator.config import apply_patch

if TYPE_CHECKING:
    from notifyq.simulator.core import Simulator


def add_routes(app: web.Application, key: web.AppKey[Simulator]) -> None:
    """Mount the introspection routes; ``key`` finds the simulator in the app."""

    async def stats(request: web.Request) -> web.Response:
        sim = request.app[key]
        body: dict[str, Any] = {
            **sim.counters.as_dict(),
            "messages": len(sim.messages),
            "calls": len(sim.calls),
            "in_flight": sum(sim.in_flight.values()),
        }
        return web.json_response(body)

    async def messages(request: web.Request) -> web.Response:
        return web.json_response([r.summary() for r in request.app[key].messages])

    async def calls(request: web.Request) -> web.Response:
        return web.json_response([r.summary() for r in request.app[key].calls])

    async def reset(request: web.Request) -> web.Response:
        request.app[key].reset()
        return web.json_response({"reset": True})

    async def show_config(request: web.Request) -> web.Response:
        return web.json_response(request.app[key].config.as_dict())

    async def patch_config(request: web.Request) -> web.Response:
        sim = request.app[key]
        try:
            patch = await request.json()
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": f"not JSON: {exc}"}, status=400)
        if not isinstance(patch, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            apply_patch(sim.config, patch)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(sim.config.as_dict())

    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/messages", messages)
    app.router.add_get("/_sim/calls", calls)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/config", show_config)
    app.router.add_post("/_sim/config", patch_config)
