"""The OpenAPI document: valid OpenAPI 3.1, every route in it, and every example and live answer matching it.

The live tests drive each route of a running stack to the statuses it answers (a stack with a small
body limit for the 413s, a database outage for the 503s) and check the status, the content type and
the body of each answer against the document the app serves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import pytest
from openapi_spec_validator import validate

from helpers import people, settle, sms_batch
from helpers.outage import Outage
from notifyq.api import STATE, create_app
from notifyq.api.openapi import document
from notifyq.api.operations import OPERATIONS, UNDOCUMENTED
from notifyq.api.ops_data import FAILURE_WINDOW_S
from notifyq.api.ops_session import COOKIE
from notifyq.api.spec import BEARER
from notifyq.client import Client
from notifyq.replay import Replayer, ReplayRequest
from notifyq.settings import Settings
from notifyq.simulator import SimAccount, SimulatorConfig
from notifyq.store import ReplayFilter
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack, local_stack

from .exchange import AUTH, Exchange, signed, validator
from .live_accounts import AC_TENANT, TENANT_TOKEN, connect, over_the_limit, registry, token_refusals

HTML: Final = {"Accept": "text/html"}
UNREACHABLE: Final = {"vars": {"name": "u", "code": "0"}}  # +1415555x003: the simulator answers undelivered, 30003
SETTINGS: Final = Settings(
    api={"tokens": ["t"], "max_recipients": 1000},
    twilio={"accounts": {"main": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}}},
)


def _media(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every media type object of the document (request bodies and responses), with where it is."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            bodies = [("request", op.get("requestBody", {})), *op["responses"].items()]
            for where, body in bodies:
                for media_type, media in body.get("content", {}).items():
                    yield f"{method.upper()} {path} {where} {media_type}", media


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document(SETTINGS)
    validate(doc)
    assert doc["openapi"].startswith("3.1.")


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(SETTINGS, redis_url="redis://127.0.0.1:1/0")  # not started: its routes only
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert served - documented - UNDOCUMENTED.keys() == set(), "routes without an entry in api/operations.py"
    assert documented - served == set(), "documented routes the app does not serve"
    assert served >= UNDOCUMENTED.keys()
    assert all(UNDOCUMENTED.values()), "an undocumented route without its reason"


def test_every_example_matches_its_schema() -> None:
    doc = document(SETTINGS)
    checked = 0
    for where, media in _media(doc):
        examples = [media["example"]] if "example" in media else []
        examples += [e["value"] for e in media.get("examples", {}).values()]
        for example in examples:
            errors = [e.message for e in validator(doc, media["schema"]).iter_errors(example)]
            assert not errors, (where, errors)
            checked += 1
    assert checked >= len(OPERATIONS)


def test_the_batch_schema_takes_the_deployments_limit_and_accounts() -> None:
    schema = document(SETTINGS)["components"]["schemas"]["BatchRequest"]
    assert schema["properties"]["recipients"]["maxItems"] == 1000
    assert schema["properties"]["account"]["enum"] == ["main", None]


@pytest.fixture
def sim_config(sim_config: SimulatorConfig) -> SimulatorConfig:
    """The simulator knows one more account: the one the live test adds to the registry."""
    sim_config.accounts[AC_TENANT] = SimAccount(auth_token=TENANT_TOKEN)
    return sim_config


_OUTAGE = "test_answers_during_a_database_outage_are_as_documented"
_LIMITS = "test_bodies_over_the_limit_answer_413_as_documented"
_SAME_503 = "no test: the middleware's 503 for the database, as the outage test's POST /v1/batches"
_NO_READS = "no test: the database refusing reads (the SQLite outage is a write lock)"
REACHED_ELSEWHERE: Final[dict[tuple[str, str, int], str]] = {
    ("POST", "/v1/batches", 413): _LIMITS,
    ("POST", "/v1/replays", 413): _LIMITS,
    ("POST", "/v1/replays", 415): _LIMITS,
    ("POST", "/v1/accounts", 413): _LIMITS,
    ("POST", "/v1/accounts/{name}/pause", 413): _LIMITS,
    ("POST", "/v1/batches", 503): _OUTAGE,
    ("POST", "/twilio/inbound", 503): _OUTAGE,
    **{
        (op.method, op.path, 503): _SAME_503
        for op in OPERATIONS
        if op.path.startswith("/v1/") and (op.method, op.path) != ("POST", "/v1/batches")
    },
    ("POST", "/twilio/message-status/{delivery_id}", 503): "no test: Redis and the database down at once",
    ("POST", "/twilio/call-status/{delivery_id}", 503): "no test: Redis and the database down at once",
    ("POST", "/twilio/message-status", 503): _NO_READS,
    ("POST", "/twilio/call-status", 503): _NO_READS,
    ("GET", "/metrics/cluster", 503): "no test: Redis down",
    ("GET", "/ops/data", 503): "no test: Redis down",
    ("GET", "/ops/deliveries", 503): _NO_READS,
}
"""The documented answers the main live test does not reach, and where they are reached (or why not)."""


async def _producer_api(ex: Exchange) -> None:
    batches, one = "/v1/batches", "/v1/batches/{batch_id}"
    key = {"Idempotency-Key": "openapi-live"}
    await ex.call("POST", batches, json=sms_batch(people(1)))
    await ex.call("POST", batches, data=b"{", headers=AUTH | {"Content-Type": "text/plain"})
    await ex.call("POST", batches, data=b"{", headers=AUTH | {"Content-Type": "application/json"})
    await ex.call("POST", batches, json={"channel": "fax"}, headers=AUTH)
    status, accepted = await ex.call("POST", batches, json=sms_batch(people(2)), headers=AUTH | key)
    assert status == 202
    assert (await ex.call("POST", batches, json=sms_batch(people(2)), headers=AUTH | key))[0] == 200
    status, preview = await ex.call("POST", batches, batches + "?dry_run=true", json=sms_batch(people(2)), headers=AUTH)
    assert (status, preview["dry_run"], preview["total"]) == (200, True, 2)
    assert (await ex.call("POST", batches, batches + "?dry_run=yes", json=sms_batch(people(1)), headers=AUTH))[0] == 400
    assert (await ex.call("POST", batches, json=sms_batch(people(3)), headers=AUTH | key))[0] == 409
    batch = f"/v1/batches/{accepted['id']}"
    await ex.call("GET", one, batch, headers=AUTH)
    await ex.call("GET", one, "/v1/batches/nothing", headers=AUTH)
    status, page = await ex.call("GET", one + "/deliveries", batch + "/deliveries?limit=1", headers=AUTH)
    assert status == 200
    assert page["items"]
    await ex.call("GET", one + "/deliveries", batch + "/deliveries?limit=0", headers=AUTH)
    delivery = "/v1/deliveries/{delivery_id}"
    await ex.call("GET", delivery, f"/v1/deliveries/{page['items'][0]['id']}", headers=AUTH)
    await ex.call("GET", delivery, "/v1/deliveries/nothing", headers=AUTH)
    await ex.call("POST", one + "/cancel", batch + "/cancel", headers=AUTH)
    await ex.call("POST", one + "/cancel", "/v1/batches/nothing/cancel", headers=AUTH)
    await ex.call("GET", one + "/deliveries", "/v1/batches/nothing/deliveries", headers=AUTH)
    for op in OPERATIONS:
        if BEARER in op.schemes:
            await ex.call(op.method, op.path, re.sub(r"\{[a-z_]+\}", "x", op.path))


async def _settled(ex: Exchange, recipients: list[Any]) -> dict[str, Any]:
    """A batch the simulator has brought to final statuses, through a burst of the worker."""
    _, accepted = await ex.call("POST", "/v1/batches", json=sms_batch(recipients), headers=AUTH)
    async with Client(ex.stack.api_url, token=API_TOKEN) as client:
        return await settle(ex.stack, client, accepted["id"])


async def _replays(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each answer of the replay API: a dry run, over the threshold, sent, a race lost, and bad bodies."""
    replays, one = "/v1/replays", "/v1/replays/{replay_id}"
    first, second = [await _settled(ex, [UNREACHABLE | {"to": to}]) for to in ("+14155553003", "+14155563003")]
    assert first["by_status"] == second["by_status"] == {"undelivered": 1}
    only = {"batch_ids": [first["id"]]}
    status, dry = await ex.call("POST", replays, json=only | {"dry_run": True}, headers=AUTH)
    assert (status, dry["id"], dry["replayable"]) == (200, None, 1)
    monkeypatch.setattr(ex.stack.settings.replay, "confirm_above", 0)
    status, problem = await ex.call("POST", replays, json=only, headers=AUTH)
    assert (status, problem["title"], problem["recipients"]) == (409, "Confirmation required", 1)
    status, sent = await ex.call("POST", replays, json=only | {"confirm": True}, headers=AUTH)
    assert (status, sent["replayed"]) == (202, 1)
    assert (await ex.call("GET", one, f"/v1/replays/{sent['id']}", headers=AUTH))[1]["batch_ids"] == sent["batch_ids"]
    await ex.call("GET", one, "/v1/replays/nothing", headers=AUTH)
    await ex.call("GET", one, f"/v1/replays/{sent['batch_ids'][0]}", headers=AUTH)  # an id, of no replay
    await ex.call("POST", replays, json={"batch_ids": ["nothing"]}, headers=AUTH)
    await ex.call("POST", replays, json={"statuses": ["delivered"], "dry_run": True}, headers=AUTH)
    await ex.call("POST", replays, data=b"[]", headers=AUTH | {"Content-Type": "application/json"})
    await ex.call("POST", replays, data=b"{", headers=AUTH | {"Content-Type": "application/json"})
    # a race: another replay takes the second batch's delivery after this one planned, before its batch
    store, producer = ex.stack.app[STATE].require_store(), ex.stack.app[STATE].require_producer()
    start = store.start_replay

    async def overtaken(*args: Any, **kw: Any) -> None:
        monkeypatch.setattr(store, "start_replay", start)
        rival = ReplayRequest(ReplayFilter(batch_ids=(second["id"],)), ran_by="test", confirmed=True)
        assert (await Replayer(producer).replay(rival))["replayed"] == 1
        await start(*args, **kw)

    monkeypatch.setattr(store, "start_replay", overtaken)
    status, problem = await ex.call("POST", replays, json={"batch_ids": [second["id"]], "confirm": True}, headers=AUTH)
    assert (status, problem["title"]) == (409, "Conflict")


