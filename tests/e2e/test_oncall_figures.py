"""The figures on-call reads (``/metrics/cluster``, ``notifyq status --json``, ``status --watch``) tell the truth.

A known state is seeded through the real parts (a batch submitted through the API, rows moved to
``retrying`` and ``dispatching``, a lane's head made old, an account paused, a callback dead-lettered),
then every figure is compared with it: 0, never absent, for what is empty; the true count otherwise;
and two API replicas on the same Redis and database, scraped the way Prometheus is told to, sum to it.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from helpers import SENDER, people, run_cli, sms_batch, wait_until
from notifyq.api.app import STATE, create_app
from notifyq.cli.status import gather_status
from notifyq.cli.watch import render
from notifyq.client import Client
from notifyq.pacing import PacingAdmin
from notifyq.queue.inbox import STREAM
from notifyq.queue.jobs import BULK_QUEUE, chunk_job_id
from notifyq.statuses import DISPATCHING, MESSAGE_RANKS, RETRYING
from notifyq.store import StatusReport
from notifyq.store.schema import deliveries
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ACCOUNT = (("account", "main"), ("account_sid", ACCOUNT_SID))
HEAD_AGE_S = 300.0  # how far back the seeded bulk lane's head is moved


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return parse(await resp.text())


def by_lane(samples: Sequence[Samples], name: str, **match: str) -> dict[str, float]:
    """``sum by (lane) (name{match})`` over every scraped target, as Prometheus would compute it."""
    out: dict[str, float] = {}
    for scraped in samples:
        for (metric, labels), value in scraped.items():
            got = dict(labels)
            if metric == name and match.items() <= got.items():
                out[got["lane"]] = out.get(got["lane"], 0.0) + value
    return out


async def test_an_idle_deployment_reports_every_figure_as_zero(stack: LocalStack) -> None:
    cluster = await scrape(f"{stack.api_url}/metrics/cluster")
    for lane in ("urgent", "bulk"):
        for name in ("notifyq_queue_oldest_due_seconds", "notifyq_deliveries_in_flight", "notifyq_deliveries_retrying"):
            assert cluster[(name, (("lane", lane),))] == 0, name
    for name in ("notifyq_account_paused", "notifyq_account_in_flight"):
        assert cluster[(name, ACCOUNT)] == 0, name
    assert cluster[("notifyq_account_in_flight_cap", ACCOUNT)] == stack.settings.twilio.accounts["main"].max_in_flight
    sender = (("sender", SENDER),)
    assert cluster[("notifyq_sender_rate", sender)] == stack.settings.pacing.senders[SENDER]
    assert (cluster[("notifyq_sender_waiting_jobs", sender)], cluster[("notifyq_sender_backlog_seconds", sender)]) == (
        0,
        0,
    )
    assert cluster[("notifyq_callback_dead_letters", ())] == 0
    # the labels are the configured ones only
    assert {dict(labels).get("sender") for (name, labels) in cluster if name.startswith("notifyq_sender_")} == {SENDER}


async def _seed(stack: LocalStack) -> dict[str, Any]:
    """A known state: 120 bulk deliveries due (5 retrying, 3 dispatching), the lane's head old, 75 urgent later,
    the account paused, an operator's sender rate, one dead-lettered callback."""
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with Client(stack.api_url, token=API_TOKEN) as client:
        now = await client.submit(sms_batch(people(120)))
        await client.submit(sms_batch(people(75, start=3000), send_at=send_at, priority="urgent"))
        await stack.app[STATE].require_producer().drain()
    ids = sorted(
        d for chunk in [c async for c in stack.worker_app.store.iter_unsettled(["pending"])] for d, *_ in chunk
    )
    bulk_ids = [d for d in ids if (await stack.worker_app.store.get_delivery(d)).batch_id == now["id"]]
    async with stack.worker_app.store.engine.begin() as conn:
        for status, chosen in ((RETRYING, bulk_ids[:5]), (DISPATCHING, bulk_ids[5:8])):
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(chosen))
                .values(status=status, status_rank=MESSAGE_RANKS[status])
            )
    # the head of the bulk lane: its first chunk, due HEAD_AGE_S ago
    head_score_ms = (time.time() - HEAD_AGE_S) * 1000
    redis = stack.app[STATE].require_producer().jobs.redis
    assert await redis.zadd(BULK_QUEUE, {chunk_job_id(now["id"], 0): head_score_ms}, xx=True, ch=True) == 1
    admin = PacingAdmin(redis, stack.settings)
    await admin.pause_account(ACCOUNT_SID, "20003: Authenticate")
    await admin.set_sender_rate(SENDER, 7.5)
    await redis.xadd(STREAM, {"r": b"not a report"})  # undecodable: the applier buries it at once
    await wait_until(stack.inbox.dead.count, "the bad callback in the dead letter")
    return {"head_score_ms": head_score_ms}


