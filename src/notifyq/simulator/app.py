"""The simulator's HTTP face: Twilio's Messages and Calls routes, plus ``/_sim`` introspection.

Every Twilio route goes through ``twilio_endpoint``, which does what Twilio's front door does in
this order: count, authenticate (HTTP Basic with the Auth Token or an API key of the account in
the path), refuse over the per-account concurrency cap, wait the configured latency while the
request counts as in flight, and draw the random 429 / 5xx faults.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from aiohttp import web

from notifyq.provider.form import FORM_TYPES, parse_form
from notifyq.simulator import introspection
from notifyq.simulator.listing import envelope, parse_list_query, select
from notifyq.simulator.magic import call_refusal, message_refusal
from notifyq.simulator.records import CallRecord, MessageRecord
from notifyq.simulator.replies import SERVER_ERRORS, TOO_MANY_REQUESTS, TwilioReply, bad_request
from notifyq.simulator.spec import CALLS_PATH, MESSAGES_PATH, load_spec
from notifyq.simulator.validation import validate

if TYPE_CHECKING:
    from notifyq.simulator.config import SimAccount
    from notifyq.simulator.core import Simulator

SIMULATOR: Final[web.AppKey[Simulator]] = web.AppKey("notifyq.simulator")
RECEIVED_AT: Final[web.RequestKey[datetime]] = web.RequestKey("notifyq.received_at", datetime)

Handler = Callable[[web.Request, "Simulator", str, "SimAccount"], Awaitable[web.StreamResponse]]


@functools.lru_cache(maxsize=64)
def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(login, password) from an ``Authorization: Basic ...`` header (aiohttp's BasicAuth is deprecated).

    Cached: a client sends the same header with every request. Only the parsing is cached; the
    credentials are checked against the accounts on every request.
    """
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def authenticate(sim: Simulator, header: str | None, path_account: str) -> tuple[str, SimAccount]:
    """The account the Basic credentials belong to; 401 when they are wrong, 403 for another account."""
    unauthorized = TwilioReply(401, 20003, "Authentication Error - invalid username or password")
    if not header:
        raise TwilioReply(401, 20003, "Authenticate")
    credentials = _basic_credentials(header)
    if credentials is None:
        raise unauthorized
    accounts = sim.config.accounts
    login, password = credentials[0], credentials[1].encode()
    if login.startswith("SK"):
        owner = next((sid for sid, acct in accounts.items() if login in acct.api_keys), None)
        secret = accounts[owner].api_keys[login] if owner else None
    else:
        owner = login if login in accounts else None
        secret = accounts[login].auth_token if owner else None
    # compare even when the user is unknown, so that timing does not tell which part was wrong
    if not hmac.compare_digest(password, (secret or "\0").encode()) or owner is None:
        raise unauthorized
    if owner != path_account:
        raise TwilioReply(403, 20003, "Permission Denied: the credentials do not grant access to this account")
    return owner, accounts[owner]


def _fault(sim: Simulator) -> None:
    """Draw the random 429 and 5xx faults (one draw, nothing drawn when both rates are 0)."""
    cfg = sim.config
    if cfg.rate_429 <= 0.0 and cfg.rate_5xx <= 0.0:
        return
    draw = sim.rng.random()
    if draw < cfg.rate_429:
        raise TwilioReply(*TOO_MANY_REQUESTS)
    if draw < cfg.rate_429 + cfg.rate_5xx:
        raise TwilioReply(*sim.rng.choice(SERVER_ERRORS))


def _admit(sim: Simulator, account_sid: str) -> None:
    """Count the request as in flight for its account, or refuse it over the cap."""
    cap = sim.config.max_concurrency_per_account
    in_flight = sim.in_flight.get(account_sid, 0)
    if cap is not None and in_flight >= cap:
        raise TwilioReply(*TOO_MANY_REQUESTS)
    sim.in_flight[account_sid] = in_flight + 1


async def _latency(sim: Simulator) -> None:
    delay = sim.config.latency_s
    if sim.config.latency_jitter_s > 0:
        delay += sim.rng.uniform(0.0, sim.config.latency_jitter_s)
    if delay > 0:
        await asyncio.sleep(delay)


def _count(sim: Simulator, status: int) -> None:
    if status == 429:
        sim.counters.http_429 += 1
    elif status >= 500:
        sim.counters.http_5xx += 1
    else:
        sim.counters.rejected += 1


def twilio_endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler with auth, the concurrency cap, latency and random faults."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        sim = request.app[SIMULATOR]
        sim.counters.requests += 1
        try:
            account_sid, account = authenticate(
                sim, request.headers.get("Authorization"), request.match_info["AccountSid"]
            )
            _admit(sim, account_sid)
            try:
                await _latency(sim)
                # a resource's creation time is when its request arrived, not when the form was parsed
                # and checked (that takes longer when requests queue up here)
                request[RECEIVED_AT] = datetime.now(UTC)
                _fault(sim)
                return await handler(request, sim, account_sid, account)
            finally:
                sim.in_flight[account_sid] -= 1
        except TwilioReply as reply:
            _count(sim, reply.status)
            return reply.response()

    return endpoint


