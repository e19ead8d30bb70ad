"""py-spy around a child process, and a short summary of where its time went (self and inclusive)."""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def record(pid: int, name: str, duration_s: int = 30, *, enabled: bool = True) -> Iterator[Path | None]:
    """Sample ``pid`` with py-spy (collapsed stacks) into bench/results/profile-NAME.txt while the block runs."""
    exe = _py_spy()
    if not enabled or exe is None:
        yield None
        return
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{name}.txt"
    argv = [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        str(duration_s),
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(out),
        "--nonblocking",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def summarize(path: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of samples by function, from py-spy's raw (collapsed) output."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return {"self": [], "inclusive": []}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_counts[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            incl[frame] += count
    share = 100.0 / max(total, 1)
    return {
        "samples": [("total", float(total))],
        "self": [(k, round(v * share, 1)) for k, v in self_counts.most_common(top)],
        "inclusive": [(k, round(v * share, 1)) for k, v in incl.most_common(top * 2)],
    }


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    tail = "/".join(parts[-2:]) if parts else file
    return f"{name} ({tail})"
