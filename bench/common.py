"""Shared plumbing for the benchmarks: child processes that never outlive us, Redis, the simulator.

Every process a benchmark starts goes through ``Procs``: it gets its own process group and is killed
(SIGTERM, then SIGKILL) when the ``with`` block ends, whatever happened inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from redis.asyncio import Redis

from notifyq.queue.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "simulator-token"  # noqa: S105 - the simulator's default, not a secret
API_TOKEN = "bench-token"  # noqa: S105 - local only
SENDER = "+15005550006"
BULK_QUEUE = "notifyq:queue:bulk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recipients(n: int, start: int = 0) -> list[str]:
    """``n`` distinct valid US numbers (+1 415 NXX XXXX, exchange 200-999)."""
    out = []
    for i in range(start, start + n):
        exchange, line = divmod(i, 10_000)
        area = 415 + 100 * (exchange // 800)  # 415, 515, 615, ... when one area code runs out
        out.append(f"+1{area}{200 + exchange % 800}{line:04d}")
    return out


def sms_batch(n: int, body: str = "Your code is 123456. Reply STOP to opt out.") -> dict[str, Any]:
    return {"channel": "sms", "from": SENDER, "body": body, "recipients": recipients(n)}


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    cpu_s: float | None = None  # user + system CPU seconds, known once we reaped it

    def poll(self) -> int | None:
        """Like ``Popen.poll``, but reaps with wait4 to keep the child's CPU time."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            return self.proc.poll()
        if pid == 0:
            return None
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@dataclass
class Procs:
    """Child processes, each in its own process group, all stopped on exit."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.workdir / f"{name}-{len(self.children)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout_s: float = 10.0) -> None:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        # the whole group, in case the child left grandchildren
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child, timeout_s=5.0)


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Procs]:
    with tempfile.TemporaryDirectory(prefix=f"notifyq-bench-{prefix}-") as tmp:
        procs = Procs(Path(tmp))
        try:
            yield procs
        finally:
            procs.stop_all()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A fresh embedded redis-server, or NOTIFYQ_BENCH_REDIS_URL (its DB is flushed first)."""
    url = os.environ.get("NOTIFYQ_BENCH_REDIS_URL")
    if url:
        import redis  # noqa: PLC0415

        redis.Redis.from_url(url).flushdb()
        yield url
        return
    server = EmbeddedRedis()
    try:
        yield server.start()
    finally:
        server.stop()