async def _application_callbacks(ex: Exchange, sid: str) -> None:
    """The TwiML Application's callback URLs: the delivery found by its SID (or none), signed or not."""
    for path, sid_name, status_name, status in (
        ("/twilio/message-status", "MessageSid", "MessageStatus", "delivered"),
        ("/twilio/call-status", "CallSid", "CallStatus", "completed"),
    ):
        form = {"AccountSid": ACCOUNT_SID, sid_name: sid, status_name: status}
        assert (await ex.call("POST", path, data=form, headers=signed(ex.stack, path, form)))[0] == 200
        stranger = form | {sid_name: sid[:2] + "f" * 32}
        assert (await ex.call("POST", path, data=stranger, headers=signed(ex.stack, path, stranger)))[0] == 200
        no_sid = {"AccountSid": ACCOUNT_SID, status_name: status}
        await ex.call("POST", path, data=no_sid, headers=signed(ex.stack, path, no_sid))
        await ex.call("POST", path, data=form)
        await ex.call("POST", path, data={"AccountSid": ACCOUNT_SID, "Big": "x" * 70_000})


async def _ops(ex: Exchange) -> None:
    """The ops page's JSON: by bearer token, by the session cookie signing in sets, and refused without."""
    async with ex.session.post(
        ex.stack.api_url + "/ops/signin", data={"token": API_TOKEN, "next": "/ops/data"}, allow_redirects=False
    ) as r:
        assert r.status == 303
        cookie = {"Cookie": f"{COOKIE}={r.cookies[COOKIE].value}"}
    status, data = await ex.call("GET", "/ops/data", headers=cookie)
    assert (status, data["failures"]["window_s"]) == (200, FAILURE_WINDOW_S)
    assert data["failures"]["groups"], "the replays' undelivered deliveries"
    await ex.call("GET", "/ops/data", headers=HTML, allow_redirects=False)
    code = data["failures"]["groups"][0]["error_code"]
    path = "/ops/deliveries?" + urlencode({"error_code": "none" if code is None else code, "limit": 1})
    status, page = await ex.call("GET", "/ops/deliveries", path, headers=AUTH)
    assert (status, len(page["deliveries"])) == (200, 1)
    assert (await ex.call("GET", "/ops/deliveries", path + "&format=json", headers=AUTH | HTML))[0] == 200
    assert (await ex.call("GET", "/ops/deliveries", path, headers=cookie | HTML))[0] == 200  # the page
    await ex.call("GET", "/ops/deliveries", "/ops/deliveries?error_code=x", headers=AUTH)
    await ex.call("GET", "/ops/deliveries", path, headers=HTML, allow_redirects=False)


