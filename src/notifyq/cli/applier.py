"""``notifyq applier``: apply the buffered callbacks, with the process's own /metrics and /healthz.

The callback lag and the dead-letter count are observed by the process whose applier applied the
callback; a standalone applier (``notifyq api --no-applier`` beside it) serves them itself, on
``applier.metrics_port``, so that they are scraped wherever the callbacks are applied.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from notifyq.queue.inbox import CallbackInbox, applier_health, callback_lag_histogram, dead_letter_counter, run_applier
from notifyq.settings import Settings
from notifyq.store import PoolSize
from notifyq.worker.metrics import serve_metrics


async def serve_applier(settings: Settings, redis_url: str) -> None:
    """Run an applier until cancelled; with ``applier.metrics_port`` set, serve its /metrics and /healthz."""
    registry = CollectorRegistry()
    lag = callback_lag_histogram(registry)
    dead = dead_letter_counter(registry)
    running: list[CallbackInbox] = []
    task = asyncio.create_task(
        run_applier(
            settings.sqlalchemy_url(),
            redis_url,
            on_applied=lag.observe,
            on_dead_letter=dead.inc,
            started=running.append,
            pool=PoolSize(**settings.database.model_dump()),
        )
    )

    async def healthy() -> bool:
        return bool(running) and applier_health(task, running[0], settings.api.applier_stuck_s) == "ok"

    port = settings.applier.metrics_port
    runner = await serve_metrics(registry, settings.applier.metrics_host, port, healthy) if port is not None else None
    try:
        await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
