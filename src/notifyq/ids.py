"""Identifiers: short, unique, time-ordered, safe in URLs and as arq job ids."""

from __future__ import annotations

import os
import re
import time
from typing import Final

ID_PATTERN: Final = r"[0-9a-v]{24}"  # what new_id makes; the OpenAPI document anchors it too
_ID = re.compile(ID_PATTERN)
_B32HEX = "0123456789abcdefghijklmnopqrstuv"  # 48 bits of ms, 72 random: a collision needs ~10^10 ids in one ms
_DIGIT = bytes(ord(_B32HEX[b & 31]) for b in range(256))  # a random byte -> a random digit
# a random byte -> the 10th digit: the millisecond's low 3 bits (the table's index), then 2 random bits
_TENTH = tuple(bytes(ord(_B32HEX[low << 2 | b & 3]) for b in range(256)) for low in range(8))


def new_id() -> str:
    """A 24-character id: 48 bits of milliseconds then 72 random bits, in lower-case base32hex.

    base32hex keeps byte order, so ids sort by creation time (like a ULID); 15 bytes are exactly 24
    characters, so many ids encode in one call (``new_ids``).
    """
    return new_ids(1)[0]


def new_ids(n: int) -> list[str]:
    """``n`` ids at once: one clock read, two calls for the randomness, two translations to digits.

    The same ids as base32hex of (6-byte milliseconds, 9 random bytes), written digit by digit: the first
    9 digits are the top 45 bits of the milliseconds, the 10th their low 3 bits and 2 random bits, the
    last 14 are 70 random bits (a random byte's low 5 bits; 256 is a multiple of 32, so each digit is
    uniform). base64.b32hexencode is pure Python and cost a quarter of a second per 100,000 ids.
    """
    ms = int(time.time() * 1000)
    head = "".join(_B32HEX[(ms >> shift) & 31] for shift in range(43, 2, -5))
    tenth = os.urandom(n).translate(_TENTH[ms & 7]).decode("ascii")
    tail = os.urandom(14 * n).translate(_DIGIT).decode("ascii")
    return [head + tenth[i] + tail[14 * i : 14 * i + 14] for i in range(n)]


def is_id(value: str) -> bool:
    """Whether ``value`` looks like one of our ids (cheap check before touching the store)."""
    return _ID.fullmatch(value) is not None
