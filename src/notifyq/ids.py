"""Identifiers: short, unique, time-ordered, safe in URLs and as arq job ids."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id() -> str:
    """A 26-character id: 48 bits of milliseconds then 80 random bits (a ULID in lower case)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def is_id(value: str) -> bool:
    """Whether ``value`` looks like one of our ids (cheap check before touching the store)."""
    return len(value) == 26 and all(c in _ALPHABET for c in value)
