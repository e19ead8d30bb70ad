"""``/ops`` over HTTP: who may read it (bearer token, session cookie, nobody else), and what its JSON says.

The browser test (``test_ops_browser.py``) reads the rendered page; here the routes are driven with a
plain HTTP client, so each answer's status, headers and cookie are visible.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import func, select

from helpers import people, settle, sms_batch, wait_until
from notifyq import classify
from notifyq.client import Client
from notifyq.intake.phones import mask_number
from notifyq.report import gather_report
from notifyq.store.schema import deliveries
from notifyq.testing import API_TOKEN, LocalStack

BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
HTML = {"Accept": "text/html,application/xhtml+xml"}
FAILING = [
    {"to": "+15005550009", "vars": {"name": "n", "code": "1"}},  # 21614 at create (simulator magic)
    {"to": "+14155553005", "vars": {"name": "u", "code": "2"}},  # undelivered 30005 by callback
    {"to": "+14155563005", "vars": {"name": "v", "code": "3"}},  # undelivered 30005 by callback
]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # no cookie jar of its own: each test says which cookie it sends
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def test_without_a_token_browsers_are_sent_to_sign_in_and_scripts_get_401(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{stack.api_url}/ops", headers=HTML, allow_redirects=False) as resp:
        assert resp.status == 303
        location = urlsplit(resp.headers["Location"])
        assert (location.path, parse_qs(location.query)) == ("/ops/signin", {"next": ["/ops"]})
    for path in ("/ops/data", "/ops/panel", "/ops/deliveries?error_code=21614"):
        async with http.get(f"{stack.api_url}{path}") as resp:
            assert resp.status == 401, path
            assert resp.content_type == "application/problem+json"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    async with http.get(f"{stack.api_url}/ops/data", headers={"Authorization": "Bearer not-the-token"}) as resp:
        assert resp.status == 401
    async with http.get(f"{stack.api_url}/ops/data", headers=BEARER) as resp:
        assert resp.status == 200
        assert set(await resp.json()) >= {"lanes", "throughput", "accounts", "senders", "batches", "failures"}


async def test_signing_in_sets_a_signed_cookie_that_is_not_the_token_and_signing_out_clears_it(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    url = stack.api_url
    async with http.post(f"{url}/ops/signin", data={"token": "wrong", "next": "/ops"}, allow_redirects=False) as resp:
        assert resp.status == 401
        assert "Set-Cookie" not in resp.headers
        assert "not valid" in await resp.text()
    form = {"token": API_TOKEN, "next": "https://elsewhere.example/ops"}
    async with http.post(f"{url}/ops/signin", data=form, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/ops"  # never off the site
        morsel = resp.cookies["notifyq_ops"]
    assert API_TOKEN not in morsel.value
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/ops"
    assert int(morsel["max-age"]) > 0
    assert not morsel["secure"]  # plain http here; https (public URL or request) sets it
    session = {"Cookie": f"notifyq_ops={morsel.value}"}
    async with http.get(f"{url}/ops", headers={**HTML, **session}, allow_redirects=False) as resp:
        assert resp.status == 200
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    tampered = {"Cookie": f"notifyq_ops={morsel.value[:-2]}xx"}
    async with http.get(f"{url}/ops/data", headers=tampered) as resp:
        assert resp.status == 401
    async with http.post(f"{url}/ops/signout", headers={**session, "Origin": "https://evil.example"}) as resp:
        assert resp.status == 403
    async with http.post(f"{url}/ops/signout", headers=session, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.cookies["notifyq_ops"].value == ""


async def test_a_sign_in_posted_from_another_site_is_refused(stack: LocalStack, http: aiohttp.ClientSession) -> None:
    form = {"token": API_TOKEN, "next": "/ops"}
    headers = {"Origin": "https://evil.example"}
    async with http.post(f"{stack.api_url}/ops/signin", data=form, headers=headers, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "Set-Cookie" not in resp.headers


async def test_the_data_and_the_failed_deliveries_match_the_store(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    store = stack.worker_app.store
    async with Client(stack.api_url, token=API_TOKEN) as client:
        done = await client.submit(sms_batch([*people(4), *FAILING]))
        status = await settle(stack, client, done["id"])
        assert status["done"], status
        waiting = await client.submit(sms_batch(people(7, start=4000)))
    await wait_until(lambda: _depth(stack, 7), "the second batch in the bulk lane")

    async def data() -> dict[str, object]:
        async with http.get(f"{stack.api_url}/ops/data", headers=BEARER) as resp:
            assert resp.status == 200
            got: dict[str, object] = await resp.json()
            return got

    accepted = await _count(stack, deliveries.c.twilio_sid.is_not(None))

    async def all_sends_counted() -> bool:
        points = (await data())["throughput"]["points"]  # type: ignore[index]
        return sum(p["accepted"] for p in points) == accepted  # type: ignore[no-any-return]

    await wait_until(all_sends_counted, "every accepted create in the throughput series")
    got = await data()
    report = await gather_report(stack.worker_app.jobs, stack.inbox, store, stack.settings)
    assert got["lanes"]["bulk"]["depth"] == report.lanes["bulk"].depth == 7  # type: ignore[index]
    batches = {b["id"]: b for b in got["batches"]}  # type: ignore[attr-defined]
    by_status, _ = await store.batch_counts(done["id"])
    assert batches[done["id"]]["by_status"] == by_status
    assert batches[done["id"]]["progress"]["failed"] == 3
    assert batches[done["id"]]["done"] is True
    assert batches[waiting["id"]]["progress"]["waiting"] == 7
    codes = {g["error_code"]: g["count"] for g in got["failures"]["groups"]}  # type: ignore[index]
    assert codes == {g.error_code: g.count for g in await store.failures_by_code(since=time.time() - 3600)}
    assert codes == {21614: 1, 30005: 2}
    group = next(g for g in got["failures"]["groups"] if g["error_code"] == 30005)  # type: ignore[index]
    explained = classify.explain(30005)
    assert explained is not None
    assert (group["meaning"], group["action"]) == (explained[1], explained[0].value)

    # the deliveries behind a code, a page at a time, the numbers masked
    async with http.get(f"{stack.api_url}/ops/deliveries?error_code=30005&limit=1", headers=BEARER) as resp:
        first = await resp.json()
    assert len(first["deliveries"]) == 1
    assert first["next"] is not None
    async with http.get(f"{stack.api_url}{first['next']}", headers=BEARER) as resp:
        second = await resp.json()
    rows = first["deliveries"] + second["deliveries"]
    assert len({d["id"] for d in rows}) == 2
    assert sorted(d["to"] for d in rows) == sorted(mask_number(n) for n in ("+14155553005", "+14155563005"))
    assert all(d["error_code"] == 30005 and d["status"] == "undelivered" for d in rows)
    async with http.get(f"{stack.api_url}/ops/deliveries?error_code=abc", headers=BEARER) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "error_code=3_0005",  # int() takes underscores, signs, spaces and other scripts' digits
        "error_code=+30005",
        "error_code=%2030005",
        "error_code=%D9%A3",  # ARABIC-INDIC DIGIT THREE
        "error_code=99999999999999999999",  # past the INTEGER column
        "error_code=none&since=nan",  # float() takes nan, inf and underscores
        "error_code=none&since=inf",
        "error_code=none&since=1_0",
        "error_code=none&limit=+5",
        "error_code=none&before=nan:x",
        "error_code=none&before=1.5",  # no id after a colon
        "error_code=none&format=",  # only json is a format
        "error_code=none&format=xml",
        "error_code=none&batch=",  # not a batch id
        "error_code=none&since=1&since=x",  # one value each
    ],
)
async def test_the_failed_deliveries_query_takes_only_what_the_document_allows(
    stack: LocalStack, http: aiohttp.ClientSession, query: str
) -> None:
    # found by the API fuzzer (tests/fuzz): each was answered 200, or 500 for a code past the column
    async with http.get(f"{stack.api_url}/ops/deliveries?{query}", headers=BEARER) as resp:
        assert (resp.status, resp.content_type) == (400, "application/problem+json"), await resp.text()


async def _depth(stack: LocalStack, n: int) -> bool:
    return (await stack.worker_app.jobs.depth())["bulk"].due == n


async def _count(stack: LocalStack, where: object) -> int:
    async with stack.worker_app.store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(deliveries).where(where)) or 0)  # type: ignore[arg-type]
