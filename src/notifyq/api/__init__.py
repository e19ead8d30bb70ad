"""The producer API and the status-callback receiver (aiohttp)."""

from notifyq.api.app import STATE, create_app
from notifyq.api.metrics import ApiMetrics, ClusterMetrics

__all__ = ["STATE", "ApiMetrics", "ClusterMetrics", "create_app"]
