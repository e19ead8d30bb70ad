"""The callbacks' dead letter: inbox entries the applier could not apply, each kept with its reason.

An entry that fails on its own (the applier isolates the entries of a batch that fails) a bounded
number of times is moved here by one script: added to this stream with its fields as they were, its
reason, its tries and when; acknowledged and deleted in the inbox; its try count dropped. So at every
moment the entry is in exactly one of the two streams, and a Redis restart with appendonly brings back
one or the other: an entry whose move had not reached the log is back in the inbox, tried and moved
again, never lost.

A Redis stream rather than a table, for two reasons. The store is what refused the entry, so it is
the wrong place to keep it; and a move from Redis to a database is two writes that a crash can split.
The dead letter lasts as long as the inbox it comes from (Redis with ``appendonly yes``).

Operators list the entries, retry them (each goes back into the inbox as a new entry, with fresh
tries) and drop them with ``notifyq callbacks dead``; ``notifyq status`` and ``/metrics`` count them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

DEAD_STREAM: Final = "notifyq:callbacks:dead"
ENTRY_ID: Final = re.compile(r"\d{1,20}-\d{1,20}")
PAGE: Final = 500
_META: Final = b"dead:"  # the prefix of the fields this module adds to an entry's own

# KEYS: inbox, dead letter, tries; ARGV: group, entry id, reason, tries, time, then the entry's fields.
# An entry no longer pending (applied or moved by another applier meanwhile) is left alone.
_BURY: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return redis.call('XADD', KEYS[2], '*', 'dead:entry', ARGV[2], 'dead:reason', ARGV[3], 'dead:tries', ARGV[4],
                  'dead:at', ARGV[5], unpack(ARGV, 6))
"""
# KEYS: dead letter, inbox; ARGV: ids in the dead letter. Each goes back to the inbox with its own fields;
# returns the ids moved (an id not here is skipped)
_RETRY: Final = """
local moved = {}
for i = 1, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 1 then
    local kv, fields = found[1][2], {}
    for j = 1, #kv, 2 do
      if string.sub(kv[j], 1, 5) ~= 'dead:' then
        fields[#fields + 1] = kv[j]
        fields[#fields + 1] = kv[j + 1]
      end
    end
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XDEL', KEYS[1], ARGV[i])
    moved[#moved + 1] = ARGV[i]
  end
end
return moved
"""
# KEYS: dead letter; ARGV: ids. Returns the ids deleted
_DROP: Final = """
local dropped = {}
for i = 1, #ARGV do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then dropped[#dropped + 1] = ARGV[i] end
end
return dropped
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered callback: its id here, the id it had in the inbox, why, after how many tries."""

    id: str
    entry_id: str
    at: float
    tries: int
    reason: str
    fields: dict[bytes, bytes]

    def summary(self) -> dict[str, Any]:
        """What an operator needs to see, JSON-ready; the report's delivery, SID and status when it decodes."""
        out: dict[str, Any] = {
            "id": self.id,
            "entry_id": self.entry_id,
            "at": self.at,
            "tries": self.tries,
            "reason": self.reason,
        }
        try:
            report = json.loads(self.fields[b"r"])
        except (KeyError, ValueError):
            return out
        if isinstance(report, dict):
            out.update({k: report.get(k) for k in ("delivery_id", "sid", "status")})
        return out


def _dead_letter(entry_id: bytes, kv: dict[bytes, bytes]) -> DeadLetter:
    def meta(name: str) -> str:
        return kv.get(_META + name.encode(), b"").decode(errors="replace")

    return DeadLetter(
        id=entry_id.decode(),
        entry_id=meta("entry"),
        at=float(meta("at") or 0),
        tries=int(meta("tries") or 0),
        reason=meta("reason"),
        fields={k: v for k, v in kv.items() if not k.startswith(_META)},
    )


class DeadLetters:
    """The dead letter beside one inbox stream (``inbox``, its consumer group ``group``, its tries hash)."""

    def __init__(self, redis: Redis, *, inbox: str, group: str, tries: str, key: str = DEAD_STREAM) -> None:
        self.redis = redis
        self.key = key
        self._inbox, self._group, self._tries = inbox, group, tries
        self._bury = redis.register_script(_BURY)
        self._retry = redis.register_script(_RETRY)
        self._drop = redis.register_script(_DROP)

    async def bury(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str, tries: int) -> bool:
        """Move an inbox entry here; False when it was no longer pending (then nothing changes)."""
        args: list[Any] = [self._group, entry_id, reason, tries, repr(time.time())]
        for name, value in fields.items():
            args += [name, value]
        moved = await self._bury(keys=[self._inbox, self.key, self._tries], args=args)
        return moved is not None

    async def count(self) -> int:
        """How many entries are here."""
        return int(await self.redis.xlen(self.key))

    async def entries(self, *, limit: int | None = None) -> list[DeadLetter]:
        """The entries, oldest first (at most ``limit``)."""
        out: list[DeadLetter] = []
        start = "-"
        while limit is None or len(out) < limit:
            page = PAGE if limit is None else min(PAGE, limit - len(out))
            got = await self.redis.xrange(self.key, start, "+", count=page)
            out += [_dead_letter(entry_id, kv) for entry_id, kv in got]
            if len(got) < page:
                break
            start = "(" + got[-1][0].decode()
        return out

    async def missing(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that are not here."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.key, entry_id, entry_id)
            found = await pipe.execute()
        return [entry_id for entry_id, got in zip(ids, found, strict=True) if not got]

    async def retry(self, ids: Sequence[str]) -> list[str]:
        """Put these entries back into the inbox (as new entries); returns the ids moved."""
        return await self._in_pages(self._retry, [self.key, self._inbox], ids)

    async def drop(self, ids: Sequence[str]) -> list[str]:
        """Delete these entries for good; returns the ids deleted."""
        return await self._in_pages(self._drop, [self.key], ids)

    async def _in_pages(self, script: Any, keys: list[str], ids: Sequence[str]) -> list[str]:
        done: list[str] = []
        for i in range(0, len(ids), PAGE):
            got = await script(keys=keys, args=list(ids[i : i + PAGE]))
            done += [x.decode() if isinstance(x, bytes) else str(x) for x in got]
        return done
