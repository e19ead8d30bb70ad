"""The Twilio client against a small server of our own: what each kind of answer becomes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from notifyq.errors import AmbiguousSend, ListTooLong, TransportError, TwilioApiError
from notifyq.provider.twilio import LIST_MAX_PAGES, LIST_PAGE_SIZE, TwilioClient
from notifyq.settings import TwilioAccount, TwilioSettings
from notifyq.simulator import SimAccount, Simulator, SimulatorConfig
from notifyq.simulator.spec import load_spec
from notifyq.simulator.validation import validate

ACCOUNT = TwilioAccount(account_sid="AC" + "1" * 32, auth_token=SecretStr("secret"))
PARAMS = [("To", "+14155550100"), ("From", "+15005550006"), ("Body", "héllo")]
Answer = Callable[[web.Request], web.StreamResponse]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], TwilioClient]]:
    clients: list[TwilioClient] = []
    answers: list[Answer] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        return answers[0](request)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", handler)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", handler)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{msg}.json", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    def make(answer: Answer) -> TwilioClient:
        answers[:] = [answer]
        client = TwilioClient(TwilioSettings(base_url=str(server.make_url("")), request_timeout_s=2.0))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    await server.close()


async def test_a_201_is_created_with_its_sid_status_and_segments(serve: Callable[[Answer], TwilioClient]) -> None:
    body = {"sid": "SM" + "a" * 32, "status": "queued", "num_segments": "2"}
    created = await serve(lambda _: web.json_response(body, status=201)).create(ACCOUNT, "Messages.json", PARAMS)
    assert (created.sid, created.status, created.num_segments, created.http_status) == (body["sid"], "queued", 2, 201)


async def test_a_twilio_error_keeps_its_code_message_and_retry_after(serve: Callable[[Answer], TwilioClient]) -> None:
    def throttled(_: web.Request) -> web.StreamResponse:
        body = {"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429"}
        return web.json_response(body, status=429, headers={"Retry-After": "3"})

    with pytest.raises(TwilioApiError) as info:
        await serve(throttled).create(ACCOUNT, "Messages.json", PARAMS)
    assert (info.value.status, info.value.code, info.value.message) == (429, 20429, "Too Many Requests")
    assert info.value.retry_after_s == 3.0


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("text/html; charset=latin-1", "<h1>Service Unavailable — réessayez</h1>".encode("latin-1", "replace")),
        ("application/json", b'{"code": 20500, "message": "\xff broken'),  # not UTF-8, not whole JSON
        ("application/json", b"[1, 2]"),  # JSON, but not an object
    ],
)
async def test_a_body_that_is_no_json_object_still_gives_a_classifiable_error(
    serve: Callable[[Answer], TwilioClient], content_type: str, raw: bytes
) -> None:
    def proxy_error(_: web.Request) -> web.StreamResponse:
        return web.Response(status=503, body=raw, headers={"Content-Type": content_type})

    with pytest.raises(TwilioApiError) as info:
        await serve(proxy_error).create(ACCOUNT, "Messages.json", PARAMS)
    assert (info.value.status, info.value.code) == (503, None)
    assert info.value.message == "Service Unavailable"  # the HTTP reason, when the body says nothing usable


async def test_a_connection_lost_after_the_request_is_ambiguous(serve: Callable[[Answer], TwilioClient]) -> None:
    def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=201)

    with pytest.raises(AmbiguousSend):
        await serve(drop).create(ACCOUNT, "Messages.json", PARAMS)


async def test_no_server_is_a_transport_error() -> None:
    client = TwilioClient(TwilioSettings(base_url="http://127.0.0.1:9", connect_timeout_s=1.0))
    try:
        with pytest.raises(TransportError):
            await client.create(ACCOUNT, "Messages.json", PARAMS)
    finally:
        await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=200, body=b"<h1>Welcome to our portal</h1>", content_type="text/html"),
        web.json_response({}),  # no list at all
        web.json_response({"messages": "none"}),
        web.json_response({"messages": [{"status": "sent"}], "next_page_uri": None}),  # a record without its SID
    ],
    ids=["html", "empty", "not-a-list", "no-sid"],
)
async def test_a_list_page_that_is_not_twilios_is_a_transport_error_not_an_empty_list(
    serve: Callable[[Answer], TwilioClient], answer: web.Response
) -> None:
    # read as "nothing found", it would let an unanswered create be sent a second time
    with pytest.raises(TransportError, match="malformed list page"):
        await serve(lambda _: answer).list(ACCOUNT, "Messages.json", {"To": "+14155550100"})


async def test_a_list_page_of_records_is_read(serve: Callable[[Answer], TwilioClient]) -> None:
    page = {"messages": [{"sid": "SM" + "a" * 32, "status": "sent"}], "next_page_uri": None}
    found = await serve(lambda _: web.json_response(page)).list(ACCOUNT, "Messages.json", {"To": "+14155550100"})
    assert found == page["messages"]


async def test_a_fetched_record_without_sid_and_status_is_a_transport_error(
    serve: Callable[[Answer], TwilioClient],
) -> None:
    with pytest.raises(TransportError, match="malformed answer"):
        await serve(lambda _: web.json_response({"error": "?"})).fetch(ACCOUNT, "Messages", "SM" + "a" * 32)


async def test_an_error_message_holds_no_credentials(serve: Callable[[Answer], TwilioClient]) -> None:
    # a redirect loop ends in aiohttp's TooManyRedirects, whose repr carries the request's headers
    token = "Hx7Kq2Wm9Zr4Tn6Vb3Yc"
    account = TwilioAccount(account_sid="AC" + "2" * 32, auth_token=SecretStr(token))
    basic = base64.b64encode(f"{account.account_sid}:{token}".encode()).decode()

    def loop(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": str(request.rel_url)})

    with pytest.raises(TransportError) as info:
        await serve(loop).create(account, "Messages.json", PARAMS)
    shown = f"{info.value} {info.value!r} {info.value.url}"
    assert "TooManyRedirects" in shown
    for secret in (token, basic[-20:]):  # the part of the header after the account SID's
        assert not any(secret[i : i + 6] in shown for i in range(len(secret) - 5)), shown


# ---- list pages, against the simulator's paging ------------------------------------------------------------

TO = "+14155550177"


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[Simulator, TwilioClient]]:
    sim = Simulator(SimulatorConfig(accounts={ACCOUNT.account_sid: SimAccount(auth_token="secret")}, callbacks=False))
    base = await sim.start(host="127.0.0.1", port=0)
    client = TwilioClient(TwilioSettings(base_url=base, request_timeout_s=5.0))
    yield sim, client
    await client.close()
    await sim.stop()


def _messages_to(sim: Simulator, n: int, *, made: datetime | None = None) -> None:
    """``n`` messages to ``TO``, recorded as the simulator records a create (``made``: their creation time)."""
    account = sim.config.accounts[ACCOUNT.account_sid]
    for i in range(n):
        items = [("To", TO), ("From", "+15005550006"), ("Body", f"m{i}")]
        form = validate(load_spec().create_message, items)
        sim.accept_message(ACCOUNT.account_sid, account, form, items, received=made)


async def test_a_list_follows_at_most_its_pages_and_says_when_there_were_more(
    simulator: tuple[Simulator, TwilioClient],
) -> None:
    sim, client = simulator
    _messages_to(sim, LIST_PAGE_SIZE * LIST_MAX_PAGES + 1)
    with pytest.raises(ListTooLong) as info:
        await client.list(ACCOUNT, "Messages.json", {"To": TO})  # never read as "these are all"
    assert (info.value.pages, sim.counters.list_requests) == (LIST_MAX_PAGES, LIST_MAX_PAGES)
    # one record fewer: every page is read
    sim.message_index.clear()
    _messages_to(sim, LIST_PAGE_SIZE * LIST_MAX_PAGES)
    found = await client.list(ACCOUNT, "Messages.json", {"To": TO})
    assert len(found) == LIST_PAGE_SIZE * LIST_MAX_PAGES


async def test_a_list_stops_at_the_page_that_ends_before_what_is_looked_for(
    simulator: tuple[Simulator, TwilioClient],
) -> None:
    sim, client = simulator
    now = datetime.now(UTC)
    _messages_to(sim, 6, made=now - timedelta(hours=1))  # older: the list shows them last
    _messages_to(sim, 3, made=now)
    since = now - timedelta(minutes=1)
    found = await client.list(ACCOUNT, "Messages.json", {"To": TO}, newer_than=since, page_size=2, max_pages=3)
    # the second page ends with an older message: the third is not asked for, and nothing is missing
    assert sim.counters.list_requests == 2
    assert [m["body"] for m in found] == ["m2", "m1", "m0", "m5"]
    with pytest.raises(ListTooLong):  # without the moment, three pages do not hold the list
        await client.list(ACCOUNT, "Messages.json", {"To": TO}, page_size=2, max_pages=3)