def _assert_seeded_cluster(cluster: Samples, head_score_ms: float, before: float, after: float) -> None:
    assert by_lane([cluster], "notifyq_queue_deliveries", when="due") == {"bulk": 120, "urgent": 0}
    assert by_lane([cluster], "notifyq_queue_deliveries", when="later") == {"bulk": 0, "urgent": 75}
    assert by_lane([cluster], "notifyq_deliveries_retrying") == {"bulk": 5, "urgent": 0}
    assert by_lane([cluster], "notifyq_deliveries_in_flight") == {"bulk": 3, "urgent": 0}
    oldest = by_lane([cluster], "notifyq_queue_oldest_due_seconds")
    assert oldest["urgent"] == 0  # its deliveries are due later
    # read between `before` and `after`: the head's age then, within the gauge's rounding
    assert before - head_score_ms / 1000 - 0.001 <= oldest["bulk"] <= after - head_score_ms / 1000 + 0.001
    assert cluster[("notifyq_account_paused", ACCOUNT)] == 1
    assert cluster[("notifyq_sender_rate", (("sender", SENDER),))] == 7.5
    assert cluster[("notifyq_callback_dead_letters", ())] == 1


async def test_the_figures_of_a_seeded_state_are_true_in_metrics_status_and_the_watch_view(stack: LocalStack) -> None:
    seeded = await _seed(stack)
    before = time.time()
    cluster = await scrape(f"{stack.api_url}/metrics/cluster")
    status = await gather_status(stack.settings, None)
    after = time.time()
    _assert_seeded_cluster(cluster, seeded["head_score_ms"], before, after)

    # status --json: what it printed before (queue_depth, paused_accounts, ...) and the lanes, accounts, senders
    assert status["queue_depth"] == {"urgent": {"due": 0, "later": 75}, "bulk": {"due": 120, "later": 0}}
    bulk = status["lanes"]["bulk"]
    assert {k: v for k, v in bulk.items() if k != "oldest_age_s"} == {
        "depth": 120,
        "due": 120,
        "scheduled": 0,
        "in_flight": 3,
        "retrying": 5,
    }
    assert bulk["oldest_age_s"] >= HEAD_AGE_S
    assert status["lanes"]["urgent"] == {
        "depth": 75,
        "due": 0,
        "scheduled": 75,
        "oldest_age_s": 0,
        "in_flight": 0,
        "retrying": 0,
    }
    main = status["accounts"]["main"]
    assert (main["account_sid"], main["paused"], main["paused_reason"]) == (ACCOUNT_SID, True, "20003: Authenticate")
    assert (main["in_flight"], main["use"]) == (0, 0)
    assert status["senders"] == {SENDER: {"rate": 7.5, "waiting": 0, "backlog_s": 0.0}}
    assert status["paused"] == [ACCOUNT_SID]
    assert status["paused_accounts"] == {ACCOUNT_SID: "20003: Authenticate"}
    assert status["dead_letters"] == {"callbacks": 1}
    assert status["callback_dead_letters"] == 1
    assert set(status["reconcile_backlog"]) == {"stale", "oldest_stale_s", "unanswered"}

    # the watch view shows the same figures
    view = render(status, at=after)
    rows = {line.split()[0]: line.split() for line in view.splitlines() if line.strip()}
    assert rows["bulk"][1:4] == ["120", "120", "0"]
    assert rows["bulk"][5:] == ["3", "5"]
    assert rows["urgent"][1:] == ["75", "0", "75", "0.0s", "0", "0"]
    assert rows["main"][1] == ACCOUNT_SID
    assert "20003: Authenticate" in view
    assert rows[SENDER][1:3] == ["7.5", "0"]
    assert "1 dead-lettered" in view
    assert f"PAUSED: {ACCOUNT_SID}" in view


async def _cli(stack: LocalStack, *args: str) -> tuple[int, str]:
    return await run_cli(stack.settings, *args)


async def test_status_json_and_a_bounded_watch_run_through_the_cli(stack: LocalStack) -> None:
    await _seed(stack)
    code, out = await _cli(stack, "status", "--json")
    assert code == 0, out
    printed = json.loads(out)
    assert printed["lanes"]["bulk"]["retrying"] == 5
    assert printed["paused"] == [ACCOUNT_SID]
    code, out = await _cli(stack, "status", "--watch", "--interval", "0.2", "--iterations", "2")
    assert code == 0, out
    assert out.count("notifyq status ") == 2  # two frames, then it stopped by itself
    assert "\x1b[" not in out  # not a terminal: frames one after another, no redraw codes
    bulk_rows = [line.split() for line in out.splitlines() if line.startswith("bulk ")]
    assert [row[1:4] for row in bulk_rows] == [["120", "120", "0"]] * 2
    code, out = await _cli(stack, "status", "--watch", "--json")
    assert code == 2, out
    assert "--watch" in out


