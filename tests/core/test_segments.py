r"""Segment counting, held against GSM 03.38 and Twilio's segment calculator, not against segments.py's tables.

References, copied here as literals (no expected value comes from a table or helper of segments.py):

* 3GPP TS 23.038 (GSM 03.38), section 6.2.1: the GSM 7-bit default alphabet, and its extension table
  (ESC + a character, so two septets each).
* Twilio's message-segment-calculator (github.com/TwilioDevEd/message-segment-calculator, src/libs): a
  segment is 140 octets, 1,120 bits; a concatenated message gives 6 octets of each to its header, so
  GSM-7 holds 160 septets alone and 153 per part, UCS-2 70 and 67 UTF-16 units; any character outside
  GSM-7 makes the whole message UCS-2; the text is split into graphemes (CR LF kept as two), and a
  grapheme that does not fit the room left moves to the next part whole.
* The calculator's published cases (tests/index.test.js): each body with its encoding, segment count and
  ``messageSize`` in bits (septets x 7 or UTF-16 units x 16).
* Twilio's Messages API reference: a body "can be up to 1,600 characters".

Every other expected value is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from notifyq import segments
from notifyq.segments import Encoding, SegmentInfo, analyse, segment_count

# GSM 03.38 default alphabet, in code order 0x00-0x7F, with ESC (0x1B) left out
GSM7_DEFAULT = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)  # fmt: skip
# GSM 03.38 extension table: form feed, ^ { } \ [ ~ ] | €
GSM7_ESCAPED = "\f^{}\\[~]|€"
GSM7_ALL = GSM7_DEFAULT + GSM7_ESCAPED

EMOJI = "\U0001f600"  # 😀, one code point outside the BMP: a surrogate pair, 2 units
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧, one grapheme of 8 units
FLAG_IT = "\U0001f1ee\U0001f1f9"  # 🇮🇹, two regional indicators: one grapheme of 4 units
THUMBS_UP_TONED = "\U0001f44d\U0001f3fd"  # 👍🏽, emoji + skin-tone modifier: 4 units
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈, 6 units
FLAG_ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # tag sequence, 14 units
CYRILLIC = "ж"  # outside GSM-7, one UTF-16 unit


def test_reference_tables_are_whole() -> None:
    assert len(GSM7_DEFAULT) == len(set(GSM7_DEFAULT)) == 127
    assert len(GSM7_ESCAPED) == len(set(GSM7_ESCAPED)) == 10


def digits(n: int) -> str:
    """The calculator's test bodies: '1234567890' repeated, cut to n characters."""
    return ("1234567890" * (n // 10 + 1))[:n]


def gsm(segments: int, septets: int) -> SegmentInfo:
    return SegmentInfo("GSM-7", segments, septets)


def ucs2(segments: int, units: int) -> SegmentInfo:
    return SegmentInfo("UCS-2", segments, units)


def check(body: str, expected: SegmentInfo) -> None:
    assert analyse(body) == expected
    assert segment_count(body) == expected.segments


# ---- the calculator's published cases (tests/index.test.js), messageSize in bits ----

CALCULATOR_ESCAPES = "|^€{}[]~\\"  # the calculator's GSM7EscapeChars
CALCULATOR_ONE_GRAPHEME_UCS2 = "ÁÚúçíÍóÓ"


@pytest.mark.parametrize(
    ("body", "encoding", "segments", "message_bits"),
    [
        pytest.param(digits(160), "GSM-7", 1, 1120, id="GSM-7 in one segment"),
        pytest.param(digits(161), "GSM-7", 2, 1127, id="GSM-7 in two segments"),
        pytest.param(digits(307), "GSM-7", 3, 2149, id="GSM-7 in three segments"),
        pytest.param("\U0001f61c" + digits(69)[1:], "UCS-2", 1, 1120, id="UCS-2 in one segment"),
        pytest.param("\U0001f61c" + digits(70)[1:], "UCS-2", 2, 1136, id="UCS-2 in two segments"),
        pytest.param("\U0001f61c" + digits(134)[1:], "UCS-2", 3, 2160, id="UCS-2 in three segments"),
        pytest.param(FLAG_IT + digits(67)[1:], "UCS-2", 1, 1120, id="flag at the one segment boundary"),
        pytest.param(FLAG_IT + digits(68)[1:], "UCS-2", 2, 1136, id="flag at the two segments boundary"),
        pytest.param(RAINBOW_FLAG + digits(65)[1:], "UCS-2", 1, 1120, id="ZWJ flag, one segment"),
        pytest.param(RAINBOW_FLAG + digits(66)[1:], "UCS-2", 2, 1136, id="ZWJ flag, two segments"),
        *(
            pytest.param(ch + digits(158), "GSM-7", 1, 1120, id=f"one segment with escape {ch}")
            for ch in CALCULATOR_ESCAPES
        ),
        *(
            pytest.param(ch + digits(159), "GSM-7", 2, 1127, id=f"two segments with escape {ch}")
            for ch in CALCULATOR_ESCAPES
        ),
        *(pytest.param(ch * 70, "UCS-2", 1, 1120, id=f"70 characters of {ch}") for ch in CALCULATOR_ONE_GRAPHEME_UCS2),
        *(pytest.param(ch * 71, "UCS-2", 2, 1136, id=f"71 characters of {ch}") for ch in CALCULATOR_ONE_GRAPHEME_UCS2),
        pytest.param(EMOJI + "]" * 68, "UCS-2", 1, 1120, id="UCS-2 with GSM escapes, one segment"),
        pytest.param(EMOJI + "]" * 69, "UCS-2", 2, 1136, id="UCS-2 with GSM escapes, two segments"),
        pytest.param("e\u0301\u0301\u0301" + "a" * 66, "UCS-2", 1, 1120, id="triple accent, one segment"),
        pytest.param("e\u0301\u0301\u0301" + "a" * 67, "UCS-2", 2, 1136, id="triple accent, two segments"),
    ],
)
def test_calculator_published_cases(body: str, encoding: Encoding, segments: int, message_bits: int) -> None:
    bits_per_unit = 7 if encoding == "GSM-7" else 16
    check(body, SegmentInfo(encoding, segments, message_bits // bits_per_unit))


# ---- boundaries, worked out by hand ----


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("", gsm(1, 0), id="empty body is one segment"),
        pytest.param("a", gsm(1, 1), id="one char"),
        pytest.param("a" * 160, gsm(1, 160), id="160 GSM: 1120 bits, one segment"),
        pytest.param("a" * 161, gsm(2, 161), id="161 GSM: 153 + 8"),
        pytest.param("a" * 306, gsm(2, 306), id="306 GSM: 153 + 153"),
        pytest.param("a" * 307, gsm(3, 307), id="307 GSM: 153 + 153 + 1"),
        pytest.param("a" * 1600, gsm(11, 1600), id="1600 GSM, Twilio's body limit: 10 x 153 = 1530, +70"),
        pytest.param("€" * 80, gsm(1, 160), id="80 escaped pairs fill one segment"),
        pytest.param("€" * 81, gsm(2, 162), id="81 escaped pairs: 76 pairs (152 septets) per part"),
        pytest.param("[" * 153, gsm(3, 306), id="153 pairs: 306 septets, but 76 + 76 + 1 pairs"),
        pytest.param("a" * 158 + "€", gsm(1, 160), id="euro as septets 159-160"),
        pytest.param("a" * 159 + "€", gsm(2, 161), id="euro as septets 160-161"),
        pytest.param("a" * 152 + "[" + "a" * 152, gsm(3, 306), id="pair at 153-154 moves: 152 | 2 + 151 | 1"),
        pytest.param("a" * 151 + "[" + "a" * 153, gsm(2, 306), id="pair at 152-153 stays: 153 | 153"),
        pytest.param("a\r\nb", gsm(1, 4), id="CR and LF are a septet each"),
        pytest.param("a" * 159 + "\r\n", gsm(2, 161), id="CR LF is two septets, not one"),
        pytest.param("\f", gsm(1, 2), id="form feed is escaped"),
        pytest.param("Grüße, Señor! ¿Qué tal? Ç £5 ¥6 §7", gsm(1, 34), id="GSM Latin-1 letters"),
        pytest.param("ù ü à è é ì ò Ä Ö Ñ Ü ä ö ñ", gsm(1, 27), id="both u-grave and u-umlaut are GSM"),
        pytest.param("ΔΦΓΛΩΠΨΣΘΞ", gsm(1, 10), id="GSM Greek capitals"),
        pytest.param(EMOJI, ucs2(1, 2), id="a single emoji is two units"),
        pytest.param(CYRILLIC * 70, ucs2(1, 70), id="70 UCS-2: 1120 bits"),
        pytest.param(CYRILLIC * 71, ucs2(2, 71), id="71 UCS-2: 67 + 4"),
        pytest.param(CYRILLIC * 134, ucs2(2, 134), id="134 UCS-2: 67 + 67"),
        pytest.param(CYRILLIC * 135, ucs2(3, 135), id="135 UCS-2: 67 + 67 + 1"),
        pytest.param(CYRILLIC * 1600, ucs2(24, 1600), id="1600 UCS-2: 23 x 67 = 1541, +59"),
        pytest.param(EMOJI * 800, ucs2(25, 1600), id="800 emoji: 33 whole per part, 24 x 33 = 792, +8"),
        pytest.param("a" * 159 + "ç", ucs2(3, 160), id="one small c-cedilla: 160 chars cost 3, not 1"),
        pytest.param("a" * 159 + "Ç", gsm(1, 160), id="capital C-cedilla is GSM: 160 chars cost 1"),
        pytest.param("a" * 69 + CYRILLIC, ucs2(1, 70), id="one non-GSM char makes it all UCS-2"),
        pytest.param("a" * 68 + EMOJI, ucs2(1, 70), id="emoji ends exactly at 70"),
        pytest.param("a" * 69 + EMOJI, ucs2(2, 71), id="emoji would end at 71: 67 | 4"),
        pytest.param("a" * 66 + EMOJI + "a" * 65, ucs2(2, 133), id="emoji at 67-68 moves: 66 | 2 + 65"),
        pytest.param("a" * 66 + EMOJI + "a" * 66, ucs2(3, 134), id="moved emoji overfills part 2: 66 | 67 | 1"),
        pytest.param("a" * 65 + EMOJI + "a" * 67, ucs2(2, 134), id="emoji at 66-67 stays: 67 | 67"),
        pytest.param("]" * 69 + EMOJI, ucs2(2, 71), id="escaped chars are one unit in UCS-2"),
        # the calculator opens a new part for a grapheme larger than the room left and places it there
        # whole, even when it is larger than a part: 81 units in part 2
        pytest.param("e" + "\u0301" * 80, ucs2(2, 81), id="a grapheme longer than a part"),
    ],
)
def test_boundaries(body: str, expected: SegmentInfo) -> None:
    check(body, expected)


@pytest.mark.parametrize("char", GSM7_ESCAPED)
def test_each_escaped_char_costs_two_septets_and_is_never_split(char: str) -> None:
    check(char, gsm(1, 2))
    check("a" * 158 + char, gsm(1, 160))
    check("a" * 159 + char, gsm(2, 161))
    check("a" * 152 + char + "a" * 152, gsm(3, 306))  # the pair would take septets 153 and 154: it moves


def test_each_default_alphabet_char_costs_one_septet() -> None:
    wrong = {ch: (analyse(ch * 160), analyse(ch * 161)) for ch in GSM7_DEFAULT}
    wrong = {ch: found for ch, found in wrong.items() if found != (gsm(1, 160), gsm(2, 161))}
    assert wrong == {}


# Look-alikes and common characters GSM 03.38 lacks. The small c-cedilla is not in it (0x09 is the capital);
# accented vowels other than è é ù ì ò à are not; neither are the tab, the backtick, typographic quotes,
# the no-break space, nor a Greek capital that looks Latin.
NOT_GSM7 = ["`", "\t", "ç", "ú", "á", "ê", "Á", "\u2019", "\u201c", "\u00a0", "\u0391", CYRILLIC, "中", "\x00"]


@pytest.mark.parametrize("char", NOT_GSM7, ids=lambda ch: f"U+{ord(ch):04X}")
def test_a_char_outside_gsm7_switches_the_whole_message_to_ucs2(char: str) -> None:
    check(char, ucs2(1, 1))
    check("a" * 69 + char, ucs2(1, 70))
    check("a" * 70 + char, ucs2(2, 71))


def straddling(grapheme: str, lead: int) -> str:
    """134 UCS-2 units with ``grapheme`` starting at unit ``lead + 1``: where part 1 (67 units) ends."""
    units = len(grapheme.encode("utf-16-le")) // 2
    return CYRILLIC * lead + grapheme + CYRILLIC * (134 - lead - units)


# A grapheme placed across the end of part 1 moves to part 2 whole, which then overflows: 3 segments.
# Were it split, its first piece would fill part 1 (67 units) and the rest would fit part 2 exactly: 2.
# ``lead`` puts the grapheme so that its first piece (1 or 2 units) would end at unit 67.
@pytest.mark.parametrize(
    ("grapheme", "lead"),
    [
        pytest.param(FLAG_IT, 65, id="regional indicators pair into a flag"),
        pytest.param(FAMILY, 65, id="ZWJ sequence"),
        pytest.param(THUMBS_UP_TONED, 65, id="emoji and skin-tone modifier"),
        pytest.param(RAINBOW_FLAG, 65, id="variation selector and ZWJ"),
        pytest.param(FLAG_ENGLAND, 65, id="tag sequence"),
        pytest.param("e\u0301\u0301\u0301", 66, id="combining marks extend their base"),
        pytest.param("\u1100\u1161\u11a8", 66, id="conjoining jamo make one syllable"),
        pytest.param("\u0600\u0661", 66, id="a prepended mark joins what follows"),
        pytest.param("กำ", 66, id="Thai SARA AM is a spacing mark"),
    ],
)
def test_a_grapheme_moves_to_the_next_part_whole(grapheme: str, lead: int) -> None:
    assert analyse(straddling(grapheme, lead)) == ucs2(3, 134)
    assert analyse(straddling(CYRILLIC * (len(grapheme.encode("utf-16-le")) // 2), lead)) == ucs2(2, 134)


def test_cr_lf_is_two_graphemes_in_ucs2() -> None:
    # the calculator splits CR LF: CR ends part 1 at unit 67, LF starts part 2, which holds 67
    assert analyse(straddling("\r\n", 66)) == ucs2(2, 134)
    # while a base and its mark would move together
    assert analyse(straddling("e\u0301", 66)) == ucs2(3, 134)


# ---- properties ----

GSM_DEFAULT_TEXT = st.text(alphabet=GSM7_DEFAULT, max_size=1700)
GSM_TEXT = st.text(alphabet=GSM7_ALL, max_size=1700)
# outside GSM-7, one UTF-16 unit each, and none joins its neighbour into a grapheme
SINGLE_UNIT_NOT_GSM = "жяЖЯбдйçúáêÁ中文字日本語한국어"
PLAIN_EMOJI = "\U0001f600\U0001f61c\U0001f389\U0001f680\U0001f4e6"
INTERESTING = [*"a[€\r\nжé", "\u0301", "\u200d", "\ufe0f", EMOJI, "\U0001f3fd", "\U0001f1ee", "\U000e0067"]
ANY_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(INTERESTING), st.sampled_from(GSM7_ALL), st.characters()), max_size=900
)


@given(st.text(alphabet=st.one_of(st.sampled_from(GSM7_ALL), st.characters()), max_size=400))
@example("a" * 200 + "€")
@example("a" * 200 + "`")
def test_gsm7_exactly_when_every_char_is_in_the_gsm_tables(body: str) -> None:
    info = analyse(body)
    assert info.encoding == ("GSM-7" if set(body) <= set(GSM7_ALL) else "UCS-2")
    assert segment_count(body) == info.segments


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=400))
def test_ascii_is_gsm7_unless_it_holds_a_control_char_or_backtick(body: str) -> None:
    # GSM 03.38 has every printable ASCII character but the backtick, and of the controls LF, CR and FF
    outside = {ch for ch in body if ch == "`" or (ord(ch) < 32 and ch not in "\n\r\f") or ord(ch) == 127}
    info = analyse(body)
    assert info.encoding == ("UCS-2" if outside else "GSM-7")
    assert segment_count(body) == info.segments


@given(GSM_DEFAULT_TEXT)
@example("a" * 160)
@example("a" * 161)
def test_default_alphabet_text_costs_one_septet_a_char(body: str) -> None:
    n = len(body)
    check(body, gsm(1 if n <= 160 else math.ceil(n / 153), n))


@given(GSM_TEXT)
@example("a" * 152 + "[" * 200)
def test_escaped_chars_cost_two_septets_and_a_part_loses_at_most_one(body: str) -> None:
    septets = len(body) + sum(ch in GSM7_ESCAPED for ch in body)
    info = analyse(body)
    assert (info.encoding, info.units) == ("GSM-7", septets)
    assert segment_count(body) == info.segments
    if septets <= 160:
        assert info.segments == 1
    else:  # a part holds 153 septets, or 152 when the next pair would straddle its end
        assert math.ceil(septets / 153) <= info.segments <= math.ceil(septets / 152)


@given(st.text(alphabet=SINGLE_UNIT_NOT_GSM + GSM7_ALL, min_size=1, max_size=1700).map(lambda s: "ж" + s))
def test_ucs2_text_of_single_units_costs_one_unit_a_char(body: str) -> None:
    n = len(body)
    check(body, ucs2(1 if n <= 70 else math.ceil(n / 67), n))


@given(st.text(alphabet=SINGLE_UNIT_NOT_GSM + PLAIN_EMOJI + "abc", min_size=1, max_size=900).map(lambda s: EMOJI + s))
def test_an_emoji_costs_two_units_and_a_part_loses_at_most_one(body: str) -> None:
    units = len(body.encode("utf-16-le")) // 2
    info = analyse(body)
    assert (info.encoding, info.units) == ("UCS-2", units)
    assert segment_count(body) == info.segments
    if units <= 70:
        assert info.segments == 1
    else:  # a part holds 67 units, or 66 when the next emoji would straddle its end
        assert math.ceil(units / 67) <= info.segments <= math.ceil(units / 66)


@given(ANY_TEXT)
def test_units_are_septets_or_utf16_units(body: str) -> None:
    info = analyse(body)
    if info.encoding == "UCS-2":
        assert info.units == len(body.encode("utf-16-le", "surrogatepass")) // 2
    else:
        assert info.units == len(body) + sum(ch in GSM7_ESCAPED for ch in body)
    assert info.segments >= 1
    assert segment_count(body) == info.segments


@given(st.one_of(GSM_TEXT, ANY_TEXT), st.one_of(st.sampled_from(INTERESTING), st.characters()))
def test_appending_never_lowers_the_count(body: str, extra: str) -> None:
    assert segment_count(body + extra) >= segment_count(body)


# ---- the grapheme fast path (internals, kept on purpose) ----
# Text with no character that can join its neighbour skips the grapheme splitter; these two guard that
# shortcut and the splitter's bounded cache, which no reference can reach from the outside.


@given(ANY_TEXT)
def test_text_the_fast_check_passes_has_only_single_unit_graphemes(body: str) -> None:
    if segments._may_join().search(body) is None:
        assert segments._grapheme_sizes(body) == [1] * len(body)


def test_class_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    table = segments._BreakClasses()
    monkeypatch.setattr(segments, "_CLASS_CACHE_LIMIT", 4)
    assert "abcdefgh".translate(table) == "OOOOOOOO"
    assert len(table) <= 4
    assert EMOJI.translate(table) == "X_"
