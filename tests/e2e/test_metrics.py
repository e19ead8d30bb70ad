"""The metrics count what happened: every create request the simulator received, every delivery queued."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from helpers import SENDER, people, settle, sms_batch
from notifyq.api.app import STATE
from notifyq.cli.status import gather_status
from notifyq.client import Client
from notifyq.queue.depth import Depth
from notifyq.simulator import SimulatorConfig
from notifyq.testing import API_TOKEN, LocalStack, free_port
from notifyq.worker import serve_metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, sorted labels) -> value, from a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    return sum(
        s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return samples(await resp.text())


def depth(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], lane: str, when: str) -> float:
    return scraped[("notifyq_queue_deliveries", (("lane", lane), ("when", when)))]


@pytest.mark.parametrize("sim_config", [SimulatorConfig(accounts={}, callback_delay_s=0.01, seed=7, rate_5xx=0.05)])
async def test_send_metrics_equal_the_requests_twilio_received(stack: LocalStack) -> None:
    # slow enough that the chunk jobs defer to arq (rewrite themselves and Retry) for the waves to come
    stack.settings.pacing.senders[SENDER] = 150.0
    magic = [
        {"to": "+15005550001", "vars": {"name": "x", "code": "1"}},  # 400, 21211: the delivery fails
        {"to": "+15005550004", "vars": {"name": "x", "code": "1"}},  # 400, 21610: the recipient is suppressed
    ]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch([*people(300), *magic]))
        status = await settle(stack, client, accepted["id"], timeout_s=60)
    assert status["done"], status
    sim = stack.simulator
    assert sim is not None
    m = stack.worker_app.metrics.registry
    assert total(m, "notifyq_job_deferrals_total", job="chunk") >= 1  # chunks did hand back to arq
    assert sim.counters.http_5xx > 0  # and some requests failed and were retried
    # one count per request Twilio received, by what it answered
    assert total(m, "notifyq_sends_total", result="accepted") == sim.counters.created == 300
    assert total(m, "notifyq_sends_total", result="refused") == sim.counters.rejected == 2
    assert total(m, "notifyq_sends_total", result="server_error") == sim.counters.http_5xx
    assert total(m, "notifyq_sends_total", result="throttled") == sim.counters.http_429
    assert total(m, "notifyq_sends_total") == sim.counters.requests
    assert total(m, "notifyq_twilio_request_seconds_count") == sim.counters.requests
    # errors by code and by what was done about them
    assert total(m, "notifyq_send_errors_total", code="21211", action="fail") == 1
    assert total(m, "notifyq_send_errors_total", code="21610", action="suppress") == 1
    assert total(m, "notifyq_send_errors_total", code="other_5xx", action="retry") == sim.counters.http_5xx
    assert total(m, "notifyq_send_errors_total") == sim.counters.requests - sim.counters.created
    # every job ran out: nothing left in the depth
    assert await stack.worker_app.jobs.depth() == {"urgent": Depth(0, 0), "bulk": Depth(0, 0)}


async def test_queue_depth_counts_deliveries_and_leaves_out_a_canceled_scheduled_batch(stack: LocalStack) -> None:
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with Client(stack.api_url, token=API_TOKEN) as client:
        now = await client.submit(sms_batch(people(120)))
        later = await client.submit(sms_batch(people(75, start=3000), send_at=send_at, priority="urgent"))
        await stack.app[STATE].require_producer().drain()  # the API enqueues in the background
        before = await scrape(f"{stack.api_url}/metrics/cluster")
        status = await gather_status(stack.settings, None)
        await client.cancel(later["id"])
        after = await scrape(f"{stack.api_url}/metrics/cluster")
        await settle(stack, client, now["id"])
        drained = await scrape(f"{stack.api_url}/metrics/cluster")
    assert (depth(before, "bulk", "due"), depth(before, "bulk", "later")) == (120, 0)  # three chunk jobs
    assert (depth(before, "urgent", "due"), depth(before, "urgent", "later")) == (0, 75)
    assert status["queue_depth"] == {"urgent": {"due": 0, "later": 75}, "bulk": {"due": 120, "later": 0}}
    assert (depth(after, "urgent", "due"), depth(after, "urgent", "later")) == (0, 0)
    assert depth(after, "bulk", "due") == 120
    assert {depth(drained, lane, when) for lane in ("bulk", "urgent") for when in ("due", "later")} == {0}
    assert ("notifyq_callback_backlog", ()) in drained
    assert stack.simulator is not None
    assert stack.simulator.counters.created == 120


async def test_a_replica_s_own_metrics_leave_the_cluster_gauges_to_one_endpoint(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(sms_batch(people(3)))
        await stack.app[STATE].require_producer().drain()
    own = await scrape(f"{stack.api_url}/metrics")
    cluster = await scrape(f"{stack.api_url}/metrics/cluster")
    assert own[("notifyq_recipients_accepted_total", (("channel", "sms"),))] == 3
    # summed over any number of replicas, the per-process metrics stay true: no replica repeats Redis' figures
    assert not {name for name, _ in own} & {"notifyq_queue_deliveries", "notifyq_callback_backlog"}
    assert depth(cluster, "bulk", "due") == 3
    assert not {name for name, _ in cluster} & {name for name, _ in own}


async def test_worker_metrics_server_serves_metrics_and_health_on_its_host() -> None:
    registry = CollectorRegistry()
    healthy = {"redis": True}

    async def health() -> bool:
        return healthy["redis"]

    port = free_port()
    runner = await serve_metrics(registry, "127.0.0.1", port, health)
    try:
        assert [address[:2] for address in runner.addresses] == [("127.0.0.1", port)]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as resp:
                ok: dict[str, Any] = await resp.json()
                assert (resp.status, ok["status"]) == (200, "ok")
            healthy["redis"] = False
            async with s.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 503
            async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()