@pytest.fixture
async def second_replica(stack: LocalStack) -> AsyncIterator[str]:
    """Another API replica on the same Redis and database: its URL."""
    app = create_app(stack.settings, redis_url=stack.settings.redis_url or "")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_two_api_replicas_scraped_as_prometheus_is_told_sum_to_the_truth(
    stack: LocalStack, second_replica: str
) -> None:
    seeded = await _seed(stack)
    async with Client(second_replica, token=API_TOKEN) as client:  # one more batch, through the other replica
        await client.submit(sms_batch(people(4, start=5000)))
    await stack.app[STATE].require_producer().drain()
    replicas = [stack.api_url, second_replica]
    await wait_until(lambda: _due_bulk(second_replica, 124), "the second replica's batch queued", timeout_s=60)
    before = time.time()
    own = [await scrape(f"{url}/metrics") for url in replicas]  # job notifyq-api: every replica
    cluster = [await scrape(f"{url}/metrics/cluster") for url in replicas]
    after = time.time()
    # any replica answers the one cluster target with the same figures (the oldest age moves with the clock)
    steady = [{k: v for k, v in c.items() if k[0] != "notifyq_queue_oldest_due_seconds"} for c in cluster]
    assert steady[0] == steady[1]
    # per replica: what it did, and none of the deployment's gauges, so summing the replicas counts nothing twice
    cluster_names = {name for name, _ in cluster[0]}
    assert not cluster_names & {name for scraped in own for name, _ in scraped}
    accepted = sum(s.get(("notifyq_recipients_accepted_total", (("channel", "sms"),)), 0) for s in own)
    assert accepted == 120 + 75 + 4
    # sum by (lane) over everything Prometheus scrapes (both replicas' /metrics and the one cluster target)
    scraped = [*own, cluster[0]]
    assert by_lane(scraped, "notifyq_queue_deliveries", when="due") == {"bulk": 124, "urgent": 0}
    assert by_lane(scraped, "notifyq_deliveries_retrying") == {"bulk": 5, "urgent": 0}
    assert by_lane(scraped, "notifyq_deliveries_in_flight") == {"bulk": 3, "urgent": 0}
    oldest = by_lane(scraped, "notifyq_queue_oldest_due_seconds")["bulk"]
    assert before - seeded["head_score_ms"] / 1000 - 0.001 <= oldest <= after - seeded["head_score_ms"] / 1000 + 0.001


async def _due_bulk(url: str, n: int) -> bool:
    return by_lane([await scrape(f"{url}/metrics/cluster")], "notifyq_queue_deliveries", when="due")["bulk"] == n


async def test_callback_lag_runs_from_twilio_s_event_time_or_receipt_to_applied(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(sms_batch(people(3)))
    store = stack.worker_app.store
    ids = sorted(d for chunk in [c async for c in store.iter_unsettled(["pending"])] for d, *_ in chunk)
    start = time.time()
    event_at = int(start) - 40  # Twilio's Timestamp has whole seconds
    stamped = {"Timestamp": email.utils.formatdate(event_at, usegmt=True)}  # a call callback's event time
    raws: list[dict[str, str]] = [stamped, {}, {"Timestamp": "not a date"}]
    for n, (delivery_id, raw) in enumerate(zip(ids, raws, strict=True)):
        report = StatusReport(delivery_id, f"SM{n:032x}", "sent", "callback", at=time.time(), raw=raw)
        await stack.inbox.put(report)
    await wait_until(lambda: _lag_count(stack, 3), "three callbacks applied")
    elapsed = time.time() - start
    own = await scrape(f"{stack.api_url}/metrics")
    lag_sum = own[("notifyq_callback_lag_seconds_sum", ())]
    # the stamped one waited since its event plus its trip; the two others only their trip (receipt to applied)
    assert start - event_at <= lag_sum <= start - event_at + 3 * elapsed
    assert elapsed < 30  # so the bucket below holds exactly the two unstamped ones
    assert own[("notifyq_callback_lag_seconds_bucket", (("le", "30.0"),))] == 2
    assert own[("notifyq_callback_lag_seconds_bucket", (("le", "60.0"),))] == 3


async def _lag_count(stack: LocalStack, n: int) -> bool:
    return (await scrape(f"{stack.api_url}/metrics")).get(("notifyq_callback_lag_seconds_count", ())) == n
