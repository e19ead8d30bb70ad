"""Identifiers: short, unique, time-ordered, safe in URLs and as arq job ids."""

from __future__ import annotations

import base64
import os
import re
import time

_ID = re.compile(r"[0-9a-v]{24}")
_RANDOM_BYTES = 9  # 72 random bits per millisecond: a collision needs ~10^10 ids in one ms


def new_id() -> str:
    """A 24-character id: 48 bits of milliseconds then 72 random bits, in lower-case base32hex.

    base32hex keeps byte order, so ids sort by creation time (like a ULID); 15 bytes are exactly 24
    characters, so many ids encode in one call (``new_ids``).
    """
    return new_ids(1)[0]


def new_ids(n: int) -> list[str]:
    """``n`` ids at once: one clock read, one call for the randomness, one call to encode."""
    stamp = int(time.time() * 1000).to_bytes(6, "big")
    noise = os.urandom(_RANDOM_BYTES * n)
    raw = b"".join(stamp + noise[i : i + _RANDOM_BYTES] for i in range(0, _RANDOM_BYTES * n, _RANDOM_BYTES))
    text = base64.b32hexencode(raw).decode().lower()
    return [text[i : i + 24] for i in range(0, 24 * n, 24)]


def is_id(value: str) -> bool:
    """Whether ``value`` looks like one of our ids (cheap check before touching the store)."""
    return _ID.fullmatch(value) is not None
