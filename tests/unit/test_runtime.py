"""Process tuning: the heap frozen after start-up and the young generation collected less often."""

from __future__ import annotations

import gc

from notifyq.ops.runtime import GC_THRESHOLDS, freeze_heap


def test_freeze_heap_freezes_what_lives_now_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    kept = [[n] for n in range(1000)]  # tracked containers alive at start-up
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700  # CPython's default (an in-process stack may have set ours already)
        # cycles made afterwards are still collected
        a: list[object] = []
        a.append(a)
        del a
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
