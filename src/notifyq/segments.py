r"""How many SMS segments a body costs, counted the way Twilio's message-segment-calculator counts them.

Twilio paces and bills messages per segment, so the sender limiter needs this number for every send.

* A segment carries 140 octets (1,120 bits). A message that needs more than one segment is concatenated,
  and each part then gives up 6 octets to the User Data Header.
* GSM-7 (7-bit septets): 160 per single message, 153 per part. The extension-table characters
  (form feed and ``^ { } \ [ ~ ] | €``) are written as ESC + char, so they cost 2 septets.
* Any character outside the GSM-7 tables makes the whole message UCS-2 (16-bit units): 70 per single
  message, 67 per part. A character outside the BMP (most emoji) is a surrogate pair, 2 units.
* A character is never split across parts: an escaped GSM pair, a surrogate pair and (as in the
  calculator, which splits text into graphemes first) a whole user-perceived character such as a
  flag or a ZWJ emoji sequence move to the next part together.
* When the first part overflows it gains its header, and whatever no longer fits in it moves to the
  second part. For ordinary text this is greedy packing at 153 / 67; the state machine below repeats
  the calculator's steps so that odd input (a single grapheme longer than a part) counts the same.
* An empty body is 1 segment (an MMS with media only still paces as one message).
* With Twilio's Smart Encoding on, the body sent is ``smart_encode(body)``: look-alikes replaced
  (``smart_encoding.REPLACEMENTS``) when that leaves it all GSM-7, else the body as written. Pass
  ``smart=True`` to count that body.

Graphemes are found with ``unicodedata`` alone (the project takes no dependency for it), following
UAX #29: marks, ZWJ, variation selectors, emoji modifiers and tags extend the character before them;
regional-indicator pairs make a flag; Hangul jamo join into syllables; prepended marks join the next
character; ZWJ joins a following pictograph. CR LF counts as two characters, as in the calculator.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from notifyq.smart_encoding import REPLACEMENTS

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE: Final = 160  # septets in a message of one segment (1120 bits / 7)
GSM7_PART: Final = 153  # septets per part of a concatenated message ((1120 - 48) bits / 7, rounded down)
UCS2_SINGLE: Final = 70  # UTF-16 units in a message of one segment (1120 bits / 16)
UCS2_PART: Final = 67  # UTF-16 units per part of a concatenated message ((1120 - 48) bits / 16)

# GSM 03.38 default alphabet (one septet each) and its extension table (ESC + char, two septets),
# restricted to the characters the calculator maps.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_GSM7: Final = GSM7_BASIC | GSM7_EXTENSION
_GSM7_EXTENSION_CHARS: Final = tuple(sorted(GSM7_EXTENSION))
# the ASCII characters GSM-7 lacks; the pure-ASCII fast path needs only this one regex scan
_ASCII_NOT_GSM7: Final = re.compile("[\x00-\x09\x0b\x0e-\x1f`\x7f]")
_GSM7_EXTENSION_RE: Final = re.compile("[" + re.escape("".join(_GSM7_EXTENSION_CHARS)) + "]")
# ASCII that is not one plain GSM-7 septet: outside GSM-7, or an extension character (two septets)
_ASCII_NOT_PLAIN: Final = re.compile(
    "[\x00-\x09\x0b-\x0c\x0e-\x1f`\x7f" + re.escape("".join(_GSM7_EXTENSION_CHARS)) + "]"
)
# a body made of these is GSM-7 once its look-alikes are replaced, since every replacement is GSM-7
_SMART_ENCODABLE: Final = _GSM7 | frozenset(REPLACEMENTS)
_LOOK_ALIKE_RE: Final = re.compile("[" + re.escape("".join(sorted(REPLACEMENTS))) + "]")


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """The encoding Twilio will pick, the segment count, and the size in septets (GSM-7) or UTF-16 units."""

    encoding: Encoding
    segments: int
    units: int


def segment_count(body: str, *, smart: bool = False) -> int:
    """Segments Twilio will charge and pace for this body (1 for an empty body), smart-encoded if ``smart``."""
    # The common case (ASCII notification text) costs two C-level scans and no Python loop; Smart Encoding
    # is looked at only once the body is known not to be GSM-7, since it changes no GSM-7 body.
    if body.isascii():
        if _ASCII_NOT_PLAIN.search(body) is None:  # one septet per character
            septets = len(body)
            return 1 if septets <= GSM7_SINGLE else -(-septets // GSM7_PART)
        if _ASCII_NOT_GSM7.search(body) is None:
            return _gsm7(body)[1]
    elif _GSM7.issuperset(body):
        return _gsm7(body)[1]
    if smart and (encoded := _smart_encoded(body)) is not None:
        return _gsm7(encoded)[1]
    return _ucs2(body)[1]


def smart_encode(body: str) -> str:
    """The body Twilio sends with Smart Encoding on: look-alikes replaced if that makes it GSM-7, else ``body``."""
    if _GSM7.issuperset(body):
        return body
    encoded = _smart_encoded(body)
    return body if encoded is None else encoded


def _smart_encoded(body: str) -> str | None:
    """A body that is not GSM-7 with its look-alikes replaced, or None when a character has none."""
    if not _SMART_ENCODABLE.issuperset(body):
        return None
    # a scan with a call per replaced character: bodies hold few of them, and str.translate looks up each
    # character of the body in a dict instead
    return _LOOK_ALIKE_RE.sub(_look_alike, body)


def _look_alike(match: re.Match[str]) -> str:
    return REPLACEMENTS[match.group()]


def analyse(body: str, *, smart: bool = False) -> SegmentInfo:
    """Encoding, segment count and size of a body (smart-encoded if ``smart``), as the calculator reports them."""
    if smart:
        body = smart_encode(body)
    if _GSM7.issuperset(body):
        units, segments = _gsm7(body)
        return SegmentInfo("GSM-7", segments, units)
    units, segments = _ucs2(body)
    return SegmentInfo("UCS-2", segments, units)


def _gsm7(body: str) -> tuple[int, int]:
    """Septets and segments of a body that is all GSM-7."""
    escaped = len(_GSM7_EXTENSION_RE.findall(body))
    septets = len(body) + escaped
    if septets <= GSM7_SINGLE:
        return septets, 1
    if not escaped:
        return septets, -(-septets // GSM7_PART)
    # No GSM character is wider than 2 septets, so the calculator's steps reduce to greedy parts of 153
    # where a part ends one septet early when an escaped pair would straddle its end.
    pair_starts = {m.start() + seen for seen, m in enumerate(_GSM7_EXTENSION_RE.finditer(body))}
    parts, start = 1, 0
    while septets - start > GSM7_PART:
        start += GSM7_PART - 1 if start + GSM7_PART - 1 in pair_starts else GSM7_PART
        parts += 1
    return septets, parts


def _ucs2(body: str) -> tuple[int, int]:
    """UTF-16 units and segments of a body that needs UCS-2."""
    if _may_join().search(body) is None:  # every character is its own grapheme of one unit
        units = len(body)
        return units, 1 if units <= UCS2_SINGLE else -(-units // UCS2_PART)
    sizes = _grapheme_sizes(body)
    units = sum(sizes)
    if units <= UCS2_SINGLE:
        return units, 1
    return units, _pack(sizes, UCS2_SINGLE, UCS2_PART)


def _pack(sizes: list[int], single: int, part: int) -> int:
    """Parts needed for characters of these sizes, none split, following the calculator's steps."""
    parts = 1
    used = 0  # units in the current part
    room = single  # the first part has no header until a second part exists
    first: list[int] = []  # sizes held by the first part, in case it must give some back
    for size in sizes:
        if used + size <= room:
            used += size
            if parts == 1:
                first.append(size)
            continue
        moved = 0
        if parts == 1:
            # the first part gains its header: its tail no longer fits and moves to the new part
            while used > part:
                last = first.pop()
                used -= last
                moved += last
        parts += 1
        room = part
        # the calculator places the character without checking, so a grapheme larger than a part
        # fills one on its own (and the next character starts another)
        used = moved + size
    return parts


