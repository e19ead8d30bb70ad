"""Smart Encoding: Twilio's table of look-alikes, the bodies it makes, and the segments they cost."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from notifyq.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentInfo, analyse, segment_count, smart_encode
from notifyq.smart_encoding import REPLACEMENTS

GSM7 = GSM7_BASIC | GSM7_EXTENSION
EMOJI = "\U0001f600"
RSQUO = "\u2019"  # RIGHT SINGLE QUOTATION MARK, the apostrophe word processors type
EM_DASH = "\u2014"
ELLIPSIS = "\u2026"
ZWSP = "\u200b"

# Twilio's "List of characters replaced by Smart Encoding"
# (https://www.twilio.com/docs/messaging/services/smart-encoding-char-list), written out apart from the
# module's table (grouped by what each character becomes) so that an edit of either one shows.
TWILIO_TABLE: dict[str, str] = {
    '"': "\u00ab\u00bb\u201c\u201d\u02ba\u02ee\u201f\u275d\u275e\u301d\u301e\uff02\u201e",
    "'": "\u2018\u2019\u02bb\u02c8\u02bc\u02bd\u02b9\u201b\uff07\u00b4\u02ca\u0060\u02cb\u275b\u275c\u0313\u0314"
    "\ufe10\ufe11",
    "/": "\u00f7\u29f8\u0337\u0338\u2044\u2215\uff0f",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    "\\": "\u29f9\u29f5\u20e5\ufe68\uff3c",
    "_": "\u0332\uff3f\u2017",
    "|": "\u20d2\u20d3\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f",
    "-": "\u23bc\u23bd\u2015\ufe63\uff0d\u2010\u2043\u2014\u2013\u2022",
    "@": "\ufe6b\uff20",
    "$": "\ufe69\uff04",
    "!": "\u01c3\ufe15\ufe57\uff01",
    "!!": "\u203c",
    "#": "\ufe5f\uff03",
    "%": "\ufe6a\uff05",
    "&": "\ufe60\uff06",
    ",": "\u201a\u0326\ufe50\ufe51\uff0c\uff64\u3001",
    "(": "\u2768\u276a\ufe59\uff08\u27ee\u2985",
    ")": "\u2769\u276b\ufe5a\uff09\u27ef\u2986",
    "*": "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b\u273c\u273d\u2743\u2749\u274a"
    "\u274b\u29c6\ufe61\uff0a",
    "+": "\u02d6\ufe62\uff0b",
    ".": "\u3002\ufe52\uff0e\uff61",
    "...": "\u2026",
    ":": "\u02d0\u02f8\u2982\ua789\ufe13\uff1a",
    ";": "\u204f\ufe14\ufe54\uff1b",
    "<": "\ufe64\uff1c\u203a",
    "=": "\u0347\ua78a\ufe66\uff1d",
    ">": "\ufe65\uff1e\u2039",
    "?": "\ufe16\ufe56\uff1f",
    "^": "\u02c6\u0302\uff3e\u1dcd",
    "{": "\u2774\ufe5b\uff5b",
    "}": "\u2775\ufe5c\uff5d",
    "[": "\uff3b",
    "]": "\uff3d",
    "~": "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e",
    " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\u2028\u2029"
    "\u0009\u0080\u008d\u0090\u009b\u009f",
    "": "\u0000\u0003\u0004\u0010\u0011\u0012\u0013\u0014\u0017\u0019\u200b\u200c\u2060\ufeff",
    **{str(d): chr(0xFF10 + d) for d in range(10)},  # FULLWIDTH DIGIT ZERO..NINE
}
# FULLWIDTH LATIN CAPITAL LETTER A..Z, and the Latin small capitals the table lists (none for Q and X)
SMALL_CAPITALS = {
    "A": "\u1d00", "B": "\u0299", "C": "\u1d04", "D": "\u1d05", "E": "\u1d07", "F": "\ua730", "G": "\u0262",
    "H": "\u029c", "I": "\u026a", "J": "\u1d0a", "K": "\u1d0b", "L": "\u029f", "M": "\u1d0d", "N": "\u0274",
    "O": "\u1d0f", "P": "\u1d18", "R": "\u0280", "S": "\ua731", "T": "\u1d1b", "U": "\u1d1c", "V": "\u1d20",
    "W": "\u1d21", "Y": "\u028f", "Z": "\u1d22",
}  # fmt: skip
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    TWILIO_TABLE[_letter] = chr(0xFF21 + ord(_letter) - ord("A")) + SMALL_CAPITALS.get(_letter, "")


def ucs2(segments: int, units: int) -> SegmentInfo:
    return SegmentInfo("UCS-2", segments, units)


def gsm7(segments: int, units: int) -> SegmentInfo:
    return SegmentInfo("GSM-7", segments, units)


DOCUMENTED = sorted((char, out) for out, chars in TWILIO_TABLE.items() for char in chars)
# Replacements that cost more than two septets: the only ones that can make a smart-encoded body longer
# in segments than the UCS-2 body it replaces (153 / 67 < 3).
LONG_REPLACEMENTS = frozenset(char for char, out in REPLACEMENTS.items() if len(out) > 2)


# ---- the table ----


def test_the_table_is_twilios_list() -> None:
    assert dict(REPLACEMENTS) == dict(DOCUMENTED)
    assert len(REPLACEMENTS) == 271


def test_every_replaced_character_is_outside_gsm7_and_every_replacement_inside() -> None:
    assert not GSM7.intersection(REPLACEMENTS)
    assert all(GSM7.issuperset(out) for out in REPLACEMENTS.values())


@pytest.mark.parametrize(("char", "out"), DOCUMENTED, ids=[f"U+{ord(c):04X}" for c, _ in DOCUMENTED])
def test_each_documented_replacement(char: str, out: str) -> None:
    body = f"Hi {char} there"
    assert smart_encode(body) == f"Hi {out} there"
    septets = 9 + sum(2 if ch in GSM7_EXTENSION else 1 for ch in out)
    assert analyse(body, smart=True) == gsm7(1, septets)
    assert analyse(body) == ucs2(1, 10)


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        pytest.param(
            "It\u2019s \u201cdone\u201d \u2013 see you\u2026", 'It\'s "done" - see you...', id="quotes dashes"
        ),
        pytest.param("\u00ab\u00a0Bonjour\u00a0\u00bb", '" Bonjour "', id="guillemets and no-break spaces"),
        pytest.param("\u00bd price\u2009\uff01", "1/2 price !", id="fraction thin space fullwidth mark"),
        pytest.param("caf\u00e9\u200b", "caf\u00e9", id="GSM letter kept, zero-width space removed"),
        pytest.param("\uff5b\uff3bx\uff3d\uff5d", "{[x]}", id="fullwidth brackets become escaped GSM"),
        pytest.param("a\tb", "a b", id="tab"),
        pytest.param("\u0060quoted\u00b4", "'quoted'", id="grave and acute accents"),
    ],
)
def test_bodies_become_what_twilio_sends(body: str, sent: str) -> None:
    assert smart_encode(body) == sent


# ---- counts that change ----


@pytest.mark.parametrize(
    ("body", "plain", "smart"),
    [
        pytest.param("a" * 69 + RSQUO, ucs2(1, 70), gsm7(1, 70), id="70 with one quote"),
        pytest.param("a" * 70 + RSQUO, ucs2(2, 71), gsm7(1, 71), id="71 with one quote"),
        pytest.param("a" * 100 + RSQUO, ucs2(2, 101), gsm7(1, 101), id="100 + quote"),
        pytest.param("a" * 159 + EM_DASH, ucs2(3, 160), gsm7(1, 160), id="160 + dash"),
        pytest.param("a" * 160 + EM_DASH, ucs2(3, 161), gsm7(2, 161), id="161 + dash"),
        pytest.param("a" * 160 + ZWSP, ucs2(3, 161), gsm7(1, 160), id="removed char"),
        pytest.param("a" * 157 + ELLIPSIS, ucs2(3, 158), gsm7(1, 160), id="ellipsis fits"),
        pytest.param("a" * 158 + ELLIPSIS, ucs2(3, 159), gsm7(2, 161), id="ellipsis spills"),
        pytest.param("a" * 158 + "\uff5b", ucs2(3, 159), gsm7(1, 160), id="brace fits"),
        pytest.param("a" * 159 + "\uff5b", ucs2(3, 160), gsm7(2, 161), id="brace spills"),
        pytest.param(ZWSP, ucs2(1, 1), gsm7(1, 0), id="nothing left is one segment"),
        pytest.param(
            ("It\u2019s here \u2014 " + "a" * 40) * 10,
            ucs2(8, 520),
            gsm7(4, 520),
            id="520 chars, 20 look-alikes",
        ),
    ],
)
def test_counts_on_the_body_twilio_sends(body: str, plain: SegmentInfo, smart: SegmentInfo) -> None:
    assert (analyse(body), segment_count(body)) == (plain, plain.segments)
    assert (analyse(body, smart=True), segment_count(body, smart=True)) == (smart, smart.segments)


def test_long_replacements_can_cost_more_segments() -> None:
    # Twilio replaces whenever the result is GSM-7; three septets for one UCS-2 unit can cross a boundary.
    body = ELLIPSIS * 70
    assert analyse(body) == ucs2(1, 70)
    assert analyse(body, smart=True) == gsm7(2, 210)


# ---- bodies that stay as written ----


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(RSQUO + EMOJI, id="emoji"),
        pytest.param("\u00e7a va" + RSQUO, id="c cedilla has no GSM look-alike"),
        pytest.param("5\u2032 10\u2033" + EM_DASH, id="primes are not in the table"),
        pytest.param("3 \u2212 1" + RSQUO, id="minus sign is not in the table"),
        pytest.param("\u041f\u0440\u0438\u0432\u0435\u0442" + "\u201c", id="Cyrillic"),
        pytest.param("e\u0301" + ELLIPSIS * 30, id="a combining accent not in the table"),
    ],
)
def test_a_character_without_look_alike_keeps_the_body_and_its_count(body: str) -> None:
    assert smart_encode(body) is body
    assert analyse(body, smart=True) == analyse(body)
    assert analyse(body).encoding == "UCS-2"


@pytest.mark.parametrize("body", ["", "plain ASCII", "Gr\u00fc\u00dfe \u20ac5 [x]", "a" * 200])
def test_a_gsm7_body_is_sent_as_written(body: str) -> None:
    assert smart_encode(body) is body
    assert segment_count(body, smart=True) == segment_count(body)


# ---- properties ----

_REPLACED = sorted(REPLACEMENTS)
_OTHER = ["\u00e7", "\u2032", "\u0436", EMOJI, "\u0301", "\u4e2d"]  # no look-alike in the table
_GSM7_SAMPLE = sorted(GSM7)
bodies = st.text(
    alphabet=st.sampled_from(_GSM7_SAMPLE) | st.sampled_from(_REPLACED) | st.sampled_from(_OTHER), max_size=400
)
# bodies whose only non-GSM characters have look-alikes: smart encoding always applies to them
convertible = st.text(alphabet=st.sampled_from(_GSM7_SAMPLE) | st.sampled_from(_REPLACED), max_size=400)


@given(bodies)
@example("\u201c" + "a" * 70)
@example(EMOJI + "\u201c")
def test_smart_encode_is_idempotent_and_all_or_nothing(body: str) -> None:
    sent = smart_encode(body)
    assert smart_encode(sent) == sent
    assert sent is body or GSM7.issuperset(sent)
    if not GSM7.issuperset(body.translate(str.maketrans(dict(REPLACEMENTS)))):
        assert sent is body


@given(bodies)
def test_the_two_ways_to_ask_agree(body: str) -> None:
    sent = smart_encode(body)
    assert segment_count(body, smart=True) == segment_count(sent) == analyse(body, smart=True).segments
    assert analyse(body, smart=True) == analyse(sent)


@given(bodies.filter(LONG_REPLACEMENTS.isdisjoint))
@example("a" * 69 + RSQUO)
@example("\uff5b" * 70)  # every character becomes an escaped pair: 140 septets
@example("\uff5b" * 71)
@example("\uff5b" * 134)
def test_smart_encoding_never_costs_more_segments(body: str) -> None:
    # Holds whenever no replacement is longer than two septets: 2 * 67 units fit in the 153 septets of a
    # part, and 2 * 70 in the 160 of a single message.
    assert segment_count(body, smart=True) <= segment_count(body)


@given(convertible)
def test_a_convertible_body_is_always_sent_in_gsm7(body: str) -> None:
    assert analyse(body, smart=True).encoding == "GSM-7"
