"""Twilio Connect over HTTP: the Connect Apps and Authorized Connect Apps routes, and their ``/_sim`` controls.

Twilio's API fetches, lists, updates and deletes an account's Connect Apps (they are made in its
console), and lists the Connect Apps an account has authorised. What only people do at Twilio
is a control route here (JSON in, JSON out, no auth: the simulator serves loopback only)::

    POST /_sim/connect-apps                    {"account_sid": "AC..", "friendly_name": .., ...}
        -> 201, the Connect App (the console's "Create Connect App")
    POST /_sim/connect-apps/{Sid}/authorize    {"state": .., "customer_account_sid": .., "decline": false}
        -> 302 to the app's AuthorizeRedirectUrl (what the customer's browser is sent), or 200 when it
           has none; the body names the redirect, the authorised subaccount and the customer
    POST /_sim/connect-apps/{Sid}/deauthorize  {"account_sid": "AC.."}
        -> 200; the app's DeauthorizeCallbackUrl is called (``sim.settle()`` waits for it)

Errors of the control routes are ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from notifyq.simulator.connect import FIELDS, PERMISSIONS, ConnectAppRecord, Grant
from notifyq.simulator.endpoint import SIMULATOR, Access, cleared, form_items, not_found, twilio_endpoint
from notifyq.simulator.listing import envelope, parse_list_query
from notifyq.simulator.records import paginate
from notifyq.simulator.replies import TwilioReply, problem
from notifyq.simulator.spec import load_spec
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from notifyq.simulator.state import SimulatorState

CONNECT_APPS_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/ConnectApps.json"
AUTHORIZED_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/AuthorizedConnectApps.json"


def _app(request: web.Request, sim: SimulatorState, access: Access) -> ConnectAppRecord:
    app = sim.connect.apps.get(access.account_sid, request.match_info["Sid"])
    if app is None:
        raise not_found(request)
    return app


@twilio_endpoint()
async def fetch_connect_app(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET ConnectApps/{Sid}.json``."""
    return web.json_response(_app(request, sim, access).resource())


