"""A batch through a Redis failover: a master, its replica and three sentinels, the master failed over mid-batch.

Every part (the API, its callback inbox and applier, the worker and its arq lanes, the pacer) talks
to Redis through one ``redis+sentinel://`` URL. After the failover each finds the new master; what
the old master took in its last moments (replication is asynchronous) may be lost, and the delivery
rows (the truth) bring it back: ``notifyq requeue`` (the operator's step after a failover) queues
what has no job, a job whose end was lost runs again, and the reconciler fetches what has had no
callback (``docs/deploy.md``, Sentinel).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from helpers import holds, people, sms_batch, wait_until
from helpers.sentinel import SentinelGroup
from notifyq.cli.requeue import requeue_missing
from notifyq.client import Client
from notifyq.simulator import SimulatorConfig
from notifyq.testing import API_TOKEN, local_stack
from notifyq.worker import reconcile_once

BATCH = 300
STATUSES = ("queued", "accepted", "sending", "sent")  # the non-final ones a message can wait in
RATE = 50.0  # the sender's messages per second: the batch takes a few seconds, the failover comes inside them


async def test_a_failover_mid_batch_loses_no_delivery_and_sends_none_twice(
    tmp_path: Path, database_url: str, sim_config: SimulatorConfig
) -> None:
    async with (
        SentinelGroup(tmp_path / "redis") as group,
        local_stack(
            data_dir=tmp_path,
            redis_url=group.url,
            database_url=database_url,
            sim_config=sim_config,
            pacing={"senders": {"+15005550006": RATE}},
            calls_per_second=1000.0,
            # a job finished on the old master in its last moments is still marked in progress on the new
            # one: it runs again when the mark expires (job_timeout_s + 10 s), kept short here
            worker={
                "callback_grace_s": 0.3,
                "backoff_base_s": 0.05,
                "backoff_cap_s": 0.2,
                "poll_delay_s": 0.01,
                "job_timeout_s": 20.0,
            },
            reconcile={
                "stale_after_s": dict.fromkeys(STATUSES, 2.0),
                "unanswered_after_s": 2.0,
                "requests_per_minute": 6000.0,
            },
        ) as stack,
        Client(stack.api_url, token=API_TOKEN) as client,
    ):
        sim = stack.simulator
        assert sim is not None
        batch = await client.submit(sms_batch(people(BATCH)))
        await wait_until(lambda: len(sim.messages) >= BATCH // 4, "a quarter of the batch at the simulator")
        new_master = await group.promote()
        assert len(sim.messages) < BATCH, "the failover came after the batch: raise BATCH or lower RATE"
        # the operator's step after a failover (docs/deploy.md): once the old master is a replica, queue
        # again what has no job (what the old master took in its last moments is gone)
        await group.demoted()
        requeued = await requeue_missing(stack.settings, group.url)  # through the sentinels, as the command does
        assert requeued["checked"] >= requeued["requeued"] >= 0

        status: dict[str, Any] = {}

        async def final() -> bool:
            status.update(await client.batch(batch["id"]))
            if status["done"]:
                return True
            # a callback the old master took and lost: the reconciler asks Twilio (its cron, run here)
            await reconcile_once(stack.worker_app)
            return False

        assert await holds(final, timeout_s=75, every_s=1.0), f"not every delivery final: {status['by_status']}"
        assert await group.master_port() == new_master

    assert status["by_status"] == {"delivered": BATCH}
    creates = Counter(m.to for m in sim.messages)
    assert len(creates) == BATCH
    assert max(creates.values()) == 1, [to for to, n in creates.items() if n > 1]
