"""Who reaches which account: Auth Tokens, API keys, parents, Connect App owners, account status."""

from __future__ import annotations

import pytest
from sim_helpers import (
    AC,
    AC_OTHER,
    AC_SUB,
    AC_TEST,
    KEY_OTHER,
    KEY_OTHER_SECRET,
    KEY_SECRET,
    KEY_SID,
    TOKEN,
    TOKEN_OTHER,
    TOKEN_SUB,
    TOKEN_TEST,
    Api,
    call,
    connected,
    deauthorize,
    path,
    sms,
)


async def _send(api: Api, account_sid: str, auth: tuple[str, str]) -> tuple[int, dict[str, object]]:
    status, body = await api.send(sms(), path=path(account_sid, "Messages.json"), auth=auth)
    return status, body


def _refused(status: int, body: dict[str, object], expected: int) -> None:
    assert (status, body["code"], body["status"]) == (expected, 20003, expected), body
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20003"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ((AC, TOKEN), 201),  # the account's Auth Token
        ((KEY_SID, KEY_SECRET), 201),  # an API key of the account
        ((KEY_OTHER, KEY_OTHER_SECRET), 401),  # an API key of another account: not one of this account's keys
        ((AC_OTHER, TOKEN_OTHER), 403),  # another account's Auth Token: good credentials, not this account
        ((AC_SUB, TOKEN_SUB), 403),  # a subaccount's credentials do not reach its parent
        ((KEY_SID, TOKEN), 401),  # a key with another secret
    ],
)
async def test_who_reaches_an_account(api: Api, auth: tuple[str, str], expected: int) -> None:
    status, body = await _send(api, AC, auth)
    if expected == 201:
        assert (status, body["account_sid"]) == (201, AC)
    else:
        _refused(status, body, expected)
        assert api.sim.messages == []


@pytest.mark.parametrize("auth", [(AC, TOKEN), (KEY_SID, KEY_SECRET), (AC_SUB, TOKEN_SUB)])
async def test_parent_credentials_reach_a_subaccount(api: Api, auth: tuple[str, str]) -> None:
    status, body = await _send(api, AC_SUB, auth)
    assert (status, body["account_sid"]) == (201, AC_SUB)
    status, page = await api.get(path(AC_SUB, "Messages.json"), auth=auth)
    assert [m["sid"] for m in page["messages"]] == [body["sid"]]
    status, _ = await api.get(path(AC, f"Messages/{body['sid']}.json"), auth=auth)
    assert status in {404, 403}  # the message is the subaccount's, not the parent's


async def test_connect_owner_reaches_an_authorised_account_until_it_is_deauthorised(api: Api) -> None:
    who = await connected(api)
    customer_token = api.sim.config.accounts[who.customer_sid].auth_token
    # the Connect login (the authorised SID and the owner's Auth Token), the owner's own credentials, and
    # the customer's (the account is its subaccount) all reach it
    modes = [(who.account_sid, TOKEN), (AC, TOKEN), (KEY_SID, KEY_SECRET), (who.customer_sid, customer_token)]
    for auth in modes:
        status, body = await _send(api, who.account_sid, auth)
        assert (status, body["account_sid"]) == (201, who.account_sid), auth
        status, _ = await api.get(path(who.account_sid, f"Messages/{body['sid']}.json"), auth=auth)
        assert status == 200, auth
    # a Connect login reaches its account only, not the owner's
    status, body = await _send(api, AC, (who.account_sid, TOKEN))
    _refused(status, body, 403)
    # someone else's token with the authorised SID is no login at all
    status, body = await _send(api, who.account_sid, (who.account_sid, TOKEN_OTHER))
    _refused(status, body, 401)

    await deauthorize(api, who)
    status, body = await _send(api, who.account_sid, (who.account_sid, TOKEN))
    _refused(status, body, 401)  # the Connect login no longer authenticates
    status, body = await _send(api, who.account_sid, (AC, TOKEN))
    _refused(status, body, 403)  # the owner's credentials no longer reach it
    status, body = await _send(api, who.account_sid, (KEY_SID, KEY_SECRET))
    _refused(status, body, 401)
    status, body = await _send(api, who.account_sid, (who.customer_sid, customer_token))
    assert status == 201  # the customer still reaches its subaccount


