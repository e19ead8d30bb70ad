"""Process plumbing: the heap frozen after start-up, the young generation collected less often, stop signals."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from notifyq.cli.runtime import GC_THRESHOLDS, freeze_heap


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


# a service that says when it runs, and whose cleanup takes a moment and leaves a mark
_SERVICE = """
import asyncio, sys
from notifyq.cli.runtime import serve

async def service():
    print("up", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.sleep(0.2)
        open(sys.argv[1], "w").write("cleaned up")

serve(service())
print("returned", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_the_service_clean_up_and_exit_0(tmp_path: Path, sig: signal.Signals) -> None:
    mark = tmp_path / "mark"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SERVICE, str(mark)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "returned"
    assert f"signal={sig.name}" in out  # the stop is logged, with its cause
    assert mark.read_text() == "cleaned up"
