"""Invariant 4 for a 10DLC campaign: the numbers of one sender group share its rate, across workers.

Two numbers in one group at ``RATE`` segments a second, sent from by two worker processes, together
never put more than ``RATE`` segments in any second where the simulator counts them, and come near it
(so the test cannot pass by pacing each number at its kind's default); a number in no group keeps its
own rate beside them, and is not held to the group's. Seconds are counted as in
``test_pacing_is_shared.py``, where the simulator stamps each create.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import notifyq_process, settings_env, wait_until
from notifyq.api.app import STATE
from notifyq.client import Client
from notifyq.testing import API_TOKEN, local_stack

from .helpers import busiest_second, sim_get, simulator_process

RATE = 10  # segments per second the campaign's numbers share
ALONE_RATE = 10  # segments per second of the number in no group
CAMPAIGN = ("+14155550100", "+14155550101")
ALONE = "+14155550102"
PER_SENDER = 40
BODIES = ("a" * 100, "b" * 250)  # GSM-7: 1 and 2 segments


@pytest.mark.slow
async def test_a_groups_numbers_together_keep_its_rate_and_a_number_outside_keeps_its_own(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    pacing = {
        "senders": {ALONE: float(ALONE_RATE)},
        "groups": {"campaign": {"rate": float(RATE), "senders": list(CAMPAIGN)}},
    }
    async with (
        simulator_process(callbacks=False) as sim_url,
        local_stack(
            data_dir=tmp_path,
            redis_url=redis_url,
            database_url=database_url,
            sim_url=sim_url,
            run_worker=False,
            pacing=pacing,
        ) as stack,
        Client(stack.api_url, token=API_TOKEN) as client,
    ):
        for n, sender in enumerate((*CAMPAIGN, ALONE)):
            recipients = [{"to": f"+1415556{n}{i:03d}", "vars": {"text": BODIES[i % 2]}} for i in range(PER_SENDER)]
            await client.submit({"channel": "sms", "from": sender, "body": "{text}", "recipients": recipients})
        await stack.app[STATE].require_producer().drain()  # every job is in Redis before the workers start
        env = settings_env(stack.settings)
        total = 3 * PER_SENDER
        async with notifyq_process("worker", env=env) as first, notifyq_process("worker", env=env) as second:

            async def all_sent() -> bool:
                assert first.proc.returncode is None, f"a worker exited: {first.tail()}"
                assert second.proc.returncode is None, f"a worker exited: {second.tail()}"
                return bool((await sim_get(sim_url, "/_sim/stats"))["messages"] >= total)

            expected_s = 2 * sum(i % 2 + 1 for i in range(PER_SENDER)) / RATE
            await wait_until(all_sent, f"{total} messages at the simulator", timeout_s=3 * expected_s + 30)
        messages = await sim_get(sim_url, "/_sim/messages")
    grouped = [(m["created_at"], m["num_segments"]) for m in messages if m["from"] in CAMPAIGN]
    alone = [(m["created_at"], m["num_segments"]) for m in messages if m["from"] == ALONE]
    assert len(grouped) == 2 * PER_SENDER
    assert len(alone) == PER_SENDER
    assert {m["from"] for m in messages} == {*CAMPAIGN, ALONE}
    assert busiest_second(grouped) <= RATE
    assert busiest_second(alone) <= ALONE_RATE
    # the group's numbers share the group's rate, not the default of their kind each: some second holds
    # near the group's rate (and none more, above)
    assert busiest_second(grouped) >= 0.75 * RATE, "the group's numbers never came near the group's rate"
    # the number outside keeps a rate of its own: beside the group, it takes some second past the group's rate
    assert busiest_second(grouped + alone) > RATE, "the number outside the group was held to the group's rate"