# ---- graphemes (UAX #29, approximated with unicodedata) ----
#
# Each code point becomes one class letter (two, "K_", outside the BMP, so that the length of the class
# string is the body's length in UTF-16 units); one regex over that string then finds the clusters.
#   C control, CR, LF    E extend (marks, ZWNJ, variation selectors, emoji modifiers, tags)
#   Z zero-width joiner  P prepended concatenation mark  R regional indicator  X pictograph
#   L V T l t  Hangul leading / vowel / trailing jamo, LV and LVT syllables   O anything else

_CLUSTER: Final = re.compile(
    r"""
    (?:P_?)*                                # prepended marks join what follows (GB9b)
    (?: [OXEZ]_?                            # one ordinary code point (the common case, tried first)
      | R_(?:R_)?                           # a flag: regional indicators pair up (GB12, GB13)
      | L*(?:V+|lV*|t)T* | L+ | T+          # a Hangul syllable block (GB6-GB8)
      | P_?                                 # a prepended mark before a control or the end
    )
    (?: E_? | ZX_? | Z )*                   # extenders and ZWJ; ZWJ also takes a pictograph (GB9, GB11)
    | C_?                                   # a control stands alone (CR LF too, as in the calculator)
    """,
    re.VERBOSE,
)
# Code points whose class the general category does not give, as sorted (first, last, letter) ranges.
_CLASS_RANGES: Final = (
    (0x0600, 0x0605, "P"),  # Arabic number signs and other prepended concatenation marks
    (0x06DD, 0x06DD, "P"),
    (0x070F, 0x070F, "P"),
    (0x0890, 0x0891, "P"),
    (0x08E2, 0x08E2, "P"),
    (0x0D4E, 0x0D4E, "P"),
    (0x0E33, 0x0E33, "E"),  # Thai and Lao AM: spacing marks although not Mc
    (0x0EB3, 0x0EB3, "E"),
    (0x1100, 0x115F, "L"),  # Hangul jamo
    (0x1160, 0x11A7, "V"),
    (0x11A8, 0x11FF, "T"),
    (0x200C, 0x200C, "E"),  # ZWNJ extends; ZWJ has its own rule
    (0x200D, 0x200D, "Z"),
    (0xA960, 0xA97C, "L"),
    (0xD7B0, 0xD7C6, "V"),
    (0xD7CB, 0xD7FB, "T"),
    (0xFF9E, 0xFF9F, "E"),  # halfwidth katakana voiced sound marks
    (0x110BD, 0x110BD, "P"),
    (0x110CD, 0x110CD, "P"),
    (0x111C2, 0x111C3, "P"),
    (0x1193F, 0x1193F, "P"),
    (0x11941, 0x11941, "P"),
    (0x11A3A, 0x11A3A, "P"),
    (0x11A84, 0x11A89, "P"),
    (0x11D46, 0x11D46, "P"),
    (0x1F1E6, 0x1F1FF, "R"),  # regional indicators
    (0x1F3FB, 0x1F3FF, "E"),  # emoji skin-tone modifiers
    (0xE0020, 0xE007F, "E"),  # tags (subdivision flags)
)
_CLASS_RANGE_STARTS: Final = tuple(first for first, _, _ in _CLASS_RANGES)
_CONTROL_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_CLASS_CACHE_LIMIT: Final = 65_536  # distinct code points remembered; bounds memory against odd input


