"""The scripts' arguments: what PaceCall, ReleaseCall and LeaseCall build, and how replies are read."""

from __future__ import annotations

import pytest
from pacing_helpers import ACCOUNT_SID, make_settings
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from notifyq.pacing import PacerTuning
from notifyq.pacing.calls import (
    LeaseCall,
    Mode,
    PaceCall,
    ReleaseCall,
    ScriptTuning,
    Send,
    read_answers,
)
from notifyq.pacing.scripts import compose
from notifyq.pacing.senders import Schedule

TUNING = ScriptTuning.resolve(PacerTuning(), make_settings(), jitter_s=0.03)
ACCT = f"notifyq:pace:acct:{ACCOUNT_SID}"


def pace_call(**fields: object) -> PaceCall:
    named: dict[str, object] = {
        "mode": Mode.RESERVE,
        "account_sid": ACCOUNT_SID,
        "schedule": Schedule("snd:+14155550100", 2.5, "+14155550100"),
        "max_in_flight": 40,
        "tuning": TUNING,
        "sends": [Send("d1", 1), Send("d2", 3, "t123:3:456:x")],
        "fresh": "f00d",
        "lane": "urgent",
        "flow": "batch-1",
        "now_us": 1_700_000_000_000_000,
        "lead_us": 20_000,
        "punctual": True,
    }
    return PaceCall(**(named | fields))  # type: ignore[arg-type]


def test_the_tuning_is_given_to_the_scripts_in_microseconds() -> None:
    settings = make_settings()
    tuning = ScriptTuning.resolve(PacerTuning(early_s=0.002, horizon_s=0.5), settings, jitter_s=0.03)
    assert (tuning.early_us, tuning.horizon_us, tuning.jitter_us) == (2_000, 500_000, 30_000)
    # a lease lives as long as a request may: connect + request timeout + 5 s, unless tuned
    twilio = settings.twilio
    assert tuning.lease_ttl_us == round((twilio.connect_timeout_s + twilio.request_timeout_s + 5.0) * 1_000_000)
    assert ScriptTuning.resolve(PacerTuning(lease_ttl_s=3.0), settings, jitter_s=0.0).lease_ttl_us == 3_000_000


def test_a_pace_call_names_the_schedule_s_and_the_account_s_keys() -> None:
    sched = "notifyq:pace:snd:+14155550100"
    assert pace_call().keys() == [
        sched,
        f"{sched}:slots",
        ACCT,
        f"{ACCT}:leases",
        f"{ACCT}:paused",
        "notifyq:pace:rates",
        "notifyq:pace:index",
        f"{sched}:open",
        "notifyq:pace:wake",
        f"{sched}:line",
        f"{sched}:due",
        f"{sched}:flows",
        f"{ACCT}:held",
    ]


def test_a_pace_call_lists_each_send_after_the_call_s_fields() -> None:
    argv = pace_call().argv()
    assert argv[-6:] == ["notifyq:pace:job:d1", "1", "", "notifyq:pace:job:d2", "3", "t123:3:456:x"]
    assert len(argv) == 22 + 3 * 2


def test_unset_times_are_left_to_the_script() -> None:
    argv = pace_call(now_us=None, lead_us=None, mode=Mode.REDEEM, punctual=False, flow="").argv()
    assert argv[0] == ""  # Redis' clock
    assert argv[19] == ""  # how late jobs come back decides the lead
    assert (argv[15], argv[17], argv[18]) == ("0", "", "redeem")


