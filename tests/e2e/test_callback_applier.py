"""The callback applier: one entry never stops the others, a dead applier fails /healthz, operators see the dead letter.

The bad entries here are written to the stream as a receiver that did not check Twilio's values
wrote them (the receiver bounds them now: ``test_callbacks.py``), or made bad by a store that refuses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.exc import DataError

from helpers import Outage, notifyq_process, people, run_cli, settings_env, sms_batch, wait_until
from notifyq.api.app import STATE
from notifyq.client import Client
from notifyq.queue.inbox import MAX_TRIES, STREAM, CallbackInbox, run_applier
from notifyq.store import Applied, StatusReport
from notifyq.testing import API_TOKEN, LocalStack, free_port, local_stack

TOO_BIG = 99999999999999999999  # the error code of issue #16: no integer column holds it


async def _pending_deliveries(stack: LocalStack, n: int) -> list[str]:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(sms_batch(people(n)))
    return sorted(d for page in [p async for p in stack.worker_app.store.iter_unsettled(["pending"])] for d, *_ in page)


def _report(delivery_id: str, n: int, **extra: Any) -> StatusReport:
    return StatusReport(delivery_id, sid=f"SM{n:032x}", status="sent", source="callback", at=time.time(), **extra)


async def _put_together(inbox: CallbackInbox, reports: Sequence[StatusReport]) -> None:
    """Append the reports in one script call, so that one read of the stream takes them all."""
    await asyncio.gather(*(inbox.put(r) for r in reports))


async def _statuses(stack: LocalStack, ids: Sequence[str]) -> list[str]:
    return [(await stack.worker_app.store.get_delivery(d)).status for d in ids]


async def _get(stack: LocalStack, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"{stack.api_url}{path}") as resp:
        return resp.status, await resp.text()


async def _cli(stack: LocalStack, *args: str) -> tuple[int, str]:
    return await run_cli(stack.settings, *args)


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_a_bad_entry_among_good_ones_is_dead_lettered_and_the_others_apply(stack: LocalStack) -> None:
    """Issue #16: on SQLite the applier died on the bad entry, on PostgreSQL it raised on it forever."""
    good1, bad, good2 = await _pending_deliveries(stack, 3)
    inbox = stack.inbox
    await _put_together(inbox, [_report(good1, 1), _report(bad, 2, error_code=TOO_BIG), _report(good2, 3)])

    await wait_until(lambda: _are_sent(stack, [good1, good2]), "the good entries applied")
    await wait_until(lambda: _dead_is(inbox, 1), "the bad entry in the dead letter")
    assert await _statuses(stack, [good1, bad, good2]) == ["sent", "pending", "sent"]
    assert await inbox.backlog() == 0
    [dead] = await inbox.dead.entries()
    assert (dead.tries, dead.summary()["delivery_id"]) == (MAX_TRIES, bad)
    assert "int" in dead.reason  # sqlite3's OverflowError or asyncpg's "out of int32 range"
    status, body = await _get(stack, "/healthz")
    assert status == 200, body
    assert json.loads(body)["checks"]["applier"] == "ok"
    _, metrics = await _get(stack, "/metrics")
    assert _metric(metrics, "notifyq_callbacks_dead_lettered_total") == 1
    _, cluster = await _get(stack, "/metrics/cluster")
    assert _metric(cluster, "notifyq_callback_dead_letters") == 1

    # operators: status counts it, list shows it, retry puts it back (it fails again: dead once more), drop ends it
    code, out = await _cli(stack, "status", "--json")
    assert code == 0, out
    assert json.loads(out)["callback_dead_letters"] == 1
    code, out = await _cli(stack, "callbacks", "dead", "list", "--json")
    assert code == 0, out
    [listed] = json.loads(out)
    assert (listed["id"], listed["delivery_id"], listed["tries"]) == (dead.id, bad, MAX_TRIES)
    assert listed["reason"] == dead.reason
    code, out = await _cli(stack, "callbacks", "dead", "retry", dead.id)
    assert (code, out.strip()) == (0, "retried 1 callback(s)")
    await wait_until(lambda: _dead_is(inbox, 1, not_id=dead.id), "the retried entry back in the dead letter")
    [again] = await inbox.dead.entries()
    assert again.fields == dead.fields  # the same report, moved whole both ways
    code, out = await _cli(stack, "callbacks", "dead", "drop", again.id)
    assert (code, out.strip()) == (0, "dropped 1 callback(s)")
    assert (await inbox.dead.count(), await inbox.backlog()) == (0, 0)
    code, out = await _cli(stack, "callbacks", "dead", "drop", again.id)
    assert code == 2
    assert "no dead-lettered callback" in out


async def _dead_is(inbox: CallbackInbox, n: int, not_id: str | None = None) -> bool:
    entries = await inbox.dead.entries()
    return len(entries) == n and all(e.id != not_id for e in entries)


