"""Delivery truth: callbacks survive a database outage, lost callbacks are reconciled, opt-outs hold."""

from __future__ import annotations

import time

import aiohttp
import pytest
from sqlalchemy.exc import OperationalError

from helpers import Outage, people, settle, sms_batch, wait_until
from notifyq.client import Client
from notifyq.provider.signature import compute_signature
from notifyq.store import Applied, StatusReport
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack
from notifyq.worker import reconcile_once

OUR_NUMBER = "+15005550006"


async def test_callbacks_during_a_database_outage_are_applied_after_it(
    outage: Outage, outage_stack: LocalStack
) -> None:
    stack = outage_stack
    assert stack.simulator is not None
    stack.simulator.config.callback_delay_s = 1.0  # the callbacks come after the sends are recorded
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(10)))
        await stack.run_burst()  # sends and records the ten
        await outage.cut()  # the callbacks arrive while the database is down
        # a loaded machine may take longer than the delay to get here: those sent before the cut may be applied
        before_cut = stack.simulator.counters.callbacks_sent
        assert before_cut < 20
        assert await stack.simulator.settle(timeout_s=10)
        assert stack.simulator.counters.callbacks_failed == 0
        assert stack.simulator.counters.callbacks_rejected == 0  # every callback was answered 200
        await wait_until(
            lambda: stack.inbox.failing_since is not None, "the applier to fail on the outage", timeout_s=30
        )
        # sent + delivered for each of 10: every one that came during the outage is kept in Redis meanwhile
        assert 20 - before_cut <= await stack.inbox.backlog() <= 20
        await outage.restore()
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 10}
    assert await stack.inbox.backlog() == 0


async def test_a_dropped_callback_is_recovered_by_the_reconciler(stack: LocalStack) -> None:
    stack.simulator.config.callbacks = False  # Twilio's callbacks never reach us
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(
            sms_batch([*people(5), {"to": "+14155553007", "vars": {"name": "x", "code": "1"}}])
        )
        await stack.run_burst()
        assert await stack.simulator.settle(timeout_s=10)  # at Twilio, every message is final now
        status = await client.batch(accepted["id"])
        assert status["by_status"] == {"queued": 6}  # we only know what the 201 said
        stack.settings.reconcile.stale_after_s = dict.fromkeys(stack.settings.reconcile.stale_after_s, 0.0)
        stack.settings.reconcile.requests_per_minute = 6000.0
        counts = await reconcile_once(stack.worker_app)
        assert counts["fetched"] == 6
        status = await client.batch(accepted["id"])
    assert status["by_status"] == {"delivered": 5, "failed": 1}
    assert status["by_error_code"] == {"30007": 1}
    failed = (await stack.worker_app.store.list_deliveries(accepted["id"], status="failed"))[0]
    kinds = [e["kind"] for e in await stack.worker_app.store.events(failed.id)]
    assert kinds == ["attempt", "reconcile"]


async def test_a_fetched_record_with_values_out_of_range_is_applied_within_bounds(stack: LocalStack) -> None:
    """Twilio's answer to the reconciler's fetch is checked and bounded as a callback's form is."""
    assert stack.simulator is not None
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(2)))
        await stack.run_burst()
        assert await stack.simulator.settle(timeout_s=10)
        odd, plain = sorted(stack.simulator.messages, key=lambda m: m.to)
        odd.status, odd.error_code, odd.error_message = "undelivered", 99999999999999999999, "x" * 100_000
        stack.settings.reconcile.stale_after_s = dict.fromkeys(stack.settings.reconcile.stale_after_s, 0.0)
        stack.settings.reconcile.requests_per_minute = 6000.0
        counts = await reconcile_once(stack.worker_app)  # the store refused the 20-digit code: the pass failed
        assert (counts["fetched"], counts["applied"]) == (2, 2)
        status = await client.batch(accepted["id"])
    assert status["by_status"] == {"undelivered": 1, "delivered": 1}
    rows = {r.to_number: r for r in await stack.worker_app.store.list_deliveries(accepted["id"])}
    assert rows[odd.to].error_code is None  # out of Twilio's range: taken as absent
    [event] = [e for e in await stack.worker_app.store.events(rows[odd.to].id) if e["kind"] == "reconcile"]
    assert event["applied"]
    assert len(event["data"]["error_message"]) <= 1024
    assert rows[plain.to].status == "delivered"


