"""notifyq: bulk SMS/MMS and voice notifications through Twilio."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifyq.client import ApiError, Client
    from notifyq.producer import Producer, Submitted
    from notifyq.settings import Settings

__all__ = ["ApiError", "Client", "Producer", "Settings", "Submitted"]
__version__ = "0.1.0"

# each name loads its module on first use, so that importing a pure policy (notifyq.segments,
# notifyq.statuses, ...) does not load the I/O libraries the client and the producer need
_HOMES: dict[str, str] = {
    "ApiError": "notifyq.client",
    "Client": "notifyq.client",
    "Producer": "notifyq.producer",
    "Settings": "notifyq.settings",
    "Submitted": "notifyq.producer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
