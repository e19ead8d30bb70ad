"""Operating the pacer: pauses, rate overrides, the snapshot, and the checks on what callers pass."""

from __future__ import annotations

import time

import pytest
from pacing_helpers import ACCOUNT_SID, make_settings, reserve, send_now
from redis.asyncio import Redis

from notifyq.pacing import Grant, Pacer, PacingAdmin, Wait


async def test_pause_and_resume(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 1000.0}))
    admin = pacer.admin
    assert await admin.paused(ACCOUNT_SID) is None
    await admin.pause_account(ACCOUNT_SID, "20003: Authenticate")
    assert await admin.paused(ACCOUNT_SID) == "20003: Authenticate"
    _, wait = await reserve(pacer, 7.0, [("a", 1)])
    assert isinstance(wait, Wait)
    assert wait.reason == "account paused: 20003: Authenticate"
    assert wait.until == pytest.approx(12.0)
    assert (await admin.snapshot())["accounts"][ACCOUNT_SID]["paused"] == "20003: Authenticate"
    await admin.resume_account(ACCOUNT_SID)
    assert await admin.paused(ACCOUNT_SID) is None
    assert isinstance(await send_now(pacer, 12.0, "a"), Grant)


async def test_snapshot_and_validation(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}))
    now = time.time()
    assert isinstance(await send_now(pacer, now, "a"), Grant)
    await reserve(pacer, now, [("b", 4)])
    snap = await PacingAdmin(rdb, pacer.settings).snapshot()
    assert snap["schedules"]["snd:S"]["rate"] == 5.0
    assert snap["schedules"]["snd:S"]["backlog_s"] > 0
    assert snap["accounts"][ACCOUNT_SID]["max_in_flight"] == 50
    assert snap["accounts"][ACCOUNT_SID]["in_flight"] == 1
    with pytest.raises(ValueError, match="segment"):
        await reserve(pacer, now, [("c", 0)])
    with pytest.raises(ValueError, match="sender kind"):
        await reserve(pacer, now, [("c", 1)], kind="pigeon")
    with pytest.raises(ValueError, match="positive"):
        await pacer.admin.set_sender_rate("S", 0)


async def test_a_rate_override_beats_the_settings_until_it_is_cleared(rdb: Redis) -> None:
    pacer = Pacer(rdb, make_settings(senders={"S": 5.0}))
    await pacer.admin.set_sender_rate("S", 50.0)
    await reserve(pacer, 1.0, [("a", 1)])
    assert (await pacer.admin.snapshot())["schedules"]["snd:S"]["rate"] == 50.0
    await pacer.admin.clear_sender_rate("S")
    await reserve(pacer, 2.0, [("b", 1)])
    assert (await pacer.admin.snapshot())["schedules"]["snd:S"]["rate"] == 5.0
