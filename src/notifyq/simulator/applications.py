"""TwiML Applications: ``/Accounts/{AccountSid}/Applications.json`` and ``Applications/{Sid}.json``.

Create, fetch, list (``FriendlyName`` filter, paging), update and delete, with the forms checked
against ``CreateApplicationRequest`` and ``UpdateApplicationRequest``. A parameter sent empty in an
update clears its field (back to Twilio's default for a method or a flag). A message or call
created with the SID of one of the account's Applications reports its status to the
Application's callback URL (``core.Simulator``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from notifyq.simulator.endpoint import RECEIVED_AT, Access, cleared, form_items, not_found, twilio_endpoint
from notifyq.simulator.listing import envelope, parse_list_query
from notifyq.simulator.records import API_VERSION, rfc2822
from notifyq.simulator.spec import load_spec, snake
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from notifyq.simulator.core import Simulator

APPLICATIONS_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/Applications.json"
_BOOLEANS: Final = frozenset({"voice_caller_id_lookup", "public_application_connect_enabled"})


@dataclass(slots=True)
class ApplicationRecord:
    """One TwiML Application (``api.v2010.account.application``)."""

    sid: str
    account_sid: str
    date_created: datetime
    date_updated: datetime
    friendly_name: str | None = None
    api_version: str = API_VERSION
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    voice_caller_id_lookup: bool = False
    sms_url: str | None = None
    sms_method: str = "POST"
    sms_fallback_url: str | None = None
    sms_fallback_method: str = "POST"
    sms_status_callback: str | None = None
    message_status_callback: str | None = None
    public_application_connect_enabled: bool = False

    @property
    def uri(self) -> str:
        """The resource's path."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Applications/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The JSON Twilio returns for this Application."""
        return {
            "account_sid": self.account_sid,
            "api_version": self.api_version,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.friendly_name,
            "message_status_callback": self.message_status_callback,
            "sid": self.sid,
            "sms_fallback_method": self.sms_fallback_method,
            "sms_fallback_url": self.sms_fallback_url,
            "sms_method": self.sms_method,
            "sms_status_callback": self.sms_status_callback,
            "sms_url": self.sms_url,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "uri": self.uri,
            "voice_caller_id_lookup": self.voice_caller_id_lookup,
            "voice_fallback_method": self.voice_fallback_method,
            "voice_fallback_url": self.voice_fallback_url,
            "voice_method": self.voice_method,
            "voice_url": self.voice_url,
            "public_application_connect_enabled": self.public_application_connect_enabled,
        }

    def apply(self, form: dict[str, str | list[str]], clear: set[str], when: datetime) -> None:
        """Set the fields a create or update form gives, and reset the ones it clears."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in clear:
            setattr(self, snake(name), defaults[snake(name)])
        for name, value in form.items():
            attr = snake(name)
            setattr(self, attr, str(value).lower() == "true" if attr in _BOOLEANS else value)
        self.date_updated = when


@twilio_endpoint()
async def create_application(request: web.Request, sim: Simulator, access: Access) -> web.StreamResponse:
    """``POST Applications.json``."""
    form = validate(load_spec().forms["CreateApplication"], await form_items(request))
    when = request[RECEIVED_AT]
    record = ApplicationRecord(sim.new_sid("AP"), access.account_sid, date_created=when, date_updated=when)
    record.apply(form, set(), when)
    sim.applications.add(record)
    return web.json_response(record.resource(), status=201)


def _record(request: web.Request, sim: Simulator, access: Access) -> ApplicationRecord:
    record = sim.applications.get(access.account_sid, request.match_info["Sid"])
    if record is None:
        raise not_found(request)
    return record


@twilio_endpoint()
async def fetch_application(request: web.Request, sim: Simulator, access: Access) -> web.StreamResponse:
    """``GET Applications/{Sid}.json``."""
    return web.json_response(_record(request, sim, access).resource())


@twilio_endpoint()
async def update_application(request: web.Request, sim: Simulator, access: Access) -> web.StreamResponse:
    """``POST Applications/{Sid}.json``: the fields given change, the ones sent empty are cleared."""
    record = _record(request, sim, access)
    items = await form_items(request)
    form = validate(load_spec().forms["UpdateApplication"], items)
    record.apply(form, cleared(items), request[RECEIVED_AT])
    return web.json_response(record.resource())


@twilio_endpoint()
async def delete_application(request: web.Request, sim: Simulator, access: Access) -> web.StreamResponse:
    """``DELETE Applications/{Sid}.json``: 204, no body."""
    if sim.applications.remove(access.account_sid, request.match_info["Sid"]) is None:
        raise not_found(request)
    return web.Response(status=204)


@twilio_endpoint()
async def list_applications(request: web.Request, sim: Simulator, access: Access) -> web.StreamResponse:
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
