"""What every Twilio route does around its handler, in the order Twilio's front door does it.

Count the request, authenticate it and admit it to the account it acts on (``auth``), refuse it
over the per-account concurrency cap, wait the configured latency while it counts as in flight,
and draw the random 429 / 5xx faults; a ``TwilioReply`` raised anywhere becomes Twilio's error
body. The account a request acts on is the ``{AccountSid}`` in its path, or the caller's own
account on ``/Accounts.json``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NamedTuple

from aiohttp import web

from notifyq.provider.form import FORM_TYPES, parse_form
from notifyq.simulator.auth import Caller, admit, authenticate
from notifyq.simulator.replies import SERVER_ERRORS, TOO_MANY_REQUESTS, TwilioReply, bad_request

if TYPE_CHECKING:
    from notifyq.simulator.config import SimAccount
    from notifyq.simulator.state import SimulatorState

SIMULATOR: Final[web.AppKey[SimulatorState]] = web.AppKey("notifyq.simulator")
RECEIVED_AT: Final[web.RequestKey[datetime]] = web.RequestKey("notifyq.received_at", datetime)


class Access(NamedTuple):
    """What the front door let through: the account a request acts on, and whose credentials it carries."""

    account_sid: str
    account: SimAccount
    caller: Caller


Handler = Callable[[web.Request, "SimulatorState", Access], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fault(sim: SimulatorState) -> None:
    """Draw the random 429 and 5xx faults (one draw, nothing drawn when both rates are 0)."""
    cfg = sim.config
    if cfg.rate_429 <= 0.0 and cfg.rate_5xx <= 0.0:
        return
    draw = sim.rng.random()
    if draw < cfg.rate_429:
        raise TwilioReply(*TOO_MANY_REQUESTS)
    if draw < cfg.rate_429 + cfg.rate_5xx:
        raise TwilioReply(*sim.rng.choice(SERVER_ERRORS))


def _admit(sim: SimulatorState, account_sid: str) -> None:
    """Count the request as in flight for its account, or refuse it over the cap."""
    cap = sim.config.max_concurrency_per_account
    in_flight = sim.in_flight.get(account_sid, 0)
    if cap is not None and in_flight >= cap:
        raise TwilioReply(*TOO_MANY_REQUESTS)
    sim.in_flight[account_sid] = in_flight + 1


async def _latency(sim: SimulatorState) -> None:
    delay = sim.config.latency_s
    if sim.config.latency_jitter_s > 0:
        delay += sim.rng.uniform(0.0, sim.config.latency_jitter_s)
    if delay > 0:
        await asyncio.sleep(delay)


def _count(sim: SimulatorState, status: int) -> None:
    if status == 429:
        sim.counters.http_429 += 1
    elif status >= 500:
        sim.counters.http_5xx += 1
    else:
        sim.counters.rejected += 1


def twilio_endpoint(*, test_credentials: bool = False, any_status: bool = False) -> Callable[[Handler], Route]:
    """Wrap a handler with auth, the concurrency cap, latency and random faults.

    ``test_credentials``: test credentials may call it; ``any_status``: it reaches a suspended or
    closed account (see ``auth.admit``).
    """

    def wrap(handler: Handler) -> Route:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            sim = request.app[SIMULATOR]
            sim.counters.requests += 1
            try:
                caller = authenticate(sim, request.headers.get("Authorization"))
                account_sid = request.match_info.get("AccountSid") or caller.connect_scope or caller.account_sid
                account = admit(
                    sim, caller, account_sid, request.method, test_credentials=test_credentials, any_status=any_status
                )
                _admit(sim, account_sid)
                try:
                    await _latency(sim)
                    # a resource's creation time is when its request arrived, not when the form was parsed
                    # and checked (that takes longer when requests queue up here)
                    request[RECEIVED_AT] = datetime.now(UTC)
                    _fault(sim)
                    return await handler(request, sim, Access(account_sid, account, caller))
                finally:
                    sim.in_flight[account_sid] -= 1
            except TwilioReply as reply:
                _count(sim, reply.status)
                return reply.response()

        return endpoint

    return wrap


async def form_items(request: web.Request) -> list[tuple[str, str]]:
    """The request's form as (name, value) pairs, in order; a 400 for anything but a form (or no body)."""
    if not request.body_exists:
        return []
    if request.content_type in FORM_TYPES:  # a urlencoded form (what Twilio's clients send): read as post() would
        try:
            return parse_form(await request.read(), request.charset, max_fields=request.client_max_fields)
        except ValueError as exc:  # more fields than allowed, not text in its charset, or an unknown charset
            raise bad_request(20001, f"Unreadable form: {exc}") from exc
    if request.content_type != "multipart/form-data":
        raise bad_request(20001, f"Unsupported Content-Type {request.content_type!r}: send a form")
    posted = await request.post()
    items = [(name, value) for name, value in posted.items() if isinstance(value, str)]
    if len(items) != len(posted):
        raise bad_request(20001, "File uploads are not accepted: use MediaUrl")
    return items


def not_found(request: web.Request) -> TwilioReply:
    """Twilio's 404 for a resource that does not exist in the account."""
    return TwilioReply(404, 20404, f"The requested resource {request.path} was not found")


def cleared(items: list[tuple[str, str]]) -> set[str]:
    """The parameters an update sends empty: Twilio clears those fields."""
    return {name for name, value in items if value == ""}
