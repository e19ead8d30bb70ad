"""``notifyq callbacks dead``: list, retry and drop the callbacks the applier could not apply.

Retried entries go back into the inbox as new entries (their tries start again); dropped ones are
gone. IDs are checked first: when any is not in the dead letter, nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifyq.errors import NotFound
from notifyq.queue.connect import redis_from_url
from notifyq.queue.deadletter import DeadLetters
from notifyq.queue.inbox import dead_letters
from notifyq.settings import Settings


async def list_dead(settings: Settings, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The dead letter's entries, oldest first."""
    redis = redis_from_url(settings.redis_url or "")
    try:
        return [entry.summary() for entry in await dead_letters(redis).entries(limit=limit)]
    finally:
        await redis.aclose()


async def retry_dead(settings: Settings, ids: Sequence[str] | None) -> list[str]:
    """Put these entries (None: all) back into the inbox; returns the ids moved."""
    redis = redis_from_url(settings.redis_url or "")
    try:
        dead = dead_letters(redis)
        return await dead.retry(await _existing(dead, ids))
    finally:
        await redis.aclose()


async def drop_dead(settings: Settings, ids: Sequence[str] | None) -> list[str]:
    """Delete these entries (None: all); returns the ids deleted."""
    redis = redis_from_url(settings.redis_url or "")
    try:
        dead = dead_letters(redis)
        return await dead.drop(await _existing(dead, ids))
    finally:
        await redis.aclose()


async def _existing(dead: DeadLetters, ids: Sequence[str] | None) -> list[str]:
    if ids is None:
        return [entry.id for entry in await dead.entries()]
    missing = await dead.missing(ids)
    if missing:
        raise NotFound("dead-lettered callback", ", ".join(missing))
    return list(ids)