async def test_a_reconciler_pass_spends_its_share_of_the_budget_on_the_oldest(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.simulator.config.callbacks = False
    cfg = stack.settings.reconcile
    cfg.requests_per_minute = 60.0  # one a second
    cfg.interval_s = 5.0  # so a pass may spend five seconds' worth
    store = stack.worker_app.store
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(8)))
        await stack.run_burst()
        assert await stack.simulator.settle(timeout_s=10)  # at Twilio, every message is delivered
        cfg.stale_after_s = dict.fromkeys(cfg.stale_after_s, 0.0)
        oldest = sorted(await store.list_deliveries(accepted["id"]), key=lambda r: r.updated_at)
        requests = stack.simulator.counters.requests
        at = time.time()
        first = await reconcile_once(stack.worker_app, now=at)
        too_soon = await reconcile_once(stack.worker_app, now=at + 0.5)  # not one request saved up yet
        later = await reconcile_once(stack.worker_app, now=at + 2.5)  # two more
    assert (first["stale"], first["fetched"], first["deferred"]) == (8, 5, 3)
    assert (too_soon["stale"], too_soon["fetched"]) == (3, 0)
    assert (later["stale"], later["fetched"]) == (3, 2)
    assert stack.simulator.counters.requests - requests == 7  # nothing booked that was not fetched
    delivered = {r.id for r in await store.list_deliveries(accepted["id"], status="delivered")}
    assert delivered == {r.id for r in oldest[:7]}  # oldest first


async def _inbound(stack: LocalStack, texter: str, body: str, signed: bool = True) -> int:
    url = f"{stack.api_url}/twilio/inbound"
    form = {"AccountSid": ACCOUNT_SID, "From": texter, "To": OUR_NUMBER, "Body": body, "MessageSid": "SM" + "9" * 32}
    public = stack.settings.public_base_url + "/twilio/inbound"
    headers = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, public, form)} if signed else {}
    async with aiohttp.ClientSession() as s, s.post(url, data=form, headers=headers) as resp:
        return resp.status


async def test_stop_suppresses_and_start_lifts_it(stack: LocalStack) -> None:
    texter = "+14155550777"
    assert await _inbound(stack, texter, " stop ") == 200
    async with Client(stack.api_url, token=API_TOKEN) as client:
        first = await client.submit(sms_batch([{"to": texter, "vars": {"name": "a", "code": "1"}}]))
        status = await settle(stack, client, first["id"])
        assert status["by_status"] == {"suppressed": 1}
        assert stack.simulator.counters.created == 0  # no request went out
        assert await _inbound(stack, texter, "START") == 200
        second = await client.submit(sms_batch([{"to": texter, "vars": {"name": "a", "code": "2"}}]))
        status = await settle(stack, client, second["id"])
    assert status["by_status"] == {"delivered": 1}
    assert stack.simulator.counters.created == 1


@pytest.mark.parametrize("keyword", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT"])
async def test_every_opt_out_keyword_suppresses(stack: LocalStack, keyword: str) -> None:
    assert await _inbound(stack, "+14155550778", keyword) == 200
    assert await stack.worker_app.store.is_suppressed(ACCOUNT_SID, "+14155550778")


async def test_help_is_recorded_and_unsigned_inbound_is_refused(stack: LocalStack) -> None:
    assert await _inbound(stack, "+14155550779", "STOP", signed=False) == 403
    assert not await stack.worker_app.store.is_suppressed(ACCOUNT_SID, "+14155550779")
    assert await _inbound(stack, "+14155550779", "help") == 200
    assert not await stack.worker_app.store.is_suppressed(ACCOUNT_SID, "+14155550779")
    assert await stack.worker_app.store.inbound_actions("+14155550779") == ["help"]


async def test_error_21610_puts_the_recipient_on_the_suppression_list(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        first = await client.submit(sms_batch([{"to": "+15005550004", "vars": {"name": "a", "code": "1"}}]))
        await settle(stack, client, first["id"])
        created_before = stack.simulator.counters.requests
        second = await client.submit(sms_batch([{"to": "+15005550004", "vars": {"name": "a", "code": "2"}}]))
        status = await settle(stack, client, second["id"])
    assert status["by_status"] == {"suppressed": 1}
    assert stack.simulator.counters.requests == created_before  # the second never reached Twilio


async def test_with_redis_down_callbacks_go_straight_to_the_store(stack: LocalStack) -> None:
    from redis.asyncio import Redis  # noqa: PLC0415

    from notifyq.queue.inbox import CallbackInbox  # noqa: PLC0415
    from notifyq.testing import free_port  # noqa: PLC0415

    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
    delivery = (await stack.worker_app.store.list_deliveries(accepted["id"]))[0]
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    inbox = CallbackInbox(dead, stack.worker_app.store)
    report = StatusReport(delivery_id=delivery.id, sid="SM" + "7" * 32, status="sent", source="callback", at=1.0)
    assert await inbox.put(report) == "store"
    assert (await stack.worker_app.store.get_delivery(delivery.id)).status == "sent"

    async def database_down(_reports: list[StatusReport]) -> list[Applied]:
        raise OperationalError("UPDATE", {}, ConnectionRefusedError("down"))

    inbox.store = type("DownStore", (), {"apply_reports": staticmethod(database_down)})()  # type: ignore[assignment]
    with pytest.raises(OperationalError):  # the receiver turns this into a 503 for Twilio
        await inbox.put(report)
    await dead.aclose()