def _permissions(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Permissions is "a comma-separated list": one value may hold several, and the key may repeat
    return [(n, part.strip()) for n, v in items for part in (v.split(",") if n == "Permissions" and v else [v])]


@twilio_endpoint()
async def update_connect_app(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``POST ConnectApps/{Sid}.json``: the fields given change, the ones sent empty are cleared."""
    app = _app(request, sim, access)
    items = _permissions(await form_items(request))
    form = validate(load_spec().forms["UpdateConnectApp"], items)
    for name in cleared(items):
        setattr(app, FIELDS[name], [] if name == "Permissions" else None)
    for name, value in form.items():
        setattr(app, FIELDS[name], list(dict.fromkeys(value)) if isinstance(value, list) else value)
    return web.json_response(app.resource())


@twilio_endpoint()
async def delete_connect_app(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``DELETE ConnectApps/{Sid}.json``: 204; its grants are revoked."""
    if sim.connect.delete_app(sim, access.account_sid, request.match_info["Sid"]) is None:
        raise not_found(request)
    return web.Response(status=204)


@twilio_endpoint()
async def list_connect_apps(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET ConnectApps.json`` with paging, oldest first."""
    q = parse_list_query(request.query, load_spec().queries["ListConnectApp"])
    page = sim.connect.apps.page(
        access.account_sid, lambda _: True, page=q.page, page_size=q.page_size, page_token=q.page_token
    )
    return web.json_response(envelope("connect_apps", request.path, q, page, ConnectAppRecord.resource))


@twilio_endpoint()
async def list_authorized(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET AuthorizedConnectApps.json``: the Connect Apps this account (or a subaccount made for one) authorised."""
    q = parse_list_query(request.query, load_spec().queries["ListAuthorizedConnectApp"])
    grants = iter(sim.connect.grants_in(access.account_sid))
    page = paginate(grants, lambda _: True, page=q.page, page_size=q.page_size, page_token=q.page_token)

    def render(grant: Grant) -> dict[str, Any]:
        return grant.resource(sim.connect.app(grant.connect_app_sid), access.account_sid)

    return web.json_response(envelope("authorized_connect_apps", request.path, q, page, render))


@twilio_endpoint()
async def fetch_authorized(request: web.Request, sim: SimulatorState, access: Access) -> web.StreamResponse:
    """``GET AuthorizedConnectApps/{ConnectAppSid}.json``."""
    wanted = request.match_info["ConnectAppSid"]
    grant = next((g for g in sim.connect.grants_in(access.account_sid) if g.connect_app_sid == wanted), None)
    if grant is None:
        raise not_found(request)
    return web.json_response(grant.resource(sim.connect.app(wanted), access.account_sid))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewConnectApp(_Body):
    """``POST /_sim/connect-apps``: the Connect App a console user makes."""

    account_sid: str
    friendly_name: str | None = None
    company_name: str | None = None
    description: str | None = None
    homepage_url: str | None = None
    authorize_redirect_url: str | None = None
    deauthorize_callback_url: str | None = None
    deauthorize_callback_method: Literal["GET", "POST"] = "POST"
    permissions: list[Literal["get-all", "post-all"]] = list(PERMISSIONS)


class AuthorizeBody(_Body):
    """``POST /_sim/connect-apps/{Sid}/authorize``: a customer's answer on Twilio's authorisation page."""

    state: str | None = None
    customer_account_sid: str | None = None  # None: a new customer account
    decline: bool = False


class DeauthorizeBody(_Body):
    """``POST /_sim/connect-apps/{Sid}/deauthorize``: a customer revokes the app's access."""

    account_sid: str  # the subaccount authorised to the app


B = TypeVar("B", bound=_Body)


class _Refused(Exception):
    """A control request refused: answered with problem details."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _body(request: web.Request, model: type[B]) -> B:
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        raise _Refused(400, str(exc)) from exc


def _known_app(request: web.Request, sim: SimulatorState) -> ConnectAppRecord:
    app = sim.connect.app(request.match_info["Sid"])
    if app is None:
        raise _Refused(404, f"no Connect App {request.match_info['Sid']}")
    return app


async def new_connect_app(request: web.Request, sim: SimulatorState) -> web.StreamResponse:
    """Make a Connect App (its URLs are checked as UpdateConnectApp checks them)."""
    body = await _body(request, NewConnectApp)
    if body.account_sid not in sim.config.accounts:
        raise _Refused(400, f"no account {body.account_sid}")
    by_field = {attr: param for param, attr in FIELDS.items()}
    given = body.model_dump(exclude={"account_sid", "permissions"}, exclude_none=True)
    try:
        validate(load_spec().forms["UpdateConnectApp"], [(by_field[k], str(v)) for k, v in given.items()])
    except TwilioReply as reply:
        raise _Refused(400, reply.message) from reply
    fields = body.model_dump(exclude={"account_sid"})
    fields["permissions"] = list(dict.fromkeys(body.permissions))
    app = sim.connect.add_app(sim, body.account_sid, **fields)
    return web.json_response(app.resource(), status=201)


async def authorize(request: web.Request, sim: SimulatorState) -> web.StreamResponse:
    """A customer authorises the app (or declines): 302 to its AuthorizeRedirectUrl, 200 when it has none."""
    app = _known_app(request, sim)
    body = await _body(request, AuthorizeBody)
    customer = body.customer_account_sid
    if customer is not None and customer not in sim.config.accounts:
        raise _Refused(400, f"no account {customer}")
    outcome = sim.connect.authorize(sim, app, customer=customer, state=body.state, decline=body.decline)
    answer = {
        "redirect_url": outcome.redirect_url,
        "account_sid": outcome.account_sid,
        "customer_account_sid": outcome.customer_account_sid,
    }
    headers = {"Location": outcome.redirect_url} if outcome.redirect_url else None
    return web.json_response(answer, status=302 if headers else 200, headers=headers)


async def deauthorize(request: web.Request, sim: SimulatorState) -> web.StreamResponse:
    """The customer revokes the app's access to a subaccount; the app's DeauthorizeCallbackUrl is called."""
    app = _known_app(request, sim)
    body = await _body(request, DeauthorizeBody)
    grant = sim.connect.grant(body.account_sid)
    if grant is None or grant.connect_app_sid != app.sid:
        raise _Refused(404, f"{body.account_sid} is not authorised to {app.sid}")
    sim.connect.deauthorize(sim, body.account_sid)
    return web.json_response({"deauthorized": body.account_sid, "callback_url": app.deauthorize_callback_url})


Control = Callable[[web.Request, "SimulatorState"], Awaitable[web.StreamResponse]]


def _control(handler: Control) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, request.app[SIMULATOR])
        except _Refused as refused:
            return problem(refused.status, refused.detail)

    return route


def add_routes(app: web.Application) -> None:
    """Mount the Connect Apps and Authorized Connect Apps routes, and the ``/_sim/connect-apps`` controls."""
    instance = CONNECT_APPS_PATH.removesuffix(".json") + "/{Sid}.json"
    app.router.add_get(CONNECT_APPS_PATH, list_connect_apps)
    app.router.add_get(instance, fetch_connect_app)
    app.router.add_post(instance, update_connect_app)
    app.router.add_delete(instance, delete_connect_app)
    app.router.add_get(AUTHORIZED_PATH, list_authorized)
    app.router.add_get(AUTHORIZED_PATH.removesuffix(".json") + "/{ConnectAppSid}.json", fetch_authorized)
    app.router.add_post("/_sim/connect-apps", _control(new_connect_app))
    app.router.add_post("/_sim/connect-apps/{Sid}/authorize", _control(authorize))
    app.router.add_post("/_sim/connect-apps/{Sid}/deauthorize", _control(deauthorize))
