"""How a notifyq command fails: one line on stderr and an exit code, never a traceback.

* Bad input (no such batch, a request refused, a bad argument) exits 2.
* A fault (Redis or the database cannot be reached or fails; a port already taken) exits 1 and says
  which part, at which URL (its password hidden), and why.
* Twilio refusing a request (a 4xx other than 429: no such resource, a bad parameter) is bad input;
  Twilio failing, throttling or not answering is a fault.

Wrap each click command beneath its decorator, and say which URLs it uses once they are known::

    @main.command()
    @fails_cleanly
    def status() -> None:
        settings = ...
        uses(redis=redis_url, database=settings.sqlalchemy_url())

An error the table below does not name is a bug: it keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import Final, ParamSpec, TypeVar

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from notifyq.errors import Conflict, NotFound, ProviderError, TwilioApiError, Unavailable, ValidationFailed
from notifyq.queue.redis_server import EmbeddedRedisError
from notifyq.redact import mask_secrets, mask_url

P = ParamSpec("P")
T = TypeVar("T")
_USES: Final = "notifyq.uses"
BAD_INPUT: Final = (NotFound, ValidationFailed, Conflict)
# where a connection error without a type of its own (an OSError) was raised from, by module
_REDIS_MODULES: Final = ("redis.", "notifyq.queue.")
_DATABASE_MODULES: Final = ("sqlalchemy.", "asyncpg.", "aiosqlite.", "sqlite3.", "notifyq.store.")


class BadInput(click.ClickException):
    """What the operator asked for is wrong (exit 2); click prints ``Error: <message>``."""

    exit_code = 2


class Fault(click.ClickException):
    """Something the command needs failed (exit 1)."""

    exit_code = 1


def uses(*, redis: str | None = None, database: str | None = None) -> None:
    """Record the URLs the running command uses, so that a fault names the one that failed."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    known: dict[str, str] = ctx.meta.setdefault(_USES, {})
    known.update({part: url for part, url in (("Redis", redis), ("database", database)) if url})


def fails_cleanly(command: Callable[P, T]) -> Callable[P, T]:
    """``command``, failing with one line and exit code 2 (bad input) or 1 (a fault)."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except BAD_INPUT as exc:
            raise BadInput(_one_line(str(exc))) from None
        except (Unavailable, EmbeddedRedisError) as exc:
            raise Fault(_one_line(str(exc))) from None
        except ProviderError as exc:
            refused = isinstance(exc, TwilioApiError) and 400 <= exc.status < 500 and exc.status != 429
            raise (BadInput if refused else Fault)(_one_line(str(exc))) from None
        except RedisError as exc:
            reached = not isinstance(exc, RedisConnectionError | RedisTimeoutError)
            raise Fault(_fault("Redis", exc, reached=reached)) from None
        except SQLAlchemyError as exc:
            reached = not (isinstance(exc, DBAPIError) and exc.connection_invalidated)
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            raise Fault(_fault("database", cause, reached=reached)) from None
        except OSError as exc:  # the machine's or the network's doing: a port taken, a refused connection
            part = _raised_in(exc.__traceback__)
            raise Fault(_fault(part, exc, reached=False) if part else _one_line(str(exc))) from None

    return guarded


def _fault(part: str, exc: BaseException, *, reached: bool) -> str:
    ctx = click.get_current_context(silent=True)
    url = ctx.meta.get(_USES, {}).get(part) if ctx is not None else None
    where = f" at {mask_url(url)}" if url else ""
    what = "failed" if reached else "unreachable"
    return f"{part} {what}{where}: {_one_line(str(exc) or type(exc).__name__)}"


def _one_line(text: str) -> str:
    return mask_secrets(text.strip().splitlines()[0] if text.strip() else text)


def _raised_in(tb: TracebackType | None) -> str | None:
    """``Redis`` or ``database``: the part whose code the error came out of, innermost first."""
    frames: list[str] = []
    while tb is not None:
        frames.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(frames):
        if module.startswith(_REDIS_MODULES):
            return "Redis"
        if module.startswith(_DATABASE_MODULES):
            return "database"
    return None
