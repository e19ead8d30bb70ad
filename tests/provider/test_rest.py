"""``TwilioRest``: every attempt passes the gate and is given back, a throttled answer is said so, and a
request that may have been acted on is not repeated unless asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from notifyq.errors import AmbiguousSend, TwilioApiError
from notifyq.provider import RetryOptions, TwilioResources, TwilioRest
from notifyq.provider.twilio import TwilioClient
from notifyq.settings import TwilioAccount, TwilioSettings
from notifyq.simulator import SimAccount, Simulator, SimulatorConfig

ACCOUNT = TwilioAccount(account_sid="AC" + "1" * 32, auth_token=SecretStr("secret"))


class CountingGate:
    """A gate that lets everything through and remembers what it saw."""

    def __init__(self) -> None:
        self.entered = 0
        self.left: list[bool] = []  # throttled, per request given back

    async def enter(self, account_sid: str) -> object:
        assert account_sid == ACCOUNT.account_sid
        self.entered += 1
        return self.entered

    async def leave(self, account_sid: str, ticket: object, *, throttled: bool) -> None:
        assert ticket == len(self.left) + 1
        self.left.append(throttled)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatorConfig(accounts={ACCOUNT.account_sid: SimAccount(auth_token="secret")}, seed=3))
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


@pytest.fixture
async def rest(simulator: Simulator) -> AsyncIterator[tuple[TwilioRest, CountingGate]]:
    gate = CountingGate()
    client = TwilioClient(TwilioSettings(base_url=simulator.base_url))
    yield TwilioRest(client, gate), gate
    await client.close()


async def test_each_attempt_passes_the_gate_and_a_429_is_given_back_throttled(
    simulator: Simulator, rest: tuple[TwilioRest, CountingGate]
) -> None:
    api, gate = rest
    simulator.config.rate_429 = 1.0
    with pytest.raises(TwilioApiError) as raised:
        await api.request(
            ACCOUNT, "GET", "/Accounts/$TWILIO_ACCOUNT_SID/Messages.json", retry=RetryOptions(max_retries=2)
        )
    assert raised.value.status == 429
    assert gate.entered == 3
    assert gate.left == [True, True, True]
    assert simulator.counters.http_429 == 3
    assert api.attempts == 3


async def test_a_refused_request_is_given_back_unthrottled(rest: tuple[TwilioRest, CountingGate]) -> None:
    api, gate = rest
    with pytest.raises(TwilioApiError):
        await TwilioResources(api).fetch(ACCOUNT, "Messages", "SM" + "0" * 32)
    assert (gate.entered, gate.left) == (1, [False])


async def test_the_resources_page_through_next_page_uri(
    simulator: Simulator, rest: tuple[TwilioRest, CountingGate]
) -> None:
    api, gate = rest
    resources = TwilioResources(api)
    made = [await resources.create_application(ACCOUNT, {"FriendlyName": f"app {i}"}) for i in range(5)]
    found = await resources.list_records(ACCOUNT, "Applications", {}, page_size=2)
    assert [a["sid"] for a in found] == [a["sid"] for a in made]  # oldest first, three pages
    assert gate.entered == 5 + 3
    named = await resources.list_applications(ACCOUNT, friendly_name="app 3")
    assert [a["sid"] for a in named] == [made[3]["sid"]]
    await resources.update_application(ACCOUNT, made[0]["sid"], {"VoiceUrl": "https://v.example.com/twiml"})
    assert (await resources.fetch_application(ACCOUNT, made[0]["sid"]))["voice_url"] == "https://v.example.com/twiml"
    await resources.delete_application(ACCOUNT, made[0]["sid"])
    assert len(simulator.applications) == 4


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that reads each request, then closes the connection without an answer."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        seen.append(request.method)
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), seen
    await server.close()


@pytest.mark.parametrize(
    ("method", "every", "attempts"),
    [("GET", False, 3), ("POST", False, 1), ("DELETE", False, 1), ("POST", True, 3)],
)
async def test_a_request_that_may_have_acted_is_repeated_only_when_safe_or_asked(
    silent_server: tuple[str, list[str]], method: str, every: bool, attempts: int
) -> None:
    base_url, seen = silent_server
    client = TwilioClient(TwilioSettings(base_url=base_url))
    api = TwilioRest(client, CountingGate())
    try:
        path = "/Accounts/$TWILIO_ACCOUNT_SID/Applications.json"
        with pytest.raises(AmbiguousSend):
            await api.request(
                ACCOUNT,
                method,
                path,
                data=[("FriendlyName", "x")] if method == "POST" else None,
                retry=RetryOptions(max_retries=2, retry_on_all_errors=every),
            )
    finally:
        await client.close()
    assert api.attempts == attempts
    if method == "POST":  # aiohttp itself repeats an idempotent request once on a reused connection, never a POST
        assert seen == [method] * attempts
