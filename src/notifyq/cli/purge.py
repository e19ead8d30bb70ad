"""``notifyq purge``: delete finished batches, their deliveries and events, older than the retention bound.

The bound is ``--older-than`` (``30d``, ``12h``, ``2w``) or ``NOTIFYQ_RETENTION__DAYS``; a batch goes
once every one of its deliveries has been final for longer than that (``store/retention.py``). Each
batch is deleted in chunks of ``NOTIFYQ_RETENTION__CHUNK_ROWS`` deliveries, one short transaction each,
so the command runs beside the services (a Kubernetes CronJob, ``deploy/k8s/base/purge-cronjob.yaml``).
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import click

from notifyq.settings import Settings
from notifyq.store import Purged, Store

_SPAN: Final = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[mhdw])")
_SECONDS: Final = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
MIN_AGE_S: Final = 3_600.0  # a shorter bound would race the late callbacks of what has just become final


def retention_s(older_than: str | None, settings: Settings) -> float:
    """The bound in seconds: ``--older-than``, else ``NOTIFYQ_RETENTION__DAYS``; a usage error if neither."""
    if older_than is None:
        if settings.retention.days is None:
            raise click.UsageError("give --older-than (like 30d) or set NOTIFYQ_RETENTION__DAYS")
        return settings.retention.days * _SECONDS["d"]
    span = _SPAN.fullmatch(older_than.strip())
    if span is None:
        raise click.BadParameter(f"{older_than!r} is not a span like 90m, 12h, 30d or 2w", param_hint="--older-than")
    seconds = float(span["n"]) * _SECONDS[span["unit"]]
    if seconds < MIN_AGE_S:
        raise click.BadParameter(f"{older_than!r} is under an hour: keep at least 1h", param_hint="--older-than")
    return seconds


async def purge(store: Store, before: float, *, chunk: int, dry_run: bool = False) -> Purged:
    """Delete (or, dry, count) every batch finished before ``before``; returns the totals."""
    if dry_run:
        return await store.count_finished(before)
    total = Purged()
    tried: set[str] = set()
    while True:
        # a batch that could not go (a delivery of it moved meanwhile) is not asked for again
        found = [b for b in await store.finished_batches(before) if b not in tried]
        if not found:
            return total
        for batch_id in found:
            tried.add(batch_id)
            done = await store.purge_batch(batch_id, chunk=chunk)
            total = Purged(total.batches + done.batches, total.deliveries + done.deliveries, total.events + done.events)


async def purge_command(settings: Settings, older_than_s: float, *, dry_run: bool) -> dict[str, Any]:
    """Open the store, purge, close: the command's report."""
    before = time.time() - older_than_s
    store = await Store.open(settings.sqlalchemy_url())
    try:
        done = await purge(store, before, chunk=settings.retention.chunk_rows, dry_run=dry_run)
    finally:
        await store.close()
    verb = "would_delete" if dry_run else "deleted"
    return {
        "older_than_days": round(older_than_s / _SECONDS["d"], 3),
        verb: {"batches": done.batches, "deliveries": done.deliveries, "events": done.events},
    }
