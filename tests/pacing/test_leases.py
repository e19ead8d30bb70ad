"""Account leases for requests that send nothing (look-ups, fetches): they share the account's cap with sends."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr
from redis.asyncio import Redis

from notifyq.pacing.pacer import Grant, Pacer, Wait
from notifyq.settings import PacingSettings, Settings, TwilioAccount, TwilioSettings

ACCOUNT_SID = "AC" + "b" * 32


def make_settings(*, max_in_flight: int = 50, senders: dict[str, float] | None = None) -> Settings:
    account = TwilioAccount(account_sid=ACCOUNT_SID, auth_token=SecretStr("token"), max_in_flight=max_in_flight)
    return Settings(twilio=TwilioSettings(accounts={"main": account}), pacing=PacingSettings(senders=senders or {}))


async def test_leases_count_against_the_accounts_requests_in_flight(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=2, senders={"S": 100.0}))
    first, second = await pacer.lease(ACCOUNT_SID), await pacer.lease(ACCOUNT_SID)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    full = await pacer.lease(ACCOUNT_SID)
    assert isinstance(full, Wait)
    assert full.reason == "account in-flight cap 2 reached"
    # a send finds the account as full as a look-up does
    send = await pacer.acquire(account_sid=ACCOUNT_SID, sender="S", sender_kind="long_code", channel="sms", cost=1)
    assert isinstance(send, Wait)
    assert "in-flight cap" in send.reason
    assert (await pacer.snapshot())["accounts"][ACCOUNT_SID]["in_flight"] == 2
    await pacer.release(first, account_sid=ACCOUNT_SID, throttled=False)
    assert isinstance(await pacer.lease(ACCOUNT_SID), Grant)


async def test_a_full_accounts_turn_is_waited_for_in_process(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=1))
    held = await pacer.lease(ACCOUNT_SID)
    assert isinstance(held, Grant)

    async def answered_later() -> None:
        await asyncio.sleep(0.05)  # the request in flight takes this long
        await pacer.release(held, account_sid=ACCOUNT_SID, throttled=False)

    answer = asyncio.create_task(answered_later())
    assert isinstance(await pacer.lease(ACCOUNT_SID, wait_s=2.0), Grant)
    await answer


async def test_a_paused_account_gives_no_lease_and_is_not_waited_for(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings())
    await pacer.pause_account(ACCOUNT_SID, "20003: Authenticate")
    answer = await pacer.lease(ACCOUNT_SID, wait_s=60.0)
    assert isinstance(answer, Wait)
    assert answer.reason == "account paused: 20003: Authenticate"


async def test_a_throttled_release_of_a_lease_lowers_the_cap(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(max_in_flight=8))
    lease = await pacer.lease(ACCOUNT_SID)
    assert isinstance(lease, Grant)
    await pacer.release(lease, account_sid=ACCOUNT_SID, throttled=True)
    assert (await pacer.snapshot())["accounts"][ACCOUNT_SID]["cap"] == 4.0