async def _twilio_facing(ex: Exchange, delivery_id: str, sid: str) -> None:
    status_path = "/twilio/message-status/{delivery_id}"
    form = {"AccountSid": ACCOUNT_SID, "MessageSid": "SM" + "0" * 32, "MessageStatus": "sent"}
    own = f"/twilio/message-status/{delivery_id}"
    await ex.call("POST", status_path, own, data=form, headers=signed(ex.stack, own, form))
    await ex.call("POST", status_path, own, data=form)
    await ex.call("POST", status_path, own, data={"AccountSid": ACCOUNT_SID, "Big": "x" * 70_000})
    other = "/twilio/message-status/nothing"
    await ex.call("POST", status_path, other, data=form, headers=signed(ex.stack, other, form))
    call_path, call = "/twilio/call-status/{delivery_id}", f"/twilio/call-status/{delivery_id}"
    call_form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "0" * 32, "CallStatus": "ringing"}
    await ex.call("POST", call_path, call, data=call_form)
    await ex.call("POST", call_path, call, data=call_form, headers=signed(ex.stack, call, call_form))
    other_call = "/twilio/call-status/nothing"
    await ex.call("POST", call_path, other_call, data=call_form, headers=signed(ex.stack, other_call, call_form))
    await ex.call("POST", call_path, call, data={"AccountSid": ACCOUNT_SID, "Big": "x" * 70_000})
    await _application_callbacks(ex, sid)
    await ex.call("POST", "/twilio/inbound", data={"Body": "x" * 70_000})
    latin = {"Content-Type": "application/x-www-form-urlencoded; charset=x-nothing", "X-Twilio-Signature": "x"}
    await ex.call("POST", "/twilio/inbound", data=b"Body=STOP", headers=latin)
    inbound = {"AccountSid": ACCOUNT_SID, "From": "+14155550100", "To": "+15005550006", "Body": "HELP"}
    await ex.call("POST", "/twilio/inbound", data=inbound, headers=signed(ex.stack, "/twilio/inbound", inbound))
    await ex.call("POST", "/twilio/inbound", data=inbound)


