"""Twilio Connect: Connect Apps over the API, and authorisation and deauthorisation through ``/_sim``."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from sim_helpers import (
    AC,
    AC_OTHER,
    TOKEN,
    TOKEN_OTHER,
    Api,
    Receiver,
    basic,
    connect_app,
    connected,
    deauthorize,
    path,
    schema_problems,
    sms,
)

from notifyq.simulator.spec import load_spec

APPS = path(AC, "ConnectApps.json")


def app_path(sid: str) -> str:
    return path(AC, f"ConnectApps/{sid}.json")


async def _control(api: Api, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await api.request("POST", route, data=json.dumps(body), auth=None)


async def test_a_console_made_app_over_the_api(api: Api) -> None:
    made = await connect_app(
        api,
        friendly_name="notifyq",
        company_name="notifyq Ltd",
        description="bulk sends",
        homepage_url="https://notifyq.example.com",
        authorize_redirect_url="https://notifyq.example.com/connect",
        deauthorize_callback_url="https://notifyq.example.com/deauth",
        deauthorize_callback_method="GET",
    )
    assert schema_problems(made, "api.v2010.account.connect_app") == []
    assert (made["account_sid"], made["permissions"]) == (AC, ["get-all", "post-all"])
    assert made["uri"] == app_path(made["sid"])
    status, fetched = await api.get(app_path(made["sid"]))
    assert (status, fetched) == (200, made)
    status, page = await api.get(APPS)
    assert (status, [a["sid"] for a in page["connect_apps"]]) == (200, [made["sid"]])
    status, body = await api.get(path(AC_OTHER, f"ConnectApps/{made['sid']}.json"), auth=(AC_OTHER, TOKEN_OTHER))
    assert (status, body["code"]) == (404, 20404)


async def test_update(api: Api) -> None:
    made = await connect_app(api, friendly_name="before", description="gone soon")
    form = {
        "AuthorizeRedirectUrl": "https://notifyq.example.com/connect",
        "CompanyName": "notifyq Ltd",
        "DeauthorizeCallbackMethod": "GET",
        "DeauthorizeCallbackUrl": "https://notifyq.example.com/deauth",
        "Description": "",  # cleared
        "FriendlyName": "after",
        "HomepageUrl": "https://notifyq.example.com",
        "Permissions": "get-all",
    }
    assert set(form) == set(load_spec().forms["UpdateConnectApp"].params)
    status, body = await api.send(form, path=app_path(made["sid"]))
    assert status == 200
    assert schema_problems(body, "api.v2010.account.connect_app") == []
    assert (body["friendly_name"], body["description"], body["permissions"]) == ("after", None, ["get-all"])
    assert (body["deauthorize_callback_method"], body["company_name"]) == ("GET", "notifyq Ltd")
    # Permissions: a comma-separated list, or the key repeated
    status, body = await api.send([("Permissions", "post-all"), ("Permissions", "get-all")], path=app_path(made["sid"]))
    assert (status, body["permissions"]) == (200, ["post-all", "get-all"])
    status, body = await api.send({"Permissions": "get-all, post-all"}, path=app_path(made["sid"]))
    assert (status, body["permissions"]) == (200, ["get-all", "post-all"])


BAD_UPDATES = [
    ("unknown parameter", {"Colour": "blue"}),
    ("permission", {"Permissions": "delete-all"}),
    ("method", {"DeauthorizeCallbackMethod": "PUT"}),
    ("URL", {"AuthorizeRedirectUrl": "notifyq.example.com/connect"}),
    ("FriendlyName over 64", {"FriendlyName": "x" * 65}),
]


@pytest.mark.parametrize("form", [f for _, f in BAD_UPDATES], ids=[n for n, _ in BAD_UPDATES])
async def test_bad_updates_are_refused(api: Api, form: dict[str, str]) -> None:
    made = await connect_app(api, friendly_name="kept")
    status, body = await api.send(form, path=app_path(made["sid"]))
    assert (status, body["code"]) == (400, 20001)
    _, fetched = await api.get(app_path(made["sid"]))
    assert fetched == made


async def test_there_is_no_create_over_the_api(api: Api) -> None:
    status, _ = await api.send({"FriendlyName": "x"}, path=APPS)
    assert status == 405


async def test_authorise_redirects_with_the_account_and_state(api: Api) -> None:
    made = await connect_app(api, friendly_name="notifyq", authorize_redirect_url="https://n.example.com/c?tenant=7")
    route = f"/_sim/connect-apps/{made['sid']}/authorize"
    async with api.session.post(api.base + route, json={"state": "u-42"}, allow_redirects=False) as r:
        assert r.status == 302
        outcome = await r.json()
        location = r.headers["Location"]
    assert location == outcome["redirect_url"]
    sub, customer = outcome["account_sid"], outcome["customer_account_sid"]
    assert location == f"https://n.example.com/c?tenant=7&AccountSid={sub}&state=u-42"
    accounts = api.sim.config.accounts
    assert accounts[sub].owner_account_sid == customer
    assert accounts[sub].friendly_name == "Subaccount for ConnectApp: notifyq"
    assert accounts[customer].owner_account_sid is None
    # without a state, only the account
    status, outcome = await _control(api, route, {"customer_account_sid": customer})
    assert status == 302
    assert outcome["redirect_url"] == f"https://n.example.com/c?tenant=7&AccountSid={sub}"  # the same subaccount


async def test_a_declined_authorisation(api: Api) -> None:
    made = await connect_app(api, authorize_redirect_url="https://n.example.com/c")
    before = set(api.sim.config.accounts)
    status, outcome = await _control(
        api, f"/_sim/connect-apps/{made['sid']}/authorize", {"decline": True, "state": "s"}
    )
    assert status == 302
    assert outcome["redirect_url"] == "https://n.example.com/c?error=unauthorized_client"
    assert outcome["account_sid"] is None
    assert set(api.sim.config.accounts) - before == {outcome["customer_account_sid"]}  # no subaccount


async def test_the_browser_follows_the_redirect_to_the_app(api: Api, receiver: Receiver) -> None:
    made = await connect_app(api, authorize_redirect_url=receiver.url("authorized"))
    route = f"/_sim/connect-apps/{made['sid']}/authorize"
    async with aiohttp.ClientSession() as browser, browser.post(api.base + route, json={"state": "xyz"}) as r:
        assert r.status == 200  # the app's answer, after the redirect
    (hit,) = receiver.on("authorized")
    assert hit.method == "GET"
    assert set(hit.form) == {"AccountSid", "state"}
    assert hit.form["state"] == "xyz"
    assert api.sim.connect.grant(hit.form["AccountSid"]) is not None


CONTROL_ERRORS = [
    ("/_sim/connect-apps", {"account_sid": "AC" + "9" * 32}, 400),
    ("/_sim/connect-apps", {"account_sid": AC, "permissions": ["delete-all"]}, 400),
    ("/_sim/connect-apps", {"account_sid": AC, "homepage_url": "not a url"}, 400),
    ("/_sim/connect-apps", {"account_sid": AC, "colour": "blue"}, 400),
    ("/_sim/connect-apps", {}, 400),
    ("/_sim/connect-apps/CN" + "9" * 32 + "/authorize", {}, 404),
    ("/_sim/connect-apps/CN" + "9" * 32 + "/deauthorize", {"account_sid": AC}, 404),
]


@pytest.mark.parametrize(("route", "body", "status"), CONTROL_ERRORS)
async def test_control_errors_are_problem_details(api: Api, route: str, body: dict[str, Any], status: int) -> None:
    async with api.session.post(api.base + route, json=body) as r:
        assert (r.status, r.content_type) == (status, "application/problem+json")
        problem = await r.json(content_type=None)
    assert (problem["status"], problem["type"]) == (status, "about:blank")
    assert problem["detail"]


async def test_authorise_and_deauthorise_refuse_unknown_accounts(api: Api) -> None:
    who = await connected(api)
    route = f"/_sim/connect-apps/{who.app_sid}"
    status, problem = await _control(api, route + "/authorize", {"customer_account_sid": "AC" + "9" * 32})
    assert (status, problem["status"]) == (400, 400)
    status, problem = await _control(api, route + "/deauthorize", {"account_sid": AC})
    assert (status, problem["status"]) == (404, 404)
    status, problem = await api.request("POST", route + "/authorize", data="not json", auth=None)
    assert status == 400


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_deauthorisation_calls_the_app_signed_with_the_owners_token(
    api: Api, receiver: Receiver, method: str
) -> None:
    who = await connected(api, deauthorize_callback_url=receiver.url("deauth"), deauthorize_callback_method=method)
    receiver.tokens[who.account_sid] = TOKEN  # the callback names the subaccount; the owner's token signs it
    await deauthorize(api, who)
    (hit,) = await receiver.wait(1, "deauth")
    assert hit.method == method
    assert hit.form == {"AccountSid": who.account_sid, "ConnectAppSid": who.app_sid}
    assert hit.signature_ok
    assert api.sim.connect.grant(who.account_sid) is None
    assert await api.sim.settle(2.0)
    assert len(receiver.hits) == 1


async def test_no_deauthorisation_callback_when_callbacks_are_off(make_api: Any, receiver: Receiver) -> None:
    api = await make_api(callbacks=False)
    who = await connected(api, deauthorize_callback_url=receiver.url("deauth"))
    await deauthorize(api, who)
    assert await api.sim.settle(2.0)
    assert receiver.hits == []
    status, _ = await api.send(sms(), path=path(who.account_sid, "Messages.json"), auth=(AC, TOKEN))
    assert status == 403


async def test_authorized_connect_apps(api: Api) -> None:
    who = await connected(api)
    customer_token = api.sim.config.accounts[who.customer_sid].auth_token
    for account_sid, auth in [(who.account_sid, (AC, TOKEN)), (who.customer_sid, (who.customer_sid, customer_token))]:
        status, page = await api.get(path(account_sid, "AuthorizedConnectApps.json"), auth=auth)
        assert status == 200
        (listed,) = page["authorized_connect_apps"]
        assert schema_problems(listed, "api.v2010.account.authorized_connect_app") == []
        assert (listed["account_sid"], listed["connect_app_sid"]) == (account_sid, who.app_sid)
        assert listed["permissions"] == ["get-all", "post-all"]
        status, fetched = await api.get(listed["uri"], auth=auth)
        assert (status, fetched) == (200, listed)
    status, page = await api.get(path(AC, "AuthorizedConnectApps.json"))
    assert page["authorized_connect_apps"] == []  # the owner authorised nothing
    await deauthorize(api, who)
    status, page = await api.get(
        path(who.customer_sid, "AuthorizedConnectApps.json"), auth=(who.customer_sid, customer_token)
    )
    assert (status, page["authorized_connect_apps"]) == (200, [])
    status, body = await api.get(
        path(who.customer_sid, f"AuthorizedConnectApps/{who.app_sid}.json"), auth=(who.customer_sid, customer_token)
    )
    assert (status, body["code"]) == (404, 20404)


async def test_deleting_an_app_revokes_its_grants(api: Api, receiver: Receiver) -> None:
    who = await connected(api, deauthorize_callback_url=receiver.url("deauth"))
    async with api.session.delete(api.base + app_path(who.app_sid), headers=basic()) as r:
        assert r.status == 204
    status, _ = await api.send(sms(), path=path(who.account_sid, "Messages.json"), auth=(who.account_sid, TOKEN))
    assert status == 401
    status, body = await api.get(app_path(who.app_sid))
    assert (status, body["code"]) == (404, 20404)
    assert await api.sim.settle(2.0)
    assert receiver.hits == []  # the owner deleted it: nobody is told


async def test_list_pages(api: Api) -> None:
    sids = [(await connect_app(api, friendly_name=str(i)))["sid"] for i in range(3)]
    _, page = await api.get(APPS, params={"PageSize": "2"})
    seen = [a["sid"] for a in page["connect_apps"]]
    _, page = await api.get(page["next_page_uri"])
    assert seen + [a["sid"] for a in page["connect_apps"]] == sids
    assert page["next_page_uri"] is None


async def test_reset_forgets_what_was_made(api: Api) -> None:
    who = await connected(api)
    await api.send({}, path=path(AC, "Applications.json"))
    status, _ = await api.request("POST", "/_sim/reset", auth=None)
    assert status == 200
    assert api.sim.connect.app(who.app_sid) is None
    assert who.account_sid not in api.sim.config.accounts
    assert who.customer_sid not in api.sim.config.accounts
    assert len(api.sim.applications) == 0
    assert AC in api.sim.config.accounts
