"""Recovery paths: the look-up that settles an unanswered create, its re-send, and the reconciler's backlog."""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import Any

import aiohttp
import pytest

from helpers import SENDER, people, settle, sms_batch, wait_until
from notifyq.api.app import STATE
from notifyq.cli.status import gather_status
from notifyq.client import Client
from notifyq.errors import AmbiguousSend, ProviderError, TransportError, TwilioApiError
from notifyq.queue.arq_compat import JOB_KEY_PREFIX
from notifyq.queue.jobs import deserialize
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack
from notifyq.worker import ChunkRun, NotifyqWorker, Outcome, reconcile_once

# three segments in GSM-7 (more than 306 characters, at most 459)
LONG_BODY = "Hello {name}, your code is {code}. " + "This notice is long enough to need more segments. " * 6


def long_batch(recipients: list[dict[str, object]]) -> dict[str, object]:
    return {"channel": "sms", "from": SENDER, "body": LONG_BODY, "recipients": recipients}


def worst_second(stack: LocalStack) -> tuple[int, int]:
    """The most segments that reached the simulator in any 1-second window, and how many messages it got.

    Each window starts at a message's arrival (its ``date_created``): every sliding second that holds
    messages is as full as one of these.
    """
    assert stack.simulator is not None
    arrivals = sorted((m.date_created.timestamp(), m.num_segments) for m in stack.simulator.messages)
    times = [t for t, _ in arrivals]
    worst = 0
    for i, (t, _) in enumerate(arrivals):
        end = bisect.bisect_left(times, t + 1.0)
        worst = max(worst, sum(c for _, c in arrivals[i:end]))
    return worst, len(arrivals)


async def claim_as_a_killed_worker_would(stack: LocalStack, batch_id: str, *, ago_s: float) -> list[str]:
    """Leave every delivery of the batch claimed (``dispatching``, no SID) ``ago_s`` ago, with no request made.

    What a worker killed between its claims and its creates leaves behind: the chunk jobs are still in
    Redis, and the creates never reached Twilio.
    """
    store = stack.worker_app.store
    rows = await store.list_deliveries(batch_id, limit=1000)
    claims, _ = await store.flush_send_writes(
        claim_ids=[(r.id, ACCOUNT_SID) for r in rows], accepted=[], now=time.time() - ago_s
    )
    assert len(claims) == len(rows)
    return [r.id for r in rows]


async def test_re_sends_after_a_look_up_keep_to_the_senders_rate(stack: LocalStack) -> None:
    assert stack.simulator is not None
    limit = 10  # segments per second
    await stack.worker_app.pacer.admin.set_sender_rate(SENDER, float(limit))
    async with Client(stack.api_url, token=API_TOKEN) as client:
        recovering = await client.submit(long_batch(people(20)))
        await stack.app[STATE].require_producer().drain()  # its chunk job is in Redis
        stranded = await claim_as_a_killed_worker_would(stack, recovering["id"], ago_s=5.0)
        fresh = await client.submit(long_batch(people(6, start=5000)))
        await settle(stack, client, recovering["id"], timeout_s=40)
        status: dict[str, Any] = dict(await settle(stack, client, fresh["id"], timeout_s=40))
        again = await client.batch(recovering["id"])
    # every stranded delivery was looked up (nothing found) and sent once, alongside the fresh batch
    assert again["by_status"] == {"delivered": 20}
    assert status["by_status"] == {"delivered": 6}
    for delivery_id in stranded[:3]:
        events = await stack.worker_app.store.events(delivery_id)
        assert any("not found in Twilio's list" in (e["reason"] or "") for e in events)
    worst, sent = worst_second(stack)
    assert sent == 26
    assert worst <= limit, f"{worst} segments reached Twilio in one second; the sender's limit is {limit}"


