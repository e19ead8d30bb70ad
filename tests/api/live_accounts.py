"""The live test's requests to the account registry, Twilio Connect's two routes, and the token refusals.

Each drives a route of a running stack to the statuses the document gives it; ``Exchange`` checks every
answer against the document. The stack's simulator knows ``AC_TENANT`` (``tests/api/test_openapi.py``).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from helpers import people, sms_batch
from notifyq.api import STATE
from notifyq.api.accounts import PAUSE_REASON_MAX
from notifyq.api.operations import OPERATIONS
from notifyq.api.scopes import needed
from notifyq.api.spec import BEARER
from notifyq.testing import ACCOUNT_SID, AUTH_TOKEN, free_port
from notifyq.tokens import Scope, TokenLimits, issue

from .exchange import AUTH, Exchange, signed

AC_TENANT: Final = "AC" + "7e" * 16
TENANT_TOKEN: Final = "tenant-auth-token-0123456789abcdef"
TENANT: Final = {"name": "tenant", "kind": "auth_token", "account_sid": AC_TENANT, "auth_token": TENANT_TOKEN}
PAGE: Final = "https://tenant.example.com/connected"
_AUTHORIZE, _DEAUTHORIZE = "/twilio/connect/authorize", "/twilio/connect/deauthorize"
_ONE = "/v1/accounts/{name}"


async def registry(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/v1/accounts``: every answer but the 409 of a deauthorized account (``connect`` reaches it)."""
    accounts = "/v1/accounts"
    status, listed = await ex.call("GET", accounts, headers=AUTH)
    assert (status, [a["name"] for a in listed["accounts"]]) == (200, ["main"])
    assert AUTH_TOKEN not in str(listed)
    status, refused = await ex.call("POST", accounts, json=TENANT | {"auth_token": "not-its-token"}, headers=AUTH)
    assert (status, refused["detail"]) == (422, "Twilio did not accept the credentials")
    assert refused["errors"][0]["field"] == "credentials"
    assert "Twilio does not accept the AccountSid and its Auth Token" in refused["errors"][0]["reason"]
    assert (await ex.call("POST", accounts, json={"name": "tenant"}, headers=AUTH))[0] == 422
    assert (await ex.call("POST", accounts, data=b"{", headers=AUTH))[0] == 400
    with monkeypatch.context() as m:  # nothing listens there: Twilio is unreachable
        m.setattr(ex.stack.settings.twilio, "base_url", f"http://127.0.0.1:{free_port()}")
        assert (await ex.call("POST", accounts, json=TENANT, headers=AUTH))[0] == 502
    status, added = await ex.call("POST", accounts, json=TENANT, headers=AUTH)
    assert (status, added["name"], added["paused"]) == (201, "tenant", None)
    assert TENANT_TOKEN not in str(added)
    assert (await ex.call("POST", accounts, json=TENANT, headers=AUTH))[0] == 409
    assert (await ex.call("GET", _ONE, f"/v1/accounts/{AC_TENANT}", headers=AUTH))[1]["name"] == "tenant"
    await ex.call("GET", _ONE, "/v1/accounts/nothing", headers=AUTH)
    pause, resume = _ONE + "/pause", _ONE + "/resume"
    status, paused = await ex.call("POST", pause, "/v1/accounts/tenant/pause", json={"reason": "asked"}, headers=AUTH)
    assert (status, paused["paused"]) == (200, "asked")
    long = {"reason": "x" * (PAUSE_REASON_MAX + 1)}
    assert (await ex.call("POST", pause, "/v1/accounts/tenant/pause", json=long, headers=AUTH))[0] == 422
    assert (await ex.call("POST", pause, "/v1/accounts/tenant/pause", data=b"{", headers=AUTH))[0] == 400
    await ex.call("POST", pause, "/v1/accounts/nothing/pause", headers=AUTH)
    status, resumed = await ex.call("POST", resume, "/v1/accounts/tenant/resume", headers=AUTH)
    assert (status, resumed["paused"]) == (200, None)
    await ex.call("POST", resume, "/v1/accounts/nothing/resume", headers=AUTH)
    assert (await ex.call("DELETE", _ONE, "/v1/accounts/main", headers=AUTH))[0] == 409  # the environment's
    await ex.call("DELETE", _ONE, "/v1/accounts/nothing", headers=AUTH)


async def _authorised_at_twilio(ex: Exchange) -> str:
    """Where the simulator sends the customer's browser once they authorise our Connect App."""
    base = ex.stack.settings.twilio.base_url
    app = {
        "account_sid": ACCOUNT_SID,
        "friendly_name": "notifyq",
        "authorize_redirect_url": ex.stack.api_url + _AUTHORIZE,
        "deauthorize_callback_url": ex.stack.api_url + _DEAUTHORIZE,
        "permissions": ["get-all", "post-all"],
    }
    async with ex.session.post(base + "/_sim/connect-apps", json=app) as r:
        assert r.status == 201
        sid = (await r.json())["sid"]
    async with ex.session.post(f"{base}/_sim/connect-apps/{sid}/authorize", json={}, allow_redirects=False) as r:
        return str((await r.json())["redirect_url"])


