"""The image: its Dockerfile read, and its entrypoint run as the image runs it, with a stub ``notifyq``.

No Docker engine runs here, so deploy/docker-entrypoint.sh is run directly by its ``#!/bin/sh``. The stub
records what it was started with (its pid, its arguments, the ``NOTIFYQ_`` environment) as JSON and
exits, or, told to, waits for SIGTERM and records that it came.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
DOCKERFILE = ROOT / "Dockerfile"

STUB = """#!{python}
import json, os, signal, sys

wait = os.environ.get("STUB_WAIT_FOR_TERM") == "1"
if wait:
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}})
record = os.environ["STUB_RECORD"]
started = {{
    "pid": os.getpid(),
    "argv": sys.argv[1:],
    "env": {{k: v for k, v in os.environ.items() if k.startswith("NOTIFYQ_")}},
}}
with open(record + ".new", "w") as f:
    json.dump(started, f)
os.replace(record + ".new", record)
if wait:
    signal.sigwait({{signal.SIGTERM}})
    with open(record + ".signal", "w") as f:
        f.write("SIGTERM")
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) of each Dockerfile line, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def image_env() -> dict[str, str]:
    """The environment the runtime stage's ENV instructions set."""
    stages = [i for i, (instruction, _) in enumerate(instructions()) if instruction == "FROM"]
    env: dict[str, str] = {}
    for instruction, args in instructions()[stages[-1] :]:
        if instruction == "ENV":
            env |= dict(word.split("=", 1) for word in shlex.split(args))
    return env


@dataclass(frozen=True)
class Started:
    """What the stub ``notifyq`` was started with."""

    pid: int
    argv: list[str]
    env: dict[str, str]


class Entrypoint:
    """deploy/docker-entrypoint.sh in a directory of its own: the stub's bin/ and a NOTIFYQ_DATA_DIR."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        stub = self.bin / "notifyq"
        stub.write_text(STUB.format(python=sys.executable))
        stub.chmod(0o755)
        self.data_dir = tmp / "data"
        self.record = tmp / "started.json"
        self._started: list[subprocess.Popen[str]] = []

    def env(self, settings: dict[str, str] | None = None, **stub: str) -> dict[str, str]:
        """A container's environment: ``settings``, PATH with the stub first, this test's data dir; nothing else."""
        return {
            **(settings or {}),
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "NOTIFYQ_DATA_DIR": str(self.data_dir),
            "STUB_RECORD": str(self.record),
            **stub,
        }

    def run(self, *args: str, settings: dict[str, str] | None = None, **stub: str) -> subprocess.CompletedProcess[str]:
        """Run the entrypoint to its end (the stub exits at once)."""
        return subprocess.run(  # noqa: S603 - our own script
            [str(ENTRYPOINT), *args],
            env=self.env(settings, **stub),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def start(self, *args: str, settings: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the entrypoint; the stub waits for SIGTERM. ``close`` ends whatever it started."""
        process = subprocess.Popen(  # noqa: S603 - our own script
            [str(ENTRYPOINT), *args],
            env=self.env(settings, STUB_WAIT_FOR_TERM="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a stub left behind by a shell that did not exec dies too
        )
        self._started.append(process)
        return process

    def close(self) -> None:
        """Kill every process ``start`` started, and whatever they started."""
        for process in self._started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)

    def started(self) -> Started | None:
        """What the stub recorded, or None before it ran."""
        if not self.record.exists():
            return None
        loaded: dict[str, Any] = json.loads(self.record.read_text())
        return Started(pid=loaded["pid"], argv=loaded["argv"], env=loaded["env"])

    def signalled(self) -> bool:
        """Whether the waiting stub received SIGTERM."""
        return self.record.with_name(self.record.name + ".signal").exists()

    def health_note(self) -> dict[str, str]:
        """The entrypoint's note for the health check, as key=value lines."""
        lines = (self.data_dir / "healthcheck").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """``docker-entrypoint.sh healthcheck``, as Docker runs it: a process of its own, the image's environment."""
        return self.run("healthcheck")


def command_of(tmp: Path, args: list[str], settings: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    """The notifyq command line a container with ``args`` runs, its NOTIFYQ_ environment, and its health URL."""
    entrypoint = Entrypoint(tmp)
    done = entrypoint.run(*args, settings=settings)
    started = entrypoint.started()
    assert done.returncode == 0, done.stderr
    assert started is not None, f"{args} started no notifyq"
    return started.argv, started.env, entrypoint.health_note()["url"]
