"""Process plumbing shared by the CLI commands: which Redis, the event loop, stop signals."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Coroutine
from contextlib import ExitStack
from typing import Any, Final, TypeVar

import structlog

from notifyq.cli import embedded
from notifyq.errors import Unavailable
from notifyq.settings import Settings

T = TypeVar("T")
log = structlog.get_logger("notifyq")
# what a service process stops on: a supervisor's SIGTERM (Docker, Kubernetes, systemd) and Ctrl-C
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


def resolve_redis(settings: Settings, stack: ExitStack) -> str:
    """The API's Redis: ``NOTIFYQ_REDIS_URL``, or the embedded one of ``data_dir``.

    An embedded Redis already running for ``data_dir`` (another ``notifyq api``'s) is used as it is;
    otherwise one is started here, recorded for the other parts, and stopped when ``stack`` closes.
    """
    if settings.redis_url:
        return settings.redis_url
    url = embedded.recorded_redis(settings.data_dir)
    if url is not None:
        log.info("using the embedded Redis of another process", url=url, data_dir=str(settings.data_dir))
        return url
    return embedded.start_recorded(settings.data_dir, stack)


def join_redis(settings: Settings) -> str:
    """A one-shot command's Redis: ``NOTIFYQ_REDIS_URL``, or the embedded one ``notifyq api`` runs for ``data_dir``."""
    if settings.redis_url:
        return settings.redis_url
    url = embedded.recorded_redis(settings.data_dir)
    if url is None:
        raise Unavailable("Redis", "", _NO_EMBEDDED.format(data_dir=settings.data_dir))
    return url


async def await_redis(settings: Settings) -> str:
    """A service's Redis, as ``join_redis``; the embedded one is waited for (the API may start later)."""
    if settings.redis_url:
        return settings.redis_url
    return await embedded.wait_for_recorded(settings.data_dir)


_NO_EMBEDDED = (
    "NOTIFYQ_REDIS_URL is unset and no `notifyq api` runs an embedded Redis for {data_dir}: "
    "start `notifyq api` with the same NOTIFYQ_DATA_DIR first, or set NOTIFYQ_REDIS_URL"
)


# aiosqlite runs each statement on a thread of its own; with the event loop busy, that thread waits for
# the GIL for up to the switch interval at every hand-off: a short interval keeps the hand-offs quick
SWITCH_INTERVAL_S = 0.0005


def tune_process() -> None:
    """Process-wide settings for an I/O-bound service that talks to a database thread."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


# the cyclic collector's young generation: collected after this many more container allocations than frees
# (CPython's default is 700), and the older two after this many collections of the one below
GC_THRESHOLDS: Final = (50_000, 10, 10)


def freeze_heap() -> None:
    """Keep the objects alive now (modules, settings, the app and its connections) out of the collector's walks.

    A full collection visits every tracked object, and most of a process' objects (modules, phone-number
    metadata) live as long as it does. Intake makes objects fast enough to run full collections often, and
    a long one stalls a worker or the simulator beyond the pacer's tolerances (docs/operations.md).

    The young generation is collected less often too (``GC_THRESHOLDS``): at CPython's default a busy worker
    or simulator collects many times a second, each time walking every young object still in use (the
    requests in flight). The garbage a cycle holds waits a little longer; what is freed by reference
    counting (nearly everything) is freed at once.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed (with the process tuned by ``tune_process``)."""
    tune_process()
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


def serve(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a long-lived service (worker, applier, simulator) until it ends, or until SIGTERM or SIGINT.

    A stop signal cancels the service, so its own cleanup runs: a worker takes no new jobs and gives
    the running ones time to finish, then closes its connections. A second signal cancels that too.
    Without this, SIGTERM (what ``docker stop`` and Kubernetes send) ended the process mid-send.
    """
    run(_until_stopped(coro))


async def _until_stopped(coro: Coroutine[Any, Any, Any]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    stopped: list[str] = []

    def stop(name: str) -> None:
        stopped.append(name)
        log.info("stopping", signal=name, again=len(stopped) > 1)
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await task
    except asyncio.CancelledError:
        if not stopped:  # not ours: cancelled from elsewhere
            raise
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