def redis_db_url(url: str, db: int) -> str:
    """The same Redis server, another logical database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def proc_status(pid: int, key: str) -> int:
    """A ``kB`` value from /proc/PID/status (VmHWM, VmRSS), in kB; 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and every live descendant (a Celery pool, a worker's threads)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(cpu_seconds(p) for p in tree)


async def redis_cpu(redis_url: str, *, reset_stats: bool = False) -> float:
    """Redis' own CPU seconds (INFO cpu); ``reset_stats`` also zeroes its command counts."""
    r = Redis.from_url(redis_url)
    try:
        info = await r.info("cpu")
        if reset_stats:
            await r.config_resetstat()
    finally:
        await r.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@dataclass
class CpuMeter:
    """CPU seconds of named process trees and of Redis, read together: two reads give a window's CPU.

    With ``database_url`` (a PostgreSQL server on this machine), also ``postgres``: the CPU of that
    database's backends, each counted at the last read that saw it alive, so a backend that closes
    between reads does not take its time back out of the sum (what it spent after that read is lost).
    """

    redis_url: str
    pids: dict[str, int]
    database_url: str | None = None
    _backends: dict[int, float] = field(default_factory=dict, init=False, repr=False)

    async def read(self) -> dict[str, float]:
        out = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        out["redis"] = await redis_cpu(self.redis_url)
        if self.database_url:
            from bench import postgres  # noqa: PLC0415

            for pid in await postgres.backend_pids(self.database_url):
                self._backends[pid] = max(cpu_seconds(pid), self._backends.get(pid, 0.0))
            out["postgres"] = sum(self._backends.values())
        return out


def notifyq_env(
    *,
    redis_url: str,
    data_dir: Path,
    sim_url: str,
    api_port: int,
    senders: dict[str, float] | None = None,
    max_in_flight: int = 500,
    max_jobs: int = 500,
    poll_delay_s: float = 0.05,
    database_url: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of notifyq's processes; the store is SQLite in ``data_dir`` unless ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYQ_")}
    env.update(
        {
            "NOTIFYQ_REDIS_URL": redis_url,
            "NOTIFYQ_DATA_DIR": str(data_dir),
            "NOTIFYQ_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "NOTIFYQ_API__HOST": "127.0.0.1",
            "NOTIFYQ_API__PORT": str(api_port),
            "NOTIFYQ_API__TOKENS": json.dumps([API_TOKEN]),
            "NOTIFYQ_TWILIO__BASE_URL": sim_url,
            "NOTIFYQ_TWILIO__ACCOUNTS": json.dumps(
                {"main": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "max_in_flight": max_in_flight}}
            ),
            "NOTIFYQ_PACING__SENDERS": json.dumps(senders if senders is not None else {SENDER: 100_000}),
            "NOTIFYQ_WORKER__MAX_JOBS": str(max_jobs),
            "NOTIFYQ_WORKER__POLL_DELAY_S": str(poll_delay_s),
            "NOTIFYQ_LOG_LEVEL": "warning",
            "NOTIFYQ_LOG_FORMAT": "json",
        }
    )
    if database_url:
        env["NOTIFYQ_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def settings_from_env(env: dict[str, str]) -> Any:
    """A ``Settings`` built from ``env`` (for the in-process Producer)."""
    from notifyq.settings import Settings  # noqa: PLC0415

    saved = {k: v for k, v in os.environ.items() if k.startswith("NOTIFYQ_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update({k: v for k, v in env.items() if k.startswith("NOTIFYQ_")})
        return Settings()
    finally:
        for k in [k for k in os.environ if k.startswith("NOTIFYQ_")]:
            del os.environ[k]
        os.environ.update(saved)


async def wait_http(url: str, timeout_s: float = 30.0, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


async def start_simulator(
    procs: Procs, *, latency_s: float = 0.0, max_concurrency: int | None = None, callbacks: bool = False
) -> tuple[Child, str]:
    port = free_port()
    argv = [PY, "-m", "notifyq", "simulator", "--port", str(port), "--latency", str(latency_s)]
    if max_concurrency:
        argv += ["--max-concurrency", str(max_concurrency)]
    env = {**os.environ, "NOTIFYQ_LOG_LEVEL": "warning", "NOTIFYQ_LOG_FORMAT": "json"}
    child = procs.spawn("simulator", argv, env)
    url = f"http://127.0.0.1:{port}"
    await wait_http(url + "/_sim/stats", child=child)
    await sim_post(url, "/_sim/config", {"callbacks": callbacks})
    return child, url


async def sim_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url + path, timeout=aiohttp.ClientTimeout(total=120)) as r:
        r.raise_for_status()
        return await r.json()


async def sim_post(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + path, json=body or {}, timeout=aiohttp.ClientTimeout(total=30)) as r,
    ):
        r.raise_for_status()
        return await r.json()


async def sim_delete(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.delete(url + path, timeout=aiohttp.ClientTimeout(total=60)) as r:
        r.raise_for_status()
        return await r.json()


async def submit_in_process(env: dict[str, str], batch: dict[str, Any]) -> tuple[str, float]:
    """Create a batch with the in-process Producer (rows + jobs); its id and the seconds it took."""
    from notifyq import Producer  # noqa: PLC0415

    settings = settings_from_env(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    producer = await Producer.open(settings)
    try:
        submitted = await producer.submit(batch)  # waits until every job is in Redis
    finally:
        await producer.close()
    return submitted.batch.id, time.perf_counter() - t0


async def migrate(env: dict[str, str]) -> None:
    """Create the schema once, before several processes race to migrate it."""
    from notifyq.store import Store  # noqa: PLC0415

    settings = settings_from_env(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.sqlalchemy_url())
    await store.close()


async def zcard(redis_url: str, key: str = BULK_QUEUE) -> int:
    r = Redis.from_url(redis_url)
    try:
        return int(await r.zcard(key))
    finally:
        await r.aclose()


async def wait_exit(child: Child, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return True
        await asyncio.sleep(0.05)
    return False


def worker_argv(burst: bool = True) -> list[str]:
    return [PY, "-m", "notifyq", "worker", *(["--burst"] if burst else [])]


def api_argv(*, applier: bool = True) -> list[str]:
    return [PY, "-m", "notifyq", "api", *([] if applier else ["--no-applier"])]


def applier_argv() -> list[str]:
    return [PY, "-m", "notifyq", "applier"]


def rate_from_times(times: list[float]) -> tuple[float, float]:
    """(sends per second, seconds) from first to last creation time."""
    if len(times) < 2:
        return 0.0, 0.0
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else 0.0, span


async def callback_stream_left(redis_url: str, timeout_s: float, applier: Child | None = None) -> int:
    """Wait (bounded) until the callback stream is empty; the entries left in it."""
    from notifyq.queue.inbox import STREAM  # noqa: PLC0415

    r = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = int(await r.xlen(STREAM))
            if left == 0 or time.monotonic() > deadline or (applier is not None and applier.poll() is not None):
                return left
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()


async def store_counts(env: dict[str, str], batch_id: str) -> dict[str, Any]:
    """The callback events of a batch's deliveries in the store, and its deliveries by status."""
    from sqlalchemy import func, select  # noqa: PLC0415

    from notifyq.store import Store  # noqa: PLC0415
    from notifyq.store.schema import deliveries, delivery_events  # noqa: PLC0415

    ids = select(deliveries.c.id).where(deliveries.c.batch_id == batch_id)
    events = (
        select(func.count())
        .select_from(delivery_events)
        .where(delivery_events.c.kind == "callback", delivery_events.c.delivery_id.in_(ids))
    )
    by_status = (
        select(deliveries.c.status, func.count()).where(deliveries.c.batch_id == batch_id).group_by(deliveries.c.status)
    )
    store = await Store.open(settings_from_env(env).sqlalchemy_url())
    try:
        async with store.engine.connect() as conn:
            count = int((await conn.execute(events)).scalar_one())
            statuses = {str(status): int(n) for status, n in await conn.execute(by_status)}
    finally:
        await store.close()
    return {"callback_events": count, "deliveries_by_status": statuses}