async def test_a_callback_retried_once_its_cause_is_gone_is_applied(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that refuses one delivery's reports (a DataError, not an outage): the others go on."""
    refused, other = await _pending_deliveries(stack, 2)
    store = stack.app[STATE].require_store()
    real = store.apply_reports

    async def refusing(reports: Sequence[StatusReport]) -> list[Applied]:
        if any(r.delivery_id == refused for r in reports):
            raise DataError("INSERT ...", {}, ValueError("value out of range"))
        return await real(reports)

    monkeypatch.setattr(store, "apply_reports", refusing)
    inbox = stack.inbox
    await _put_together(inbox, [_report(refused, 1), _report(other, 2)])
    await wait_until(lambda: _are_sent(stack, [other]), "the other entry applied")
    await wait_until(lambda: _dead_is(inbox, 1), "the refused entry in the dead letter")
    assert await _statuses(stack, [refused, other]) == ["pending", "sent"]
    [dead] = await inbox.dead.entries()
    assert dead.reason == "ValueError: value out of range"

    monkeypatch.setattr(store, "apply_reports", real)
    code, out = await _cli(stack, "callbacks", "dead", "retry")  # no ID: every entry
    assert (code, out.strip()) == (0, "retried 1 callback(s)")
    await wait_until(lambda: _are_sent(stack, [refused]), "the retried callback applied")
    assert (await inbox.dead.count(), await inbox.backlog()) == (0, 0)


async def _are_sent(stack: LocalStack, delivery_ids: Sequence[str]) -> bool:
    return all(status == "sent" for status in await _statuses(stack, delivery_ids))


async def test_healthz_is_503_naming_the_applier_when_it_has_died(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*, block_ms: int | None = None) -> int:
        msg = "a bug in the applier"
        raise RuntimeError(msg)

    monkeypatch.setattr(stack.inbox, "apply_once", broken)
    await wait_until(lambda: _healthz_is(stack, 503), "healthz 503")
    checks = json.loads((await _get(stack, "/healthz"))[1])["checks"]
    assert checks == {"redis": "ok", "applier": "stopped: RuntimeError: a bug in the applier"}


async def _healthz_is(stack: LocalStack, status: int) -> bool:
    return (await _get(stack, "/healthz"))[0] == status


async def test_healthz_is_503_while_the_applier_keeps_failing(tmp_path: Path, redis_url: str, outage: Outage) -> None:
    async with local_stack(
        data_dir=tmp_path, redis_url=redis_url, database_url=outage.url, run_worker=False, api={"applier_stuck_s": 0.3}
    ) as stack:
        (delivery,) = await _pending_deliveries(stack, 1)
        await outage.cut()
        await stack.inbox.put(_report(delivery, 1))  # in the stream; the applier cannot store it
        await wait_until(lambda: _healthz_is(stack, 503), "healthz 503")
        checks = json.loads((await _get(stack, "/healthz"))[1])["checks"]
        assert checks["applier"].startswith("failing for "), checks
        await outage.restore()
        await wait_until(lambda: _healthz_is(stack, 200), "healthz 200 once the applier applies again")
        await wait_until(lambda: _are_sent(stack, [delivery]), "the callback applied")


async def test_the_standalone_applier_outlives_a_bad_entry(tmp_path: Path, redis_url: str, database_url: str) -> None:
    """`notifyq applier`: the process of its own applies the good entries and dead-letters the bad one."""
    async with local_stack(
        data_dir=tmp_path, redis_url=redis_url, database_url=database_url, run_worker=False, apply_callbacks=False
    ) as stack:
        good, bad = await _pending_deliveries(stack, 2)
        await _put_together(stack.inbox, [_report(bad, 1, sequence=TOO_BIG, error_code=TOO_BIG), _report(good, 2)])
        applier = asyncio.create_task(run_applier(stack.settings.sqlalchemy_url(), redis_url))
        try:
            await wait_until(lambda: _are_sent(stack, [good]), "the good entry applied")
            await wait_until(lambda: _dead_is(stack.inbox, 1), "the bad entry in the dead letter")
            assert await _statuses(stack, [good, bad]) == ["sent", "pending"]
            assert not applier.done()
            assert await stack.inbox.backlog() == 0
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier


async def test_the_standalone_applier_serves_its_lag_and_dead_letters(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """With `notifyq api --no-applier`, the callback lag and the dead letters are counted where callbacks are
    applied: `notifyq applier` serves them, and its health, on `applier.metrics_port`."""
    port = free_port()
    async with local_stack(
        data_dir=tmp_path, redis_url=redis_url, database_url=database_url, run_worker=False, apply_callbacks=False
    ) as stack:
        good, bad = await _pending_deliveries(stack, 2)
        await _put_together(stack.inbox, [_report(good, 1), _report(bad, 2, error_code=TOO_BIG)])
        env = settings_env(stack.settings) | {"NOTIFYQ_APPLIER__METRICS_PORT": str(port)}
        async with notifyq_process("applier", env=env) as applier, aiohttp.ClientSession() as session:
            await wait_until(lambda: _dead_is(stack.inbox, 1), "the bad entry in the dead letter", timeout_s=60)

            async def scraped() -> str:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    return await resp.text()

            async def counted() -> bool:
                try:
                    return _metric(await scraped(), "notifyq_callback_lag_seconds_count") == 1
                except (aiohttp.ClientError, StopIteration):
                    return False

            await wait_until(counted, "the applied callback's lag observed")
            text = await scraped()
            assert _metric(text, "notifyq_callbacks_dead_lettered_total") == 1
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
            assert await applier.stop() == 0
        assert await _statuses(stack, [good, bad]) == ["sent", "pending"]


async def test_an_entry_that_does_not_decode_is_dead_lettered_at_once(stack: LocalStack) -> None:
    (good,) = await _pending_deliveries(stack, 1)
    redis = stack.app[STATE].redis
    assert redis is not None
    await redis.xadd(STREAM, {"r": b'{"not": "a report"}'})
    await redis.xadd(STREAM, {"something": b"else"})
    await stack.inbox.put(_report(good, 1))
    await wait_until(lambda: _dead_is(stack.inbox, 2), "both undecodable entries in the dead letter")
    # the good entry is applied after they are buried (in the same read or the next)
    await wait_until(lambda: _are_sent(stack, [good]), "the good entry applied")
    reasons = sorted(e.reason for e in await stack.inbox.dead.entries())
    assert reasons[0].startswith("undecodable entry: KeyError")
    assert reasons[1].startswith("undecodable entry: TypeError")
    assert all(e.tries == 1 for e in await stack.inbox.dead.entries())
