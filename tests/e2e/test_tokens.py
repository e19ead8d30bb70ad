"""Producer tokens over HTTP: scopes per route, revocation, accounts, rate limits, quotas, ops sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import func, select

from helpers import people, sms_batch
from notifyq.api import STATE, create_app
from notifyq.api.app import ApiState
from notifyq.api.auth import PRINCIPAL
from notifyq.api.limits import TokenLimiter
from notifyq.api.scopes import PROTECTED, needed
from notifyq.settings import TwilioAccount
from notifyq.store import Store
from notifyq.store.schema import batches
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, free_port, local_settings
from notifyq.tokens import Scope, TokenLimits, issue

OTHER_SID = "AC" + "e1" * 16
BATCH = "01J0000000000000000000000A"  # no such batch: the route answers 404 once the token may ask
DELIVERY = "01J0000000000000000000000B"
# every route and what it needs; the test below checks the app has no /v1 or /ops route missing here
ROUTES: list[tuple[str, str, Scope]] = [
    ("POST", "/v1/batches", Scope.SUBMIT),
    ("GET", f"/v1/batches/{BATCH}", Scope.READ),
    ("GET", f"/v1/batches/{BATCH}/deliveries", Scope.READ),
    ("POST", f"/v1/batches/{BATCH}/cancel", Scope.SUBMIT),
    ("GET", f"/v1/replays/{BATCH}", Scope.REPLAY),
    ("GET", "/v1/accounts", Scope.ACCOUNTS),
    ("GET", f"/v1/deliveries/{DELIVERY}", Scope.READ),
    ("GET", "/ops/data", Scope.OPS),
]


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    store: Store
    state: ApiState

    async def token(
        self,
        *scopes: Scope,
        accounts: tuple[str, ...] | None = None,
        limits: TokenLimits | None = None,
        name: str = "producer",
    ) -> tuple[str, str]:
        """A new registry token's text and id."""
        issued = issue()
        await self.store.add_token(
            issued.id, issued.secret_hash, name=name, scopes=scopes, accounts=accounts, limits=limits or TokenLimits()
        )
        return issued.text, issued.id

    async def call(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
        """The answer's status and JSON body."""
        status, data, _ = await self.answer(method, path, token, body)
        return status, data

    async def answer(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any, Any]:
        """The answer's status, JSON body and headers."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.url + path, headers=headers, json=body) as resp:
            return resp.status, await resp.json(content_type=None), resp.headers

    async def stored_batches(self) -> int:
        async with self.store.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(batches))).scalar_one())


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response({"name": request[PRINCIPAL].name, "id": request[PRINCIPAL].id})


async def _nothing(_request: web.Request) -> web.Response:
    return web.json_response({})


@pytest.fixture
async def api(tmp_path: Path, redis_url: str, database_url: str) -> AsyncIterator[Api]:
    accounts = {
        "main": TwilioAccount(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN)),
        "other": TwilioAccount(account_sid=OTHER_SID, auth_token=SecretStr(AUTH_TOKEN)),
    }
    settings = local_settings(
        data_dir=tmp_path,
        redis_url=redis_url,
        sim_url="http://127.0.0.1:9",  # nothing is sent: no worker runs
        api_port=free_port(),
        database_url=database_url,
        twilio={"accounts": accounts, "default_account": "main"},
    )
    app = create_app(settings, redis_url=redis_url, apply_callbacks=False)
    app.router.add_get("/v1/batches/whoami/principal", _whoami)  # under GET /v1/batches: read
    app.router.add_get("/v1/unlisted", _nothing)  # in no line of the table
    async with TestServer(app) as server, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield Api(str(server.make_url("")).rstrip("/"), http, app[STATE].require_store(), app[STATE])


def _batch(n: int = 2, **extra: object) -> dict[str, object]:
    return sms_batch(people(n), **extra)


async def test_every_v1_and_ops_route_of_the_app_has_a_scope(tmp_path: Path, redis_url: str) -> None:
    settings = local_settings(data_dir=tmp_path, redis_url=redis_url, sim_url="http://127.0.0.1:9", api_port=1)
    app = create_app(settings, redis_url=redis_url)
    seen = 0
    for route in app.router.routes():
        pattern = route.resource.canonical if route.resource is not None else ""
        if any(pattern == p or pattern.startswith(p + "/") for p in PROTECTED):
            seen += 1
            assert needed(route.method, pattern) != "unlisted", (route.method, pattern)
    assert seen >= len(ROUTES)


@pytest.mark.parametrize("scope", list(Scope))
async def test_each_scope_opens_its_routes_and_no_other(api: Api, scope: Scope) -> None:
    token, _ = await api.token(scope)
    for method, path, needs in ROUTES:
        status, body = await api.call(method, path, token, _batch() if path == "/v1/batches" else {})
        if needs == scope:
            assert status not in {401, 403, 429}, (method, path, status, body)
        else:
            assert status == 403, (method, path, status, body)
            assert body["scope"] == needs.value
            assert f"the {needs.value} scope" in body["detail"]


async def test_the_environment_tokens_keep_every_scope(api: Api) -> None:
    for method, path, _needs in ROUTES:
        status, body = await api.call(method, path, API_TOKEN, _batch() if path == "/v1/batches" else {})
        assert status not in {401, 403, 429}, (method, path, status, body)
    status, body = await api.call("GET", "/v1/batches/whoami/principal", API_TOKEN)
    assert (status, body["id"]) == (200, "env")


async def test_a_route_in_no_line_of_the_table_is_refused_to_every_token(api: Api) -> None:
    every, _ = await api.token(*Scope)
    for token in (API_TOKEN, every):
        status, body = await api.call("GET", "/v1/unlisted", token)
        assert status == 403
        assert "no scope" in body["detail"]
    status, _ = await api.call("GET", "/v1/unlisted", None)
    assert status == 401


async def test_a_path_or_method_no_route_has_is_404_or_405_once_the_token_is_known(api: Api) -> None:
    token, _ = await api.token(Scope.READ)
    assert (await api.call("GET", "/v1/nothing/here", None))[0] == 401
    assert (await api.call("GET", "/v1/nothing/here", token))[0] == 404
    assert (await api.call("DELETE", f"/v1/batches/{BATCH}", token))[0] == 405


async def test_the_principal_is_on_the_request(api: Api) -> None:
    token, token_id = await api.token(Scope.READ, name="reporting")
    status, body = await api.call("GET", "/v1/batches/whoami/principal", token)
    assert (status, body) == (200, {"name": "reporting", "id": token_id})


async def test_no_token_an_unknown_one_a_wrong_secret_or_a_revoked_one_is_401(api: Api) -> None:
    token, token_id = await api.token(Scope.READ)
    unknown = issue().text
    wrong_secret = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    for given in (None, "not-a-token", unknown, wrong_secret, API_TOKEN + "x"):
        status, body = await api.call("GET", f"/v1/batches/{BATCH}", given)
        assert status == 401, given
        assert body["title"] == "Unauthorized"
    assert (await api.call("GET", f"/v1/batches/{BATCH}", token))[0] == 404
    assert await api.store.revoke_token(token_id)
    assert (await api.call("GET", f"/v1/batches/{BATCH}", token))[0] == 401


async def test_a_token_limited_to_an_account_cannot_send_from_another_and_nothing_is_stored(api: Api) -> None:
    token, _ = await api.token(Scope.SUBMIT, accounts=("other",))
    for batch in (_batch(account="main"), _batch()):  # named, or the default account
        status, body = await api.call("POST", "/v1/batches", token, batch)
        assert status == 403
        assert "'main'" in body["detail"]
    assert await api.stored_batches() == 0
    status, body = await api.call("POST", "/v1/batches", token, _batch(account="other"))
    assert (status, body.get("total")) == (202, 2), body
    assert await api.stored_batches() == 1


async def test_past_its_rate_a_token_gets_429_with_retry_after_and_is_let_in_after_it(api: Api) -> None:
    # a token every 4 s, a burst of 1: the second request comes well inside the 4 s
    token, _ = await api.token(Scope.READ, limits=TokenLimits(rate=0.25, burst=1))
    assert (await api.call("GET", f"/v1/batches/{BATCH}", token))[0] == 404
    status, body, headers = await api.answer("GET", f"/v1/batches/{BATCH}", token)
    assert status == 429
    assert body["title"] == "Too many requests"
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 4
    other, _ = await api.token(Scope.READ, limits=TokenLimits(rate=0.25, burst=1))
    assert (await api.call("GET", f"/v1/batches/{BATCH}", other))[0] == 404  # a bucket per token
    assert (await api.call("GET", f"/v1/batches/{BATCH}", API_TOKEN))[0] == 404  # no limit on the environment's
    await asyncio.sleep(retry_after)  # what the answer asks of the client, nothing more
    assert (await api.call("GET", f"/v1/batches/{BATCH}", token))[0] == 404


async def test_a_batch_past_the_daily_quota_is_refused_whole_and_nothing_is_stored(api: Api) -> None:
    token, _ = await api.token(Scope.SUBMIT, limits=TokenLimits(daily=5))
    assert (await api.call("POST", "/v1/batches", token, _batch(3)))[0] == 202
    status, body = await api.call("POST", "/v1/batches", token, _batch(3))
    assert status == 403
    assert (body["title"], body["quota"], body["limit"], body["left"]) == ("Quota exceeded", "daily", 5, 2)
    assert "daily quota is 5 recipients and 2 are left; this batch has 3" in body["detail"]
    assert await api.stored_batches() == 1
    assert (await api.call("POST", "/v1/batches", token, _batch(2)))[0] == 202  # the refused one counted nothing


async def test_a_batch_past_the_monthly_quota_is_refused_whole_and_nothing_is_stored(api: Api) -> None:
    token, _ = await api.token(Scope.SUBMIT, limits=TokenLimits(daily=100, monthly=4))
    assert (await api.call("POST", "/v1/batches", token, _batch(3)))[0] == 202
    status, body = await api.call("POST", "/v1/batches", token, _batch(2))
    assert status == 403
    assert (body["quota"], body["limit"], body["left"]) == ("monthly", 4, 1)
    assert await api.stored_batches() == 1


async def test_a_repeated_idempotent_batch_counts_once(api: Api) -> None:
    token, _ = await api.token(Scope.SUBMIT, limits=TokenLimits(daily=3))
    first = await api.call("POST", "/v1/batches", token, _batch(3, idempotency_key="k-1"))
    again = await api.call("POST", "/v1/batches", token, _batch(3, idempotency_key="k-1"))
    assert (first[0], again[0], again[1]["id"]) == (202, 200, first[1]["id"])


async def test_ops_sign_in_takes_a_token_with_the_ops_scope_and_revoking_it_ends_the_session(api: Api) -> None:
    reader, _ = await api.token(Scope.READ)
    operator, operator_id = await api.token(Scope.OPS)
    form = {"next": "/ops"}
    async with api.http.post(f"{api.url}/ops/signin", data=form | {"token": reader}, allow_redirects=False) as resp:
        assert resp.status == 401  # a valid token, but not an operator's
    async with api.http.post(f"{api.url}/ops/signin", data=form | {"token": operator}, allow_redirects=False) as resp:
        assert resp.status == 303
        cookie = resp.cookies["notifyq_ops"].value
    assert operator not in cookie
    jar = {"Cookie": f"notifyq_ops={cookie}"}
    async with api.http.get(f"{api.url}/ops/data", headers=jar) as resp:
        assert resp.status == 200
    async with api.http.get(f"{api.url}/v1/batches/{BATCH}", headers=jar) as resp:
        assert resp.status == 401  # the cookie is for the ops pages only
    assert await api.store.revoke_token(operator_id)
    async with api.http.get(f"{api.url}/ops/data", headers=jar) as resp:
        assert resp.status == 401


async def test_without_redis_a_limited_token_is_refused_503_and_nothing_is_stored(api: Api) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    api.state.limiter = TokenLimiter(dead)
    try:
        rated, _ = await api.token(Scope.READ, limits=TokenLimits(rate=5.0, burst=5))
        status, body, headers = await api.answer("GET", f"/v1/batches/{BATCH}", rated)
        assert (status, headers["Retry-After"]) == (503, "1"), body
        quota, _ = await api.token(Scope.SUBMIT, limits=TokenLimits(daily=100))
        status, body = await api.call("POST", "/v1/batches", quota, _batch())
        assert status == 503, body
        assert await api.stored_batches() == 0
        unlimited, _ = await api.token(Scope.READ)  # a token without limits needs no Redis to be let in
        assert (await api.call("GET", f"/v1/batches/{BATCH}", unlimited))[0] == 404
    finally:
        await dead.aclose()


async def test_a_preview_checks_the_tokens_accounts_and_takes_no_quota(api: Api) -> None:
    token, _ = await api.token(Scope.SUBMIT, accounts=("other",), limits=TokenLimits(daily=3))
    status, body = await api.call("POST", "/v1/batches?dry_run=true", token, _batch(account="main"))
    assert (status, "'main'" in body["detail"]) == (403, True)
    for _ in range(3):  # 9 recipients previewed: past the daily quota of 3, were they counted
        status, body = await api.call("POST", "/v1/batches?dry_run=true", token, _batch(3, account="other"))
        assert (status, body["dry_run"], body["total"], body["account"]) == (200, True, 3, "other")
    assert await api.stored_batches() == 0
    assert (await api.call("POST", "/v1/batches", token, _batch(3, account="other")))[0] == 202
