"""The ``redis+sentinel://`` URL: where the sentinels are, which master they watch, and its database.

The form::

    redis+sentinel://[[user]:password@]host1:port1,host2:port2,.../master_name[/db][?sentinel_password=...]

names the sentinels (any of them answers), the master's name as the sentinels know it (``sentinel
monitor <name> ...``), and the database. The password is the master's (``requirepass``); sentinels
that want one of their own (``requirepass`` in the sentinel config) get ``sentinel_password``. The
port of a sentinel defaults to 26379. Reading the URL is pure, so the settings check it as they load;
the client is built in ``queue/sentinel.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote

SCHEME: Final = "redis+sentinel://"
DEFAULT_PORT: Final = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """Read ``url``; ``ValueError`` says what is wrong (without the password)."""
        if not url.startswith(SCHEME):
            raise ValueError(f"a Sentinel URL starts with {SCHEME}")
        rest, _, query = url[len(SCHEME) :].partition("?")
        userinfo, at, hostpath = rest.rpartition("@")
        if not at:
            hostpath = userinfo or hostpath
            userinfo = ""
        hosts, _, path = hostpath.partition("/")
        parts = [part for part in path.split("/") if part]
        if not parts or len(parts) > 2:
            raise ValueError("a Sentinel URL names the master after the hosts: redis+sentinel://host:port/master[/db]")
        if len(parts) == 2 and not parts[1].isdigit():
            raise ValueError("the database of a Sentinel URL is a number: redis+sentinel://host:port/master/0")
        username, colon, password = userinfo.partition(":")
        params = dict(parse_qsl(query))
        unknown = set(params) - {"sentinel_password"}
        if unknown:
            raise ValueError(f"a Sentinel URL takes only sentinel_password as a parameter, not {sorted(unknown)}")
        return cls(
            sentinels=tuple(_address(host) for host in hosts.split(",")),
            master=unquote(parts[0]),
            db=int(parts[1]) if len(parts) == 2 else 0,
            username=unquote(username) or None,
            password=unquote(password) if colon else None,
            sentinel_password=params.get("sentinel_password"),
        )


def _address(host: str) -> tuple[str, int]:
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon:
        name, port = host, str(DEFAULT_PORT)
    name = name.removeprefix("[").removesuffix("]")
    if not name or not port.isdigit():
        raise ValueError("each sentinel of a Sentinel URL is host:port, separated by commas")
    return name, int(port)
