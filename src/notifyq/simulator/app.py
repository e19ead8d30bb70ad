"""The simulator's HTTP face: Twilio's routes (``make_app``) and the Messages and Calls handlers.

Every Twilio route goes through ``endpoint.twilio_endpoint`` (auth, the concurrency cap, latency
and random faults); the other resources' handlers live beside their records (``accounts``,
``applications``, ``connect_api``); ``/_sim`` is ``introspection``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from notifyq.simulator import accounts, applications, connect_api, introspection
from notifyq.simulator.endpoint import RECEIVED_AT, SIMULATOR, Access, form_items, not_found, twilio_endpoint
from notifyq.simulator.listing import envelope, parse_list_query, select
from notifyq.simulator.magic import call_refusal, message_refusal
from notifyq.simulator.records import CallRecord, MessageRecord
from notifyq.simulator.replies import SERVER_ERRORS, TwilioReply
from notifyq.simulator.spec import CALLS_PATH, MESSAGES_PATH, load_spec
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from notifyq.simulator.state import SimulatorState

__all__ = ["SIMULATOR", "make_app"]


def _lost_before_recording(request: web.Request, sim: SimulatorState, items: list[tuple[str, str]]) -> bool:
    """Close the connection of a create to a ``drop_before_create_to`` number, before anything is recorded."""
    to = next((value for name, value in items if name == "To"), None)
    if to is None or to not in sim.config.drop_before_create_to or request.transport is None:
        return False
    sim.counters.dropped += 1
    request.transport.abort()
    return True


async def _created(
    request: web.Request, sim: SimulatorState, to: str, resource: dict[str, object]
) -> web.StreamResponse:
    """201 with the resource (after ``answer_delay_s``), or, when the drop fault fires, a closed connection."""
    cfg = sim.config
    if cfg.answer_delay_s > 0:
        await asyncio.sleep(cfg.answer_delay_s)
    dropped = to in cfg.drop_after_create_to or sim.draw(cfg.drop_after_create_rate)
    if dropped and request.transport is not None:
        sim.counters.dropped += 1
        request.transport.abort()
    return web.json_response(resource, status=201)


@twilio_endpoint(test_credentials=True)
async def create_message(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Messages.json``."""
    items = await form_items(request)
    if _lost_before_recording(request, sim, items):
        return web.Response(status=500)  # never sent: the connection is closed
    form = validate(load_spec().create_message, items)
    to, from_ = form["To"], form.get("From")
    refusal = message_refusal(access.account, str(to), from_ if isinstance(from_, str) else None)
    if refusal is not None:
        raise refusal
    record = sim.accept_message(access.account_sid, access.account, form, items, received=request.get(RECEIVED_AT))
    return await _created(request, sim, record.to, record.resource())


@twilio_endpoint(test_credentials=True)
async def create_call(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Calls.json``."""
    items = await form_items(request)
    if _lost_before_recording(request, sim, items):
        return web.Response(status=500)  # never sent: the connection is closed
    form = validate(load_spec().create_call, items)
    refusal = call_refusal(access.account, str(form["To"]), str(form["From"]))
    if refusal is not None:
        raise refusal
    record = sim.accept_call(access.account_sid, access.account, form, items, received=request.get(RECEIVED_AT))
    return await _created(request, sim, record.to, record.resource())


@twilio_endpoint()
async def fetch_message(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Messages/{Sid}.json``."""
    record = sim.message_index.get(access.account_sid, request.match_info["Sid"])
    if record is None:
        raise not_found(request)
    return web.json_response(record.resource())


@twilio_endpoint()
async def fetch_call(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Calls/{Sid}.json``."""
    record = sim.call_index.get(access.account_sid, request.match_info["Sid"])
    if record is None:
        raise not_found(request)
    return web.json_response(record.resource())


def _list_fault(sim: SimulatorState) -> None:
    """Answer a list request with a 500 while ``list_failures`` counts down."""
    if sim.config.list_failures > 0:
        sim.config.list_failures -= 1
        raise TwilioReply(*SERVER_ERRORS[0])


@twilio_endpoint()
async def list_messages(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Messages.json`` with To, From, DateSent, DateSent<, DateSent> and paging."""
    sim.counters.list_requests += 1
    _list_fault(sim)
    q = parse_list_query(request.query, load_spec().queries["ListMessage"])

    def keep(r: MessageRecord) -> bool:
        return q.matches("From", r.from_) and q.when_ok("DateSent", r.date_sent or r.date_created)

    page = select(sim.message_index, access.account_sid, q, keep)
    return web.json_response(envelope("messages", request.path, q, page, MessageRecord.resource))


@twilio_endpoint()
async def list_calls(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Calls.json`` with To, From, ParentCallSid, Status, StartTime, EndTime (and < >) and paging."""
    sim.counters.list_requests += 1
    _list_fault(sim)
    q = parse_list_query(request.query, load_spec().queries["ListCall"])

    def keep(r: CallRecord) -> bool:
        return (
            q.matches("From", r.from_)
            and q.matches("Status", r.status)
            and q.matches("ParentCallSid", None)  # the simulator's calls are all parent calls
            and q.when_ok("StartTime", r.start_time or r.date_created)
            and q.when_ok("EndTime", r.end_time)
        )

    page = select(sim.call_index, access.account_sid, q, keep)
    return web.json_response(envelope("calls", request.path, q, page, CallRecord.resource))


async def _timeline(app: web.Application) -> AsyncIterator[None]:
    sim = app[SIMULATOR]
    await sim.timeline.start()
    yield
    await sim.timeline.stop(sim.drain_timeout_s)


def make_app(sim: SimulatorState) -> web.Application:
    """The aiohttp application serving ``sim``; it starts and stops the callback senders itself."""
    app = web.Application()
    app[SIMULATOR] = sim
    app.cleanup_ctx.append(_timeline)
    messages = MESSAGES_PATH.removesuffix(".json")
    calls = CALLS_PATH.removesuffix(".json")
    app.router.add_post(MESSAGES_PATH, create_message)
    app.router.add_get(MESSAGES_PATH, list_messages)
    app.router.add_get(messages + "/{Sid}.json", fetch_message)
    app.router.add_post(CALLS_PATH, create_call)
    app.router.add_get(CALLS_PATH, list_calls)
    app.router.add_get(calls + "/{Sid}.json", fetch_call)
    accounts.add_routes(app)
    applications.add_routes(app)
    connect_api.add_routes(app)
    introspection.add_routes(app, SIMULATOR)
    return app