async def test_a_stranded_delivery_found_by_its_chunk_gets_a_job_at_its_messages_cost(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(long_batch(people(2)))
        await stack.app[STATE].require_producer().drain()
    [stranded, _] = await claim_as_a_killed_worker_would(stack, accepted["id"], ago_s=5.0)
    ran = await stack.worker_app.dispatcher.send_chunk(accepted["id"], [stranded], [3])
    assert isinstance(ran, ChunkRun)
    assert [d.outcome for d in ran.done] == [Outcome.DEFERRED]
    assert ran.owed is None
    raw = await stack.worker_app.redis.get(JOB_KEY_PREFIX + stranded)
    assert raw is not None
    job = deserialize(raw)
    # its look-up, and the new send if the list shows nothing, are paced at the message's three segments
    assert (job["f"], job["a"]) == ("send", [accepted["id"], 3])


async def test_creates_never_answered_nor_found_end_failed_after_max_attempts(stack: LocalStack) -> None:
    """A create lost before Twilio records it leaves nothing to find: its re-sends stop at ``max_attempts``."""
    assert stack.simulator is not None
    stack.settings.worker.max_attempts = 3
    lost = "+14155557002"
    stack.simulator.config.drop_before_create_to = [lost]  # every create to it: no answer, nothing in the list
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch([*people(2), {"to": lost, "vars": {"name": "L", "code": "7"}}]))
        # without the bound the delivery is sent again every callback_grace_s until its validity ends
        status = await asyncio.wait_for(settle(stack, client, accepted["id"], timeout_s=20), 25)
    assert status["by_status"] == {"delivered": 2, "failed": 1}
    [row] = await stack.worker_app.store.list_deliveries(accepted["id"], status="failed")
    assert (row.to_number, row.attempts, row.twilio_sid) == (lost, 3, None)
    assert row.error_message is not None
    assert "not sent again" in row.error_message
    assert stack.simulator.counters.dropped == 3  # three creates, then none
    events = await stack.worker_app.store.events(row.id)
    assert sum("not found in Twilio's list" in (e["reason"] or "") for e in events) == 2  # looked up before each


# ---- a failed look-up never strands a delivery ------------------------------------------------------


async def test_look_ups_answered_500_are_retried_and_nothing_is_stranded(stack: LocalStack) -> None:
    assert stack.simulator is not None
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(5)))
        await stack.app[STATE].require_producer().drain()
        stranded = await claim_as_a_killed_worker_would(stack, accepted["id"], ago_s=5.0)
        stack.simulator.config.list_failures = 8  # the look-ups that settle them: Twilio answers 500
        status = await settle(stack, client, accepted["id"])
    assert stack.simulator.config.list_failures == 0  # every failure was met...
    assert status["by_status"] == {"delivered": 5}  # ...and retried until the list answered
    assert sorted(stack.simulator.sends_by_callback().values()) == [1] * 5  # nothing was found, each sent once
    events = [e for did in stranded for e in await stack.worker_app.store.events(did) if e["kind"] == "lookup"]
    assert len(events) == 8
    assert all("look-up failed" in e["reason"] and e["http_status"] == 500 for e in events)