async def test_every_route_answers_as_the_served_document_says(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with aiohttp.ClientSession() as session:
        ex = Exchange(stack, session)
        async with session.get(stack.api_url + "/openapi.json") as r:
            assert (r.status, r.content_type) == (200, "application/json")
            ex.doc = await r.json()
        validate(ex.doc)
        for path in ("/openapi.json", "/docs", "/healthz", "/metrics", "/metrics/cluster"):
            assert (await ex.call("GET", path))[0] == 200
        await _producer_api(ex)
        await _replays(ex, monkeypatch)
        await _ops(ex)
        await registry(ex, monkeypatch)
        await connect(ex, monkeypatch)
        await token_refusals(ex)
        _, batch = await ex.call("POST", "/v1/batches", json=sms_batch(people(1, start=3000)), headers=AUTH)
        _, page = await ex.call(
            "GET", "/v1/batches/{batch_id}/deliveries", f"/v1/batches/{batch['id']}/deliveries", headers=AUTH
        )
        settled = await _settled(ex, people(1, start=4000))
        _, sent = await ex.call(
            "GET", "/v1/batches/{batch_id}/deliveries", f"/v1/batches/{settled['id']}/deliveries", headers=AUTH
        )
        await _twilio_facing(ex, page["items"][0]["id"], sent["items"][0]["twilio_sid"])
        applier = stack.app[STATE].applier
        assert applier is not None
        applier.cancel()  # last: a stopped applier makes the health check answer 503
        await asyncio.wait({applier})
        assert (await ex.call("GET", "/healthz"))[0] == 503
    reached = {(method, path) for method, path, _ in ex.seen}
    assert reached == {(op.method, op.path) for op in OPERATIONS}
    documented = {(op.method, op.path, status) for op in OPERATIONS for status in op.responses}
    assert documented - ex.seen == set(REACHED_ELSEWHERE)


async def _served_exchange(stack: LocalStack, session: aiohttp.ClientSession) -> Exchange:
    async with session.get(stack.api_url + "/openapi.json") as r:
        return Exchange(stack, session, await r.json())


async def test_answers_during_a_database_outage_are_as_documented(outage: Outage, outage_stack: LocalStack) -> None:
    async with aiohttp.ClientSession() as session:
        ex = await _served_exchange(outage_stack, session)
        await outage.cut()
        inbound = {"AccountSid": ACCOUNT_SID, "From": "+14155550100", "To": "+15005550006", "Body": "STOP"}
        signature = signed(outage_stack, "/twilio/inbound", inbound)
        try:  # at once: on SQLite each waits out the busy timeout
            answers = await asyncio.gather(
                ex.call("POST", "/v1/batches", json=sms_batch(people(1)), headers=AUTH),
                ex.call("POST", "/twilio/inbound", data=inbound, headers=signature),
            )
        finally:
            await outage.restore()
    assert [status for status, _ in answers] == [503, 503]


async def test_bodies_over_the_limit_answer_413_as_documented(tmp_path: Path, redis_url: str) -> None:
    async with (
        local_stack(
            data_dir=tmp_path,
            redis_url=redis_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}",
            run_worker=False,
            api={"max_body_bytes": 4096},
        ) as stack,
        aiohttp.ClientSession() as session,
    ):
        ex = await _served_exchange(stack, session)
        big = sms_batch(people(100))
        status, _ = await ex.call("POST", "/v1/batches", json=big, headers=AUTH)
        _, batch = await ex.call("POST", "/v1/batches", json=sms_batch(people(1)), headers=AUTH)
        replays = {"batch_ids": [batch["id"]], "statuses": ["failed"] * 1000, "dry_run": True}
        replay_status, _ = await ex.call("POST", "/v1/replays", json=replays, headers=AUTH)
        charset = {"Content-Type": "application/json; charset=latin-1"}
        charset_status, _ = await ex.call("POST", "/v1/replays", data=b"{}", headers=AUTH | charset)
        accounts = await over_the_limit(ex)
    assert (status, replay_status, charset_status, *accounts) == (413, 413, 415, 413, 413)


_NOT_PROBLEMS: Final = {
    ("/healthz", "503"),  # the health check answers its checks, 200 or 503
    ("/twilio/connect/authorize", "400"),  # the customer's browser: text, when no redirect_page is set
}


def test_every_error_answer_is_a_problem() -> None:
    doc = document(SETTINGS)
    errors = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) < 400 or (path, status) in _NOT_PROBLEMS:
                    continue
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                errors += 1
    assert errors > len(OPERATIONS)
