"""One embedded Redis per data directory, shared by the parts that run on one machine.

With ``NOTIFYQ_REDIS_URL`` unset, ``notifyq api`` starts a redis-server in ``<data_dir>/redis`` and
writes its URL to ``<data_dir>/redis.url``; a worker, an applier or an operator's command with the
same data directory reads the file and uses that Redis. The file is removed when the API stops.

A URL read from the file is used only when the Redis there is the one running in that directory
(``CONFIG GET dir``): a file left behind by a process that was killed may name a port that some other
Redis holds by now. The port is the data directory's own (a number derived from its path, below the
kernel's range for outgoing connections) when it is free, so an API that restarts takes the same one
and the workers that were using it find it again; when it is taken, any free port.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Final, cast

import redis
import structlog
from redis.exceptions import RedisError

from notifyq.queue.redis_server import EmbeddedRedis, EmbeddedRedisError

log = structlog.get_logger("notifyq")
URL_FILE: Final = "redis.url"
# how long a process waiting for the API's embedded Redis pauses between looks, doubled up to the cap
WAIT_RETRY_S: Final = (0.2, 2.0)
# where a data directory's own port lies: registered ports below Linux's ephemeral range (32768-60999),
# so no outgoing connection holds it by chance
STABLE_PORTS: Final = (20_000, 30_000)
_PROBE_TIMEOUT_S: Final = 1.0


def server_dir(data_dir: Path) -> Path:
    """Where the embedded redis-server of ``data_dir`` runs (its working directory and its log)."""
    return data_dir.absolute() / "redis"


def recorded_redis(data_dir: Path) -> str | None:
    """The URL of the embedded Redis running for ``data_dir``, or None when none runs."""
    try:
        url = (data_dir / URL_FILE).read_text().strip()
    except OSError:
        return None
    return url if url and _serves(url, server_dir(data_dir)) else None


async def wait_for_recorded(data_dir: Path) -> str:
    """``recorded_redis``, once there is one: a worker may start before the API has started its Redis."""
    low, high = WAIT_RETRY_S
    pause = low
    waited = False
    while (url := await asyncio.to_thread(recorded_redis, data_dir)) is None:
        if not waited:
            log.info("waiting for the embedded Redis of `notifyq api`", data_dir=str(data_dir), file=URL_FILE)
            waited = True
        await asyncio.sleep(pause)
        pause = min(2 * pause, high)
    return url


def stable_port(data_dir: Path) -> int:
    """The port the embedded Redis of ``data_dir`` takes when it is free: the same one at every start."""
    low, high = STABLE_PORTS
    digest = hashlib.sha256(str(server_dir(data_dir)).encode()).digest()
    return low + int.from_bytes(digest[:4], "big") % (high - low)


def start_recorded(data_dir: Path, stack: ExitStack) -> str:
    """Start the embedded Redis of ``data_dir``, record its URL; ``stack`` stops it and removes the record."""
    workdir = server_dir(data_dir)
    server = EmbeddedRedis(port=stable_port(data_dir), data_dir=workdir)
    try:
        url = server.start()
    except EmbeddedRedisError:
        server = EmbeddedRedis(data_dir=workdir)  # the directory's own port is taken: any free one
        url = server.start()
    stack.callback(server.stop)
    _write(data_dir / URL_FILE, url)
    stack.callback(_forget, data_dir / URL_FILE, url)
    log.info("embedded redis-server started", url=url, dir=str(workdir), recorded_in=str(data_dir / URL_FILE))
    return url


def _serves(url: str, workdir: Path) -> bool:
    """Whether the Redis at ``url`` answers and runs in ``workdir``."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=_PROBE_TIMEOUT_S, socket_connect_timeout=_PROBE_TIMEOUT_S, decode_responses=True
        )
    except ValueError:
        return False
    try:
        found = cast("dict[str, str]", client.config_get("dir")).get("dir")
    except RedisError:
        return False
    finally:
        client.close()
    return isinstance(found, str) and Path(found).resolve() == workdir.resolve()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _write(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(url + "\n")
    part.replace(path)  # whole or not at all, for a reader at any moment


def _forget(path: Path, url: str) -> None:
    """Remove the record, unless another process has written its own since."""
    if _read(path) == url:
        path.unlink(missing_ok=True)
