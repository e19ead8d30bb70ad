"""The Lua scripts: files joined as they read, each one loads, and their shared helpers behave."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from notifyq.pacing import LOOSE_S
from notifyq.pacing import scripts as s

SCRIPTS = {
    s.PACE_FILES: s.PACE_LUA,
    s.RELEASE_FILES: s.RELEASE_LUA,
    s.LEASE_FILES: s.LEASE_LUA,
    s.BUDGET_FILES: s.BUDGET_LUA,
}


@pytest.mark.parametrize("files", list(SCRIPTS))
def test_a_script_is_its_files_joined_in_order(files: tuple[str, ...]) -> None:
    assert files[0] == "lib.lua"
    assert SCRIPTS[files] == "".join(s.read(name) for name in files)
    for name in files:
        assert s.read(name).endswith("\n")  # the next file starts on a line of its own


@pytest.mark.parametrize("files", list(SCRIPTS))
def test_no_script_is_built_from_markers_or_templates(files: tuple[str, ...]) -> None:
    script = SCRIPTS[files]
    assert not re.search(r"--\s*@", script)  # no marker comment for text to be spliced at
    assert "{{" not in script  # no doubled braces of a Python template


@pytest.mark.parametrize("files", list(SCRIPTS))
async def test_every_script_loads(rdb: Redis, files: tuple[str, ...]) -> None:
    sha = await rdb.script_load(SCRIPTS[files])
    assert await rdb.script_exists(sha) == [True]


async def test_the_scripts_print_numbers_as_percent_dot_zero_f_would(rdb: Redis) -> None:
    # lib.lua's fmt prints whole numbers with %d (libc's float printing is slow): the same digits as %.0f
    each = "out[i] = fmt(tonumber(v)) .. ' ' .. string.format('%.0f', tonumber(v))"
    script = s.compose(("lib.lua",)) + f"local out = {{}} for i, v in ipairs(ARGV) do {each} end return out"
    values = ["0", "-0", "1", "-7", "0.5", "1.5", "2.5", "-2.5", "1764500000000000", "1764500000000000.5"]
    values += ["8999999999999999", "9e15", "1e16", "-9e15", "1e300", "123456789.0", "10000000000000.25"]
    printed = [v.decode().split(" ") for v in await rdb.eval(script, 0, *values)]
    assert [mine for mine, _ in printed] == [libc for _, libc in printed]


async def test_a_call_s_clock_is_the_one_given_or_redis_own(rdb: Redis) -> None:
    script = s.compose(("lib.lua",)) + "return {tostring(clock_us(ARGV[1])), tostring(clock_us(''))}"
    given, own = await rdb.eval(script, 0, "1234567")
    sec, usec = await rdb.time()
    assert given == b"1234567"
    assert abs(float(own) - (sec * 1_000_000 + usec)) < 5_000_000


async def test_expiries_set_during_a_call_are_applied_once_each_at_its_end(rdb: Redis) -> None:
    await rdb.set("a", 1)
    await rdb.set("b", 1)
    body = (
        "pexpire_later('a', 100000) pexpire_later('b', 200000) pexpire_later('a', 300000)\n"
        "local before = redis.call('PTTL', 'a')\n"
        "apply_expiries()\n"
        "return before"
    )
    assert await rdb.eval(s.compose(("lib.lua",)) + body, 0) == -1  # nothing set before the end
    assert 200_000 < await rdb.pttl("a") <= 300_000  # the key's last expiry wins
    assert 100_000 < await rdb.pttl("b") <= 200_000


def test_the_worker_and_the_script_agree_on_how_late_a_loose_send_may_go() -> None:
    (line,) = [ln for ln in s.PACE_LUA.splitlines() if ln.startswith("local LOOSE = ")]
    assert int(line.split("=")[1].split("--")[0]) == round(LOOSE_S * 1_000_000)
