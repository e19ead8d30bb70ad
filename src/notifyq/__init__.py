"""notifyq: bulk SMS/MMS and voice notifications through Twilio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifyq.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
