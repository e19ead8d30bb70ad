"""The embedded Redis a data directory's API runs is found by the other parts, and only that one."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from notifyq.cli import embedded
from notifyq.cli.runtime import join_redis, resolve_redis
from notifyq.errors import Unavailable
from notifyq.settings import Settings


def test_the_api_records_its_redis_and_the_others_join_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(Unavailable, match="no `notifyq api` runs an embedded Redis"):
        join_redis(settings)
    with ExitStack() as stack:
        url = resolve_redis(settings, stack)
        assert (settings.data_dir / embedded.URL_FILE).read_text().strip() == url
        assert join_redis(settings) == url
        with ExitStack() as second:  # a second API on the same directory uses the same Redis
            assert resolve_redis(settings, second) == url
        assert join_redis(settings) == url  # and leaves it running when it stops
    assert not (settings.data_dir / embedded.URL_FILE).exists()
    with pytest.raises(Unavailable):
        join_redis(settings)


def test_a_record_naming_another_redis_is_not_used(tmp_path: Path, redis_server: str) -> None:
    # left behind by an API that was killed: its port now belongs to some other Redis
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / embedded.URL_FILE).write_text(redis_server + "\n")
    assert embedded.recorded_redis(data_dir) is None
    with ExitStack() as stack:
        url = resolve_redis(Settings(data_dir=data_dir), stack)
        assert url != redis_server
        assert embedded.recorded_redis(data_dir) == url


def test_a_data_directory_has_a_port_of_its_own(tmp_path: Path) -> None:
    low, high = embedded.STABLE_PORTS
    port = embedded.stable_port(tmp_path / "a")
    assert low <= port < high
    assert embedded.stable_port(tmp_path / "a") == port
    assert len({embedded.stable_port(tmp_path / str(n)) for n in range(20)}) > 15