def _break_letter(cp: int) -> str:
    """Grapheme-break class letter of one code point (without the astral marker)."""
    at = bisect_right(_CLASS_RANGE_STARTS, cp) - 1
    if at >= 0 and cp <= _CLASS_RANGES[at][1]:
        return _CLASS_RANGES[at][2]
    if 0xAC00 <= cp <= 0xD7A3:  # precomposed syllables: every 28th one has no trailing consonant
        return "l" if (cp - 0xAC00) % 28 == 0 else "t"
    category = unicodedata.category(chr(cp))
    if category[0] == "M":
        return "E"
    if category in _CONTROL_CATEGORIES:
        return "C"
    if category == "So" or 0x1F000 <= cp <= 0x1FAFF:
        return "X"
    return "O"


class _BreakClasses(dict[int, str]):
    """A ``str.translate`` table from code point to class letter(s), filled on first sight."""

    def __missing__(self, cp: int) -> str:
        if len(self) >= _CLASS_CACHE_LIMIT:
            self.clear()
        letter = _break_letter(cp)
        if cp > 0xFFFF:
            letter += "_"
        self[cp] = letter
        return letter


_BREAK_CLASSES: Final = _BreakClasses()


@cache
def _may_join() -> re.Pattern[str]:
    """A regex for any code point that can make a grapheme longer than one UTF-16 unit.

    Built on first use from a scan of the BMP (tens of milliseconds, once per process); every character
    outside the BMP is included, since it is two units by itself.
    """
    ranges: list[str] = []
    run_start: int | None = None
    for cp in range(0x10001):  # one past the BMP closes a run that reaches its end
        joins = cp <= 0xFFFF and not 0xD800 <= cp <= 0xDFFF and _break_letter(cp) not in "OCX"
        if joins and run_start is None:
            run_start = cp
        elif not joins and run_start is not None:
            ranges.append(f"{re.escape(chr(run_start))}-{re.escape(chr(cp - 1))}")
            run_start = None
    return re.compile("[" + "".join(ranges) + "\U00010000-\U0010ffff]")


def _grapheme_sizes(body: str) -> list[int]:
    """UTF-16 length of each grapheme of the body, in order."""
    return list(map(len, _CLUSTER.findall(body.translate(_BREAK_CLASSES))))