async def _form_items(request: web.Request) -> list[tuple[str, str]]:
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


async def _created(request: web.Request, sim: Simulator, to: str, resource: dict[str, object]) -> web.StreamResponse:
    """201 with the resource (after ``answer_delay_s``), or, when the drop fault fires, a closed connection."""
    cfg = sim.config
    if cfg.answer_delay_s > 0:
        await asyncio.sleep(cfg.answer_delay_s)
    dropped = to in cfg.drop_after_create_to or sim.draw(cfg.drop_after_create_rate)
    if dropped and request.transport is not None:
        sim.counters.dropped += 1
        request.transport.abort()
    return web.json_response(resource, status=201)


@twilio_endpoint
async def create_message(
    request: web.Request, sim: Simulator, account_sid: str, account: SimAccount
) -> web.StreamResponse:
    """``POST Messages.json``."""
    items = await _form_items(request)
    form = validate(load_spec().create_message, items)
    to, from_ = form["To"], form.get("From")
    refusal = message_refusal(account, str(to), from_ if isinstance(from_, str) else None)
    if refusal is not None:
        raise refusal
    record = sim.accept_message(account_sid, account, form, items, received=request.get(RECEIVED_AT))
    return await _created(request, sim, record.to, record.resource())


@twilio_endpoint
async def create_call(
    request: web.Request, sim: Simulator, account_sid: str, account: SimAccount
) -> web.StreamResponse:
    """``POST Calls.json``."""
    items = await _form_items(request)
    form = validate(load_spec().create_call, items)
    refusal = call_refusal(account, str(form["To"]), str(form["From"]))
    if refusal is not None:
        raise refusal
    record = sim.accept_call(account_sid, account, form, items, received=request.get(RECEIVED_AT))
    return await _created(request, sim, record.to, record.resource())


def _not_found(request: web.Request) -> TwilioReply:
    return TwilioReply(404, 20404, f"The requested resource {request.path} was not found")


@twilio_endpoint
async def fetch_message(request: web.Request, sim: Simulator, account_sid: str, _: SimAccount) -> web.StreamResponse:
    """``GET Messages/{Sid}.json``."""
    record = sim.message_index.get(account_sid, request.match_info["Sid"])
    if record is None:
        raise _not_found(request)
    return web.json_response(record.resource())


@twilio_endpoint
async def fetch_call(request: web.Request, sim: Simulator, account_sid: str, _: SimAccount) -> web.StreamResponse:
    """``GET Calls/{Sid}.json``."""
    record = sim.call_index.get(account_sid, request.match_info["Sid"])
    if record is None:
        raise _not_found(request)
    return web.json_response(record.resource())


def _list_fault(sim: Simulator) -> None:
    """Answer a list request with a 500 while ``list_failures`` counts down."""
    if sim.config.list_failures > 0:
        sim.config.list_failures -= 1
        raise TwilioReply(*SERVER_ERRORS[0])


@twilio_endpoint
async def list_messages(request: web.Request, sim: Simulator, account_sid: str, _: SimAccount) -> web.StreamResponse:
    """``GET Messages.json`` with To, From, DateSent, DateSent<, DateSent> and paging."""
    sim.counters.list_requests += 1
    _list_fault(sim)
    q = parse_list_query(request.query, "DateSent")

    def keep(r: MessageRecord) -> bool:
        return (q.from_ is None or r.from_ == q.from_) and q.when_ok(r.date_sent or r.date_created)

    page = select(sim.message_index, account_sid, q, keep)
    return web.json_response(envelope("messages", request.path, q, page, MessageRecord.resource))


@twilio_endpoint
async def list_calls(request: web.Request, sim: Simulator, account_sid: str, _: SimAccount) -> web.StreamResponse:
    """``GET Calls.json`` with To, From, Status, StartTime, StartTime<, StartTime> and paging."""
    sim.counters.list_requests += 1
    _list_fault(sim)
    q = parse_list_query(request.query, "StartTime")

    def keep(r: CallRecord) -> bool:
        return (
            (q.from_ is None or r.from_ == q.from_)
            and (q.status is None or r.status == q.status)
            and q.when_ok(r.start_time or r.date_created)
        )

    page = select(sim.call_index, account_sid, q, keep)
    return web.json_response(envelope("calls", request.path, q, page, CallRecord.resource))


async def _timeline(app: web.Application) -> AsyncIterator[None]:
    sim = app[SIMULATOR]
    await sim.timeline.start()
    yield
    await sim.timeline.stop(sim.drain_timeout_s)


def make_app(sim: Simulator) -> web.Application:
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
    introspection.add_routes(app, SIMULATOR)
    return app