async def connect(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connect's Authorize URL and Deauthorize callback (by POST, then by GET), configured step by step."""
    cfg, sid = ex.stack.settings.twilio.connect, {"AccountSid": AC_TENANT}
    query = f"{_DEAUTHORIZE}?{urlencode(sid)}"
    browser: dict[str, Any] = {"allow_redirects": False}
    assert (await ex.call("GET", _AUTHORIZE, f"{_AUTHORIZE}?{urlencode(sid)}", **browser))[0] == 503
    assert (await ex.call("POST", _DEAUTHORIZE, data=sid, headers=signed(ex.stack, _DEAUTHORIZE, sid)))[0] == 503
    monkeypatch.setattr(cfg, "owner_account", "main")
    assert (await ex.call("GET", _AUTHORIZE, _AUTHORIZE + "?error=unauthorized_client", **browser))[0] == 400
    made_up = f"{_AUTHORIZE}?AccountSid=AC{'12' * 16}"
    assert (await ex.call("GET", _AUTHORIZE, made_up, **browser))[0] == 400
    landing_url = urlsplit(await _authorised_at_twilio(ex))
    status, text = await ex.call("GET", _AUTHORIZE, f"{landing_url.path}?{landing_url.query}", **browser)
    assert (status, text.startswith("Connected AC")) == (200, True)
    with monkeypatch.context() as m:
        m.setattr(ex.stack.settings.twilio, "base_url", f"http://127.0.0.1:{free_port()}")
        assert (await ex.call("GET", _AUTHORIZE, made_up, **browser))[0] == 502
    monkeypatch.setattr(cfg, "redirect_page", PAGE)
    async with ex.session.get(ex.stack.api_url + _AUTHORIZE + "?error=unauthorized_client", **browser) as r:
        ex.check("GET", _AUTHORIZE, r.status, r.content_type, await r.text(), r.headers)
        landing = dict(parse_qsl(urlsplit(r.headers["Location"]).query))
    assert (r.status, landing["result"]) == (302, "declined")
    await ex.call("POST", _DEAUTHORIZE, data=sid)  # unsigned: 403
    no_sid = {"ConnectAppSid": "CN" + "0" * 32}
    await ex.call("POST", _DEAUTHORIZE, data=no_sid, headers=signed(ex.stack, _DEAUTHORIZE, no_sid))
    big = {"AccountSid": AC_TENANT, "Big": "x" * 70_000}
    await ex.call("POST", _DEAUTHORIZE, data=big, headers={"X-Twilio-Signature": "x"})
    await ex.call("GET", _DEAUTHORIZE, query, headers=signed(ex.stack, query, {}))  # configured as POST: 405
    assert (await ex.call("POST", _DEAUTHORIZE, data=sid, headers=signed(ex.stack, _DEAUTHORIZE, sid)))[0] == 200
    status, refused = await ex.call("POST", _ONE + "/resume", "/v1/accounts/tenant/resume", headers=AUTH)
    assert (status, refused["title"]) == (409, "Deauthorized")
    monkeypatch.setattr(cfg, "deauthorize_method", "GET")
    await ex.call("GET", _DEAUTHORIZE, query)  # unsigned: 403
    await ex.call("GET", _DEAUTHORIZE, _DEAUTHORIZE, headers=signed(ex.stack, _DEAUTHORIZE, {}))  # no AccountSid
    await ex.call("POST", _DEAUTHORIZE, data=sid, headers=signed(ex.stack, _DEAUTHORIZE, sid))  # 405
    assert (await ex.call("GET", _DEAUTHORIZE, query, headers=signed(ex.stack, query, {})))[0] == 200
    monkeypatch.setattr(cfg, "owner_account", None)
    assert (await ex.call("GET", _DEAUTHORIZE, query, headers=signed(ex.stack, query, {})))[0] == 503
    status, removed = await ex.call("DELETE", _ONE, "/v1/accounts/tenant", headers=AUTH)
    assert (status, removed["status"]) == (200, "deauthorized")


async def _token(ex: Exchange, *scopes: Scope, **kw: Any) -> dict[str, str]:
    issued = issue()
    store = ex.stack.app[STATE].require_store()
    await store.add_token(issued.id, issued.secret_hash, name="openapi", scopes=scopes, **{"accounts": None} | kw)
    return {"Authorization": f"Bearer {issued.text}"}


async def token_refusals(ex: Exchange) -> None:
    """Every bearer route refuses a token without its scope (403) and one past its rate (429)."""
    bearer = [op for op in OPERATIONS if BEARER in op.schemes]
    nothing = await _token(ex, limits=TokenLimits())
    rated = await _token(ex, *Scope, limits=TokenLimits(rate=0.001, burst=1))  # one request, then a long wait
    assert (await ex.call("GET", "/v1/accounts", headers=rated))[0] == 200
    for op in bearer:
        path = op.path.replace("{", "").replace("}", "")
        status, body = await ex.call(op.method, op.path, path, headers=nothing)
        assert (status, body["scope"]) == (403, needed(op.method, op.path)), op.path
        assert (await ex.call(op.method, op.path, path, headers=rated))[0] == 429
    quota = await _token(ex, Scope.SUBMIT, limits=TokenLimits(daily=1))
    status, body = await ex.call("POST", "/v1/batches", json=sms_batch(people(2)), headers=quota)
    assert (status, body["quota"], body["limit"], body["left"]) == (403, "daily", 1, 1)
    elsewhere = await _token(ex, Scope.SUBMIT, accounts=("tenant",), limits=TokenLimits())
    status, body = await ex.call("POST", "/v1/batches", json=sms_batch(people(1)), headers=elsewhere)
    assert (status, body["title"]) == (403, "Forbidden")
    assert "'main'" in body["detail"]


async def over_the_limit(ex: Exchange) -> tuple[int, int]:
    """The account routes that read a body, sent one over the stack's limit."""
    big = {"name": "x" * 8192}
    added, _ = await ex.call("POST", "/v1/accounts", json=big, headers=AUTH)
    paused, _ = await ex.call("POST", _ONE + "/pause", "/v1/accounts/main/pause", json=big, headers=AUTH)
    return added, paused
