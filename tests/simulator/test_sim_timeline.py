"""The timeline runs steps due in the same tick on one loop timer, in order, and counts them until they ran."""

from __future__ import annotations

import asyncio

from notifyq.simulator.callbacks import TICK_S, Timeline
from notifyq.simulator.config import SimulatorConfig
from notifyq.simulator.lifecycle import Step
from notifyq.simulator.records import SimCounters


async def test_steps_of_one_tick_share_a_timer_and_run_in_order() -> None:
    timeline = Timeline(SimulatorConfig(callbacks=False), SimCounters())
    ran: list[str] = []
    loop = asyncio.get_running_loop()
    # a delay that falls well inside a tick (not at its edge), so all of these share it
    start = loop.time()
    offset = TICK_S * 10 - (start % TICK_S) + TICK_S / 2
    timeline.schedule([Step(offset + i * TICK_S / 100, lambda i=i: ran.append(f"a{i}")) for i in range(3)])
    timeline.schedule([Step(offset, lambda: ran.append("b")), Step(offset + TICK_S * 4, lambda: ran.append("late"))])
    assert len(timeline._timers) == 2  # one per tick, not one per step
    assert not timeline._idle.is_set()
    assert await timeline.settle(2.0)
    assert ran == ["a0", "a1", "a2", "b", "late"]
    assert loop.time() - start >= offset  # nothing ran early
    assert timeline._timers == {}
    assert timeline._due == {}


async def test_forget_cancels_every_step_still_due() -> None:
    timeline = Timeline(SimulatorConfig(callbacks=False), SimCounters())
    ran: list[int] = []
    timeline.schedule([Step(0.5 + i * 0.05, lambda i=i: ran.append(i)) for i in range(4)])
    assert not timeline._idle.is_set()
    timeline.forget()
    assert timeline._idle.is_set()  # nothing outstanding any more
    await asyncio.sleep(0.8)  # the scenario: the time every step was due at passes
    assert ran == []
