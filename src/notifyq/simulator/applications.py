"""TwiML Applications: ``/Accounts/{AccountSid}/Applications.json`` and ``Applications/{Sid}.json``.

Create, fetch, list (``FriendlyName`` filter, paging), update and delete, with the forms checked
against ``CreateApplicationRequest`` and ``UpdateApplicationRequest``. A parameter sent empty in an
update clears its field (back to Twilio's default for a method or a flag). A message or call
created with the SID of one of the account's Applications reports its status to the
Application's callback URL (``state.SimulatorState``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web

from notifyq.simulator.endpoint import RECEIVED_AT, Access, cleared, form_items, not_found, twilio_endpoint
from notifyq.simulator.listing import envelope, parse_list_query
from notifyq.simulator.records import ApplicationRecord
from notifyq.simulator.spec import load_spec
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from notifyq.simulator.state import SimulatorState

APPLICATIONS_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/Applications.json"


@twilio_endpoint()
async def create_application(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Applications.json``."""
    form = validate(load_spec().forms["CreateApplication"], await form_items(request))
    when = request[RECEIVED_AT]
    record = ApplicationRecord(sim.new_sid("AP"), access.account_sid, date_created=when, date_updated=when)
    record.apply(form, set(), when)
    sim.applications.add(record)
    return web.json_response(record.resource(), status=201)


def _record(request: web.Request, sim: SimulatorState, access: Access) -> ApplicationRecord:
    record = sim.applications.get(access.account_sid, request.match_info["Sid"])
    if record is None:
        raise not_found(request)
    return record


@twilio_endpoint()
async def fetch_application(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Applications/{Sid}.json``."""
    return web.json_response(_record(request, sim, access).resource())


@twilio_endpoint()
async def update_application(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST Applications/{Sid}.json``: the fields given change, the ones sent empty are cleared."""
    record = _record(request, sim, access)
    items = await form_items(request)
    form = validate(load_spec().forms["UpdateApplication"], items)
    record.apply(form, cleared(items), request[RECEIVED_AT])
    return web.json_response(record.resource())


@twilio_endpoint()
async def delete_application(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``DELETE Applications/{Sid}.json``: 204, no body."""
    if sim.applications.remove(access.account_sid, request.match_info["Sid"]) is None:
        raise not_found(request)
    return web.Response(status=204)


@twilio_endpoint()
async def list_applications(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET Applications.json`` with FriendlyName and paging, oldest first."""
    q = parse_list_query(request.query, load_spec().queries["ListApplication"])
    page = sim.applications.page(
        access.account_sid,
        lambda r: q.matches("FriendlyName", r.friendly_name),
        page=q.page,
        page_size=q.page_size,
        page_token=q.page_token,
    )
    return web.json_response(envelope("applications", request.path, q, page, ApplicationRecord.resource))


def add_routes(app: web.Application) -> None:
    """Mount the Applications routes."""
    instance = APPLICATIONS_PATH.removesuffix(".json") + "/{Sid}.json"
    app.router.add_post(APPLICATIONS_PATH, create_application)
    app.router.add_get(APPLICATIONS_PATH, list_applications)
    app.router.add_get(instance, fetch_application)
    app.router.add_post(instance, update_application)
    app.router.add_delete(instance, delete_application)
