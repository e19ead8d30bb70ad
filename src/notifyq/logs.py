"""structlog set-up: JSON lines to stdout in production, a console renderer on a terminal.

Secrets never reach a log line: values under secret-looking keys are replaced, and the password of
any URL in a value (an error's text, a traceback) is hidden, after the exception is formatted and
before rendering. The standard library's records (aiohttp, asyncio, arq) are masked the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from notifyq.redact import mask_secrets

_SECRET_KEYS = frozenset({"auth_token", "authorization", "password", "api_key_secret", "token", "secret"})


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = mask_secrets(value)
    return event


class _MaskingFormatter(logging.Formatter):
    """The standard library's log lines, tracebacks included, with the password of every URL hidden."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's logging once per process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MaskingFormatter("%(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler])