async def test_the_script_reads_every_field_where_the_call_put_it(rdb: Redis) -> None:
    """layout.lua's names for KEYS and ARGV are the fields PaceCall filled in."""
    call = pace_call()
    probe = compose(("lib.lua", "layout.lua")) + (
        "local k, c, s = read_keys(KEYS), read_call(ARGV), read_sends(ARGV)\n"
        "return {k.schedule, k.slots, k.account, k.leases, k.paused, k.rates, k.index, k.open, k.wake, k.line,\n"
        "  k.due, k.flows, k.held, fmt(c.now), c.override, tostring(c.rate), c.fresh, fmt(c.max_in_flight),\n"
        "  fmt(c.lease_ttl), fmt(c.early), fmt(c.late), fmt(c.burst), fmt(c.horizon), fmt(c.horizon_segments),\n"
        "  fmt(c.recheck), fmt(c.latency_guess), c.schedule_name, c.account_name, tostring(c.punctual), c.lane,\n"
        "  c.flow, c.mode, fmt(c.lead), fmt(c.jitter), fmt(c.ahead), fmt(#s), s[1].key, fmt(s[1].cost), s[1].token,\n"
        "  s[2].key, fmt(s[2].cost), s[2].token}\n"
    )
    keys = call.keys()
    read = [v.decode() for v in await rdb.eval(probe, len(keys), *keys, *call.argv())]
    t = call.tuning
    assert read == [
        *keys,
        "1700000000000000",
        "+14155550100",
        "2.5",
        "f00d",
        "40",
        str(t.lease_ttl_us),
        str(t.early_us),
        str(t.late_us),
        str(t.burst_us),
        str(t.horizon_us),
        str(t.horizon_segments),
        str(t.pause_recheck_us),
        str(t.latency_guess_us),
        "snd:+14155550100",
        f"acct:{ACCOUNT_SID}",
        "true",
        "urgent",
        "batch-1",
        "reserve",
        "20000",
        str(t.jitter_us),
        str(t.ahead_us),
        "2",
        "notifyq:pace:job:d1",
        "1",
        "",
        "notifyq:pace:job:d2",
        "3",
        "t123:3:456:x",
    ]


async def test_the_pace_script_refuses_an_unknown_mode(rdb: Redis) -> None:
    call = pace_call()
    argv = call.argv()
    argv[18] = "grant"
    with pytest.raises(ResponseError, match="unknown pacing mode grant"):
        await rdb.eval(compose(("lib.lua", "layout.lua", "decide.lua", "pace.lua")), 13, *call.keys(), *argv)


def test_a_release_call_gives_leases_back_with_whether_each_was_throttled() -> None:
    call = ReleaseCall(
        account_sid=ACCOUNT_SID, max_in_flight=8, tuning=TUNING, leases=[("1:a", False), ("2:b", True)], now_us=5
    )
    assert call.keys() == [ACCT, f"{ACCT}:leases"]
    assert call.argv() == [
        "5",
        "8",
        str(TUNING.increase_after),
        repr(TUNING.decrease_factor),
        str(TUNING.latency_guess_us),
        "1:a",
        "0",
        "2:b",
        "1",
    ]
    assert ReleaseCall(account_sid=ACCOUNT_SID, max_in_flight=8, tuning=TUNING, leases=[]).argv()[0] == ""


def test_a_lease_call_takes_the_account_s_cap_and_times() -> None:
    call = LeaseCall(account_sid=ACCOUNT_SID, max_in_flight=8, tuning=TUNING, fresh="f00d")
    assert call.keys() == [ACCT, f"{ACCT}:leases", f"{ACCT}:paused"]
    assert call.argv() == [
        "f00d",
        "8",
        str(TUNING.lease_ttl_us),
        str(TUNING.latency_guess_us),
        str(TUNING.pause_recheck_us),
    ]


def test_replies_are_read_answer_by_answer() -> None:
    granted = read_answers([b"G", b"100:x", b"100", b"1", b"101", b"W", b"200", b"why", b"", b"101"], indexed=False)
    assert [(a.kind, a.at_us, a.token, a.redis_now_us, a.loose, a.reason) for a in granted] == [
        ("G", 100, "100:x", 101, True, ""),
        ("W", 200, "", 101, False, "why"),
    ]
    booked = read_answers([b"R", b"300", b"t300", b"101", 1, b"W", b"400", b"line", b"q4", b"101", 0], indexed=True)
    assert [(a.kind, a.at_us, a.token, a.send) for a in booked] == [("R", 300, "t300", 1), ("W", 400, "q4", 0)]
    with pytest.raises(ValueError, match="unknown answer"):
        read_answers([b"P"], indexed=False)