async def test_connect_permissions_limit_the_owner(api: Api) -> None:
    who = await connected(api, permissions=["get-all"])
    status, page = await api.get(path(who.account_sid, "Messages.json"), auth=(who.account_sid, TOKEN))
    assert (status, page["messages"]) == (200, [])
    for auth in [(who.account_sid, TOKEN), (AC, TOKEN)]:
        status, body = await _send(api, who.account_sid, auth)
        _refused(status, body, 403)
    who = await connected(api, permissions=["post-all"])
    status, body = await _send(api, who.account_sid, (AC, TOKEN))
    assert status == 201
    status, body = await api.get(path(who.account_sid, "Messages.json"), auth=(AC, TOKEN))
    _refused(status, body, 403)


async def test_permissions_are_those_granted_when_authorised(api: Api) -> None:
    who = await connected(api, permissions=["get-all"])
    form = {"Permissions": "get-all,post-all"}
    status, app = await api.send(form, path=path(AC, f"ConnectApps/{who.app_sid}.json"))
    assert (status, app["permissions"]) == (200, ["get-all", "post-all"])
    status, body = await _send(api, who.account_sid, (AC, TOKEN))
    _refused(status, body, 403)  # a new permission needs the customer to authorise again
    outcome_status, outcome = await api.request(
        "POST",
        f"/_sim/connect-apps/{who.app_sid}/authorize",
        data=f'{{"customer_account_sid": "{who.customer_sid}"}}',
        auth=None,
    )
    assert (outcome_status, outcome["account_sid"]) == (200, who.account_sid)  # the same subaccount again
    status, body = await _send(api, who.account_sid, (AC, TOKEN))
    assert status == 201


@pytest.mark.parametrize("state", ["suspended", "closed"])
async def test_an_inactive_account_authenticates_nobody_and_is_reached_by_nobody(api: Api, state: str) -> None:
    status, _ = await api.request("POST", f"/_sim/accounts/{AC_SUB}", data=f'{{"status": "{state}"}}', auth=None)
    assert status == 200
    for auth in [(AC_SUB, TOKEN_SUB), (AC, TOKEN), (KEY_SID, KEY_SECRET)]:
        status, body = await _send(api, AC_SUB, auth)
        _refused(status, body, 401)
    status, body = await api.send(call(), path=path(AC_SUB, "Calls.json"), auth=(AC, TOKEN))
    _refused(status, body, 401)
    status, body = await _send(api, AC, (AC_SUB, TOKEN_SUB))
    _refused(status, body, 401)  # its credentials are refused whatever they ask
    status, body = await _send(api, AC, (AC, TOKEN))
    assert status == 201  # the parent is unaffected
    # a suspended parent takes its subaccounts with it
    api.sim.config.accounts[AC_SUB].status = "active"
    api.sim.config.accounts[AC].status = state
    status, body = await _send(api, AC_SUB, (AC_SUB, TOKEN_SUB))
    _refused(status, body, 401)


async def test_test_credentials_reach_only_messages_and_calls_create(api: Api) -> None:
    auth = (AC_TEST, TOKEN_TEST)
    status, _ = await api.send(sms(), path=path(AC_TEST, "Messages.json"), auth=auth)
    assert status == 201
    status, _ = await api.send(call(), path=path(AC_TEST, "Calls.json"), auth=auth)
    assert status == 201
    for rest in ["Messages.json", "Calls.json", "Applications.json", "ConnectApps.json"]:
        status, body = await api.get(path(AC_TEST, rest), auth=auth)
        _refused(status, body, 403)
    status, body = await api.get(f"/2010-04-01/Accounts/{AC_TEST}.json", auth=auth)
    _refused(status, body, 403)


async def test_unknown_account_in_the_path(api: Api) -> None:
    status, body = await _send(api, "AC" + "9" * 32, (AC, TOKEN))
    _refused(status, body, 403)
    status, body = await _send(api, "AC" + "9" * 32, (KEY_SID, KEY_SECRET))
    _refused(status, body, 401)
