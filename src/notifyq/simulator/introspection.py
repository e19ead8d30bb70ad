"""``/_sim``: what the simulator saw and holds, for tests and benchmarks in other processes.

No auth: the simulator serves loopback only, and these routes hold no secrets (the accounts are
shown without their Auth Tokens and API keys). A refused request is answered with
``application/problem+json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from notifyq.simulator.config import ACCOUNT_STATUSES, apply_patch
from notifyq.simulator.replies import problem

if TYPE_CHECKING:
    from notifyq.simulator.state import SimulatorState


def add_routes(app: web.Application, key: web.AppKey[SimulatorState]) -> None:
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
            return problem(400, f"not JSON: {exc}")
        if not isinstance(patch, dict):
            return problem(400, "the body must be a JSON object")
        try:
            apply_patch(sim.config, patch)
        except ValueError as exc:
            return problem(400, str(exc))
        return web.json_response(sim.config.as_dict())

    _add_gauge_routes(app, key)
    _add_account_routes(app, key)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/messages", messages)
    app.router.add_get("/_sim/calls", calls)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/config", show_config)
    app.router.add_post("/_sim/config", patch_config)


def _add_account_routes(app: web.Application, key: web.AppKey[SimulatorState]) -> None:
    """``/_sim/accounts``: GET lists the accounts (no secrets); ``POST /_sim/accounts/{Sid}`` sets a status.

    The status is the fault knob for credential checks: ``{"status": "suspended"}`` makes every
    request with the account's credentials, or to it, answer 401 / 20003 until it is ``active`` again.
    """

    async def list_accounts(request: web.Request) -> web.Response:
        sim = request.app[key]
        shown = []
        for sid, account in sim.config.accounts.items():
            grant = sim.connect.grant(sid)
            shown.append(
                {
                    "sid": sid,
                    "owner_account_sid": account.owner_account_sid,
                    "friendly_name": account.friendly_name,
                    "status": account.status,
                    "type": account.account_type,
                    "connect_app_sid": grant.connect_app_sid if grant else None,
                }
            )
        return web.json_response(shown)

    async def set_status(request: web.Request) -> web.Response:
        sim = request.app[key]
        account = sim.config.accounts.get(request.match_info["Sid"])
        if account is None:
            return problem(404, f"no account {request.match_info['Sid']}")
        try:
            body = await request.json()
        except ValueError as exc:
            return problem(400, f"not JSON: {exc}")
        status = body.get("status") if isinstance(body, dict) and set(body) == {"status"} else None
        if status not in ACCOUNT_STATUSES:
            return problem(400, f'the body is {{"status": one of {", ".join(ACCOUNT_STATUSES)}}}')
        account.status = status
        return web.json_response({"sid": request.match_info["Sid"], "status": status})

    app.router.add_get("/_sim/accounts", list_accounts)
    app.router.add_post("/_sim/accounts/{Sid}", set_status)


def _add_gauge_routes(app: web.Application, key: web.AppKey[SimulatorState]) -> None:
    """``/_sim/gauge``: POST starts sampling the requests in flight, GET reads, DELETE stops."""
    gauge = _InFlightGauge()

    async def start_gauge(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            interval_s = float(body.get("interval_s", 0.01))
            max_samples = int(body.get("max_samples", 100_000))
        except (ValueError, TypeError, AttributeError) as exc:
            return problem(400, f"bad gauge request: {exc}")
        if not 0.001 <= interval_s <= 10 or not 1 <= max_samples <= 1_000_000:
            return problem(400, "interval_s in [0.001, 10], max_samples in [1, 1e6]")
        gauge.start(request.app[key], interval_s, max_samples)
        return web.json_response({"sampling": True, "interval_s": interval_s, "max_samples": max_samples})

    async def read_gauge(_request: web.Request) -> web.Response:
        return web.json_response({"running": gauge.running, "samples": gauge.samples})

    async def stop_gauge(_request: web.Request) -> web.Response:
        await gauge.stop()
        return web.json_response({"running": False, "samples": gauge.samples})

    async def _stop_gauge_on_cleanup(_app: web.Application) -> None:
        await gauge.stop()

    app.on_cleanup.append(_stop_gauge_on_cleanup)
    app.router.add_post("/_sim/gauge", start_gauge)
    app.router.add_get("/_sim/gauge", read_gauge)
    app.router.add_delete("/_sim/gauge", stop_gauge)


class _InFlightGauge:
    """Samples the requests in flight (all accounts) every ``interval_s``: ``[epoch_s, in_flight]`` pairs.

    Started by ``POST /_sim/gauge``, read by ``GET``, stopped by ``DELETE`` (and when the app stops).
    Bounded: it stops by itself after ``max_samples``. For benchmarks that need the mean concurrency.
    """

    def __init__(self) -> None:
        self.samples: list[list[float]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, sim: SimulatorState, interval_s: float, max_samples: int) -> None:
        if self._task is not None:
            self._task.cancel()
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run(sim, interval_s, max_samples))

    async def _run(self, sim: SimulatorState, interval_s: float, max_samples: int) -> None:
        samples = self.samples
        while len(samples) < max_samples:
            samples.append([time.time(), float(sum(sim.in_flight.values()))])
            await asyncio.sleep(interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