@pytest.mark.parametrize(
    "error",
    [
        TwilioApiError(503, 20503, "Service Unavailable"),
        TwilioApiError(429, 20429, "Too Many Requests", retry_after_s=0.1),
        TransportError("GET failed: connection reset", "http://twilio/Messages.json"),
        AmbiguousSend("no answer after the request was sent", "http://twilio/Messages.json"),
        TransportError("malformed list page: no 'messages' list of records", "http://twilio/Messages.json"),
    ],
    ids=["503", "429", "transport", "ambiguous-get", "malformed"],
)
async def test_every_look_up_error_is_retried(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, error: ProviderError
) -> None:
    twilio = stack.worker_app.twilio
    real = twilio.list
    raised: list[ProviderError] = []

    async def failing_once(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if not raised:
            raised.append(error)
            raise error
        return await real(*args, **kwargs)

    monkeypatch.setattr(twilio, "list", failing_once)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        await stack.app[STATE].require_producer().drain()
        [stranded] = await claim_as_a_killed_worker_would(stack, accepted["id"], ago_s=5.0)
        status = await settle(stack, client, accepted["id"])
    assert raised == [error]
    assert status["by_status"] == {"delivered": 1}
    kinds = [e["kind"] for e in await stack.worker_app.store.events(stranded)]
    assert kinds.count("lookup") == 1
    assert kinds.count("attempt") == 1  # sent once, after the second look-up found nothing


async def test_look_ups_that_keep_failing_leave_the_delivery_to_the_reconciler(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.settings.worker.max_attempts = 2  # two failed look-ups of one attempt, then the job ends
    stack.settings.reconcile.unanswered_after_s = 0.2
    store = stack.worker_app.store
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        await stack.app[STATE].require_producer().drain()
        [stranded] = await claim_as_a_killed_worker_would(stack, accepted["id"], ago_s=5.0)
        stack.simulator.config.list_failures = 1_000
        await stack.run_burst()  # runs until no job is left
        row = await store.get_delivery(stranded)
        assert (row.status, row.twilio_sid) == ("dispatching", None)
        assert row.error_message == "Internal Server Error"  # the last failure, on the delivery itself
        assert await stack.worker_app.jobs.has_job([(row.id, row.batch_id, row.seq)]) == [False]
        events = await store.events(stranded)
        assert "left to the reconciler" in events[-1]["reason"]
        # its deadline passes; the reconciler gives it a job again, and this time the list answers
        stack.simulator.config.list_failures = 0
        counts = await reconcile_once(stack.worker_app, now=time.time() + 1.0)
        assert counts["requeued"] == 1
        assert await reconcile_once(stack.worker_app, now=time.time() + 1.0) == counts | {"requeued": 0}
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 1}
    assert list(stack.simulator.sends_by_callback().values()) == [1]


async def test_the_reconciler_requeues_unanswered_attempts_whose_job_is_gone(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.settings.reconcile.unanswered_after_s = 1.0
    async with Client(stack.api_url, token=API_TOKEN) as client:
        stuck = await client.submit(sms_batch(people(4)))
        recent = await client.submit(sms_batch(people(2, start=6000)))
        await stack.app[STATE].require_producer().drain()
        await claim_as_a_killed_worker_would(stack, stuck["id"], ago_s=5.0)
        await claim_as_a_killed_worker_would(stack, recent["id"], ago_s=0.0)  # too recent to be touched yet
        await stack.worker_app.redis.flushdb()  # and Redis lost their jobs
        counts = await reconcile_once(stack.worker_app)
        assert counts["requeued"] == 4
        status = await settle(stack, client, stuck["id"])
        assert (await client.batch(recent["id"]))["by_status"] == {"dispatching": 2}
    assert status["by_status"] == {"delivered": 4}
    assert sorted(stack.simulator.sends_by_callback().values()) == [1] * 4


async def test_look_ups_count_against_the_accounts_requests_in_flight(stack: LocalStack) -> None:
    assert stack.simulator is not None
    cap = 2
    stack.settings.twilio.accounts["main"].max_in_flight = cap
    stack.simulator.config.max_concurrency_per_account = cap  # Twilio answers 429 to a request over the cap
    stack.simulator.config.latency_s = 0.05
    async with Client(stack.api_url, token=API_TOKEN) as client:
        recovering = await client.submit(sms_batch(people(10)))
        await stack.app[STATE].require_producer().drain()
        await claim_as_a_killed_worker_would(stack, recovering["id"], ago_s=5.0)
        fresh = await client.submit(sms_batch(people(10, start=5000)))
        await settle(stack, client, recovering["id"], timeout_s=40)
        status = await settle(stack, client, fresh["id"], timeout_s=40)
        again = await client.batch(recovering["id"])
    assert again["by_status"] == {"delivered": 10}
    assert status["by_status"] == {"delivered": 10}
    # ten look-ups and twenty creates, never more than two at once
    assert stack.simulator.counters.http_429 == 0


# ---- lost callbacks never leave a delivery unfinished ----------------------------------------------


async def reconcile_backlog(stack: LocalStack) -> dict[str, Any]:
    """What ``notifyq status`` says of the reconciler, and what the API's /metrics says."""
    report = await gather_status(stack.settings, None)
    async with aiohttp.ClientSession() as s, s.get(f"{stack.api_url}/metrics/cluster") as resp:
        text = await resp.text()
    gauge = next(line for line in text.splitlines() if line.startswith("notifyq_reconcile_stale_deliveries "))
    backlog: dict[str, Any] = report["reconcile_backlog"]
    return backlog | {"metric": float(gauge.split()[1])}


async def test_a_backlog_of_lost_callbacks_is_drained_within_the_reconcilers_budget(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.simulator.config.callback_drop_rate = 0.1  # a tenth of the status callbacks never arrive
    cfg = stack.settings.reconcile
    cfg.interval_s = 1.0  # arq's cron runs a pass every second...
    cfg.requests_per_minute = 600.0  # ...of at most ten fetches
    cfg.stale_after_s = dict.fromkeys(cfg.stale_after_s, 0.5)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(600)))
        status = await settle(stack, client, accepted["id"], timeout_s=5)  # the callbacks that came are applied
        unfinished = sum(n for s, n in status["by_status"].items() if s != "delivered")
        assert unfinished > 20  # their last callback was lost

        async def all_stale() -> bool:  # past their deadline
            return bool((await reconcile_backlog(stack))["stale"] >= unfinished)

        await wait_until(all_stale, "every unfinished delivery to be stale")
        behind = await reconcile_backlog(stack)
        assert behind["metric"] == unfinished
        assert behind["oldest_stale_s"] >= 0.5
        requests = stack.simulator.counters.requests
        started = time.monotonic()
        worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run(drain_s=1))
        try:

            async def done() -> bool:
                return bool((await client.batch(accepted["id"]))["done"])

            await wait_until(done, "the reconciler to finish every delivery")
            took = time.monotonic() - started
            status = await client.batch(accepted["id"])
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        after = await reconcile_backlog(stack)
    assert status["by_status"] == {"delivered": 600}
    fetches = stack.simulator.counters.requests - requests
    assert unfinished <= fetches <= 10 + 10 * took  # one pass's share at once, ten a second after that
    assert (after["stale"], after["metric"], after["unanswered"]) == (0, 0.0, 0)
