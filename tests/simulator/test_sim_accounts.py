"""The account resource: fetch, list, subaccounts, status changes."""

from __future__ import annotations

import re

from sim_helpers import (
    AC,
    AC_OTHER,
    AC_SUB,
    KEY_SECRET,
    KEY_SID,
    TOKEN,
    TOKEN_OTHER,
    TOKEN_SUB,
    Api,
    connected,
    path,
    schema_problems,
    sms,
)

ACCOUNTS = "/2010-04-01/Accounts.json"


def account_path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{sid}.json"


async def test_fetch_an_account(api: Api) -> None:
    status, body = await api.get(account_path(AC))
    assert status == 200
    assert schema_problems(body, "api.v2010.account") == []
    assert (body["sid"], body["owner_account_sid"], body["friendly_name"]) == (AC, AC, "main")
    assert (body["status"], body["type"], body["auth_token"]) == ("active", "Full", TOKEN)
    assert body["uri"] == f"/2010-04-01/Accounts/{AC}.json"
    assert body["subresource_uris"]["messages"] == path(AC, "Messages.json")
    assert body["subresource_uris"]["applications"] == path(AC, "Applications.json")
    status, body = await api.get(account_path(AC), auth=(KEY_SID, KEY_SECRET))
    assert (status, body["auth_token"]) == (200, TOKEN)


async def test_fetch_a_subaccount(api: Api) -> None:
    for auth in [(AC, TOKEN), (AC_SUB, TOKEN_SUB)]:
        status, body = await api.get(account_path(AC_SUB), auth=auth)
        assert (status, body["owner_account_sid"], body["auth_token"]) == (200, AC, TOKEN_SUB)
    status, body = await api.get(account_path(AC), auth=(AC_SUB, TOKEN_SUB))
    assert (status, body["code"]) == (403, 20003)
    status, body = await api.get(account_path(AC_SUB), auth=(AC_OTHER, TOKEN_OTHER))
    assert (status, body["code"]) == (403, 20003)


async def test_the_connect_owner_sees_an_authorised_account_but_not_its_token(api: Api) -> None:
    who = await connected(api)
    status, body = await api.get(account_path(who.account_sid), auth=(AC, TOKEN))
    assert status == 200
    assert (body["owner_account_sid"], body["auth_token"]) == (who.customer_sid, None)
    assert body["friendly_name"] == f"Subaccount for ConnectApp: {who.app_sid}"
    status, body = await api.get(account_path(who.account_sid), auth=(who.account_sid, TOKEN))
    assert (status, body["auth_token"]) == (200, None)
    status, body = await api.request("POST", account_path(who.account_sid), data={"FriendlyName": "x"})
    assert (status, body["code"]) == (403, 20003)


async def test_list_accounts(api: Api) -> None:
    status, page = await api.get(ACCOUNTS)
    assert status == 200
    assert [a["sid"] for a in page["accounts"]] == [AC, AC_SUB]
    for account in page["accounts"]:
        assert schema_problems(account, "api.v2010.account") == []
    _, page = await api.get(ACCOUNTS, params={"FriendlyName": "sub"})
    assert [a["sid"] for a in page["accounts"]] == [AC_SUB]
    _, page = await api.get(ACCOUNTS, params={"Status": "suspended"})
    assert page["accounts"] == []
    status, body = await api.get(ACCOUNTS, params={"Status": "asleep"})
    assert (status, body["code"]) == (400, 20001)
    _, page = await api.get(ACCOUNTS, params={"PageSize": "1"})
    assert [a["sid"] for a in page["accounts"]] == [AC]
    _, page = await api.get(page["next_page_uri"])
    assert [a["sid"] for a in page["accounts"]] == [AC_SUB]
    assert page["next_page_uri"] is None
    status, page = await api.get(ACCOUNTS, auth=(AC_SUB, TOKEN_SUB))
    assert [a["sid"] for a in page["accounts"]] == [AC_SUB]


async def test_create_a_subaccount(api: Api) -> None:
    status, body = await api.send({"FriendlyName": "tenant 7"}, path=ACCOUNTS)
    assert status == 201
    assert schema_problems(body, "api.v2010.account") == []
    sid, token = body["sid"], body["auth_token"]
    assert re.fullmatch(r"AC[0-9a-f]{32}", sid)
    assert (body["owner_account_sid"], body["friendly_name"], body["status"]) == (AC, "tenant 7", "active")
    status, created = await api.send(sms(), path=path(sid, "Messages.json"), auth=(sid, token))
    assert (status, created["account_sid"]) == (201, sid)
    status, body = await api.send({}, path=ACCOUNTS)
    assert status == 201
    assert re.fullmatch(r"SubAccount Created at \d{4}-\d\d-\d\d \d\d:\d\d [ap]m", body["friendly_name"])
    status, body = await api.send({}, path=ACCOUNTS, auth=(AC_SUB, TOKEN_SUB))
    assert (status, body["code"]) == (403, 20003)  # a subaccount makes no subaccounts
    status, body = await api.send({"Colour": "blue"}, path=ACCOUNTS)
    assert (status, body["code"]) == (400, 20001)
    status, body = await api.send({"FriendlyName": "x" * 65}, path=ACCOUNTS)
    assert (status, body["code"]) == (400, 20001)


async def test_a_parent_suspends_and_reactivates_a_subaccount(api: Api) -> None:
    status, body = await api.send({"Status": "suspended"}, path=account_path(AC_SUB))
    assert (status, body["status"]) == (200, "suspended")
    status, body = await api.send(sms(), path=path(AC_SUB, "Messages.json"))
    assert (status, body["code"]) == (401, 20003)
    status, body = await api.get(account_path(AC_SUB))  # the parent still sees it
    assert (status, body["status"]) == (200, "suspended")
    status, body = await api.send({"Status": "active"}, path=account_path(AC_SUB))
    assert (status, body["status"]) == (200, "active")
    status, _ = await api.send(sms(), path=path(AC_SUB, "Messages.json"))
    assert status == 201


async def test_status_rules(api: Api) -> None:
    status, body = await api.send({"Status": "suspended"}, path=account_path(AC_SUB), auth=(AC_SUB, TOKEN_SUB))
    assert (status, body["code"]) == (403, 20003)  # an account does not change its own status
    status, body = await api.send({"FriendlyName": "renamed"}, path=account_path(AC_SUB), auth=(AC_SUB, TOKEN_SUB))
    assert (status, body["friendly_name"]) == (200, "renamed")
    status, body = await api.send({"Status": "closed"}, path=account_path(AC_SUB))
    assert (status, body["status"]) == (200, "closed")
    status, body = await api.send({"Status": "active"}, path=account_path(AC_SUB))
    assert (status, body["code"]) == (400, 20001)  # closed is for good
    status, body = await api.send({"Status": "asleep"}, path=account_path(AC))
    assert (status, body["code"]) == (400, 20001)
    assert api.sim.config.accounts[AC].status == "active"
