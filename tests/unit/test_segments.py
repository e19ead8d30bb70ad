"""Segment counting: known cases from Twilio's message-segment-calculator, an oracle, and properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from notifyq import segments
from notifyq.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentInfo, analyse, segment_count

DIGITS = "1234567890"
EXTENSION = sorted(GSM7_EXTENSION)
EMOJI = "\U0001f600"  # 😀, one surrogate pair
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧, one grapheme of 8 units
FLAG_IT = "\U0001f1ee\U0001f1f9"  # 🇮🇹, two regional indicators
THUMBS_UP_TONED = "\U0001f44d\U0001f3fd"  # 👍🏽, emoji + skin-tone modifier
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈, 6 units
CYRILLIC = "ж"


def digits(n: int) -> str:
    return (DIGITS * (n // 10 + 1))[:n]


def reference_segments(char_bits: list[int]) -> int:
    """The calculator's segment builder restated bit by bit: 1120-bit segments, 6 header octets.

    Each new segment after the first starts with its header; when the second segment is opened, the first
    gains its header and gives up trailing characters until it fits again, and they move to the second.
    """
    header = [("udh", 8)] * 6
    built: list[list[tuple[str, int]]] = [[]]
    has_header = [False]
    for bits in char_bits:
        if 1120 - sum(b for _, b in built[-1]) < bits:
            built.append(list(header))
            has_header.append(True)
            previous = built[-2]
            if not has_header[-2]:
                previous[:0] = header
                has_header[-2] = True
                given_up: list[tuple[str, int]] = []
                while 1120 - sum(b for _, b in previous) < 0:
                    given_up.insert(0, previous.pop())
                built[-1].extend(given_up)
        built[-1].append(("char", bits))
    return len(built)


def reference(body: str) -> SegmentInfo:
    """Segments of a body by the oracle: graphemes (from the module) sized in bits per encoding."""
    if set(body) <= GSM7_BASIC | GSM7_EXTENSION:
        septets = [2 if ch in GSM7_EXTENSION else 1 for ch in body]
        return SegmentInfo("GSM-7", reference_segments([7 * s for s in septets]), sum(septets))
    sizes = segments._grapheme_sizes(body)
    return SegmentInfo("UCS-2", reference_segments([16 * s for s in sizes]), sum(sizes))


# ---- known cases ----


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("", SegmentInfo("GSM-7", 1, 0), id="empty body is one segment"),
        pytest.param("a", SegmentInfo("GSM-7", 1, 1), id="one char"),
        pytest.param("a" * 160, SegmentInfo("GSM-7", 1, 160), id="160 GSM single"),
        pytest.param("a" * 161, SegmentInfo("GSM-7", 2, 161), id="161 GSM two parts"),
        pytest.param("a" * 306, SegmentInfo("GSM-7", 2, 306), id="153*2 GSM"),
        pytest.param("a" * 307, SegmentInfo("GSM-7", 3, 307), id="153*2+1 GSM"),
        pytest.param("a" * 1600, SegmentInfo("GSM-7", 11, 1600), id="1600 GSM"),
        pytest.param("[" * 80, SegmentInfo("GSM-7", 1, 160), id="80 escaped pairs fill one segment"),
        pytest.param("[" * 81, SegmentInfo("GSM-7", 2, 162), id="81 escaped pairs: 76 per part"),
        pytest.param("[" * 153, SegmentInfo("GSM-7", 3, 306), id="153 pairs: 306 septets but 3 parts"),
        pytest.param("a" * 159 + "€", SegmentInfo("GSM-7", 2, 161), id="euro as 161st septet"),
        pytest.param("a" * 158 + "€", SegmentInfo("GSM-7", 1, 160), id="euro as septets 159-160"),
        pytest.param("a" * 152 + "[" + "a" * 152, SegmentInfo("GSM-7", 3, 306), id="pair straddling 153 moves"),
        pytest.param("a" * 151 + "[" + "a" * 153, SegmentInfo("GSM-7", 2, 306), id="pair ending at 153 stays"),
        pytest.param("a\r\nb", SegmentInfo("GSM-7", 1, 4), id="CRLF is two septets"),
        pytest.param("\f", SegmentInfo("GSM-7", 1, 2), id="form feed is escaped"),
        pytest.param("Grüße, Señor! ¿Qué tal? Ç £5 ¥6 §7", SegmentInfo("GSM-7", 1, 34), id="GSM Latin-1 letters"),
        pytest.param("ΔΦΓΛΩΠΨΣΘΞ", SegmentInfo("GSM-7", 1, 10), id="GSM Greek capitals"),
        pytest.param(EMOJI, SegmentInfo("UCS-2", 1, 2), id="a single emoji"),
        pytest.param("`", SegmentInfo("UCS-2", 1, 1), id="backtick is not GSM"),
        pytest.param("\t", SegmentInfo("UCS-2", 1, 1), id="tab is not GSM"),
        pytest.param("ç", SegmentInfo("UCS-2", 1, 1), id="small c cedilla is not GSM"),
        pytest.param(CYRILLIC * 70, SegmentInfo("UCS-2", 1, 70), id="70 UCS-2 single"),
        pytest.param(CYRILLIC * 71, SegmentInfo("UCS-2", 2, 71), id="71 UCS-2 two parts"),
        pytest.param(CYRILLIC * 134, SegmentInfo("UCS-2", 2, 134), id="67*2 UCS-2"),
        pytest.param(CYRILLIC * 135, SegmentInfo("UCS-2", 3, 135), id="67*2+1 UCS-2"),
        pytest.param(CYRILLIC * 1600, SegmentInfo("UCS-2", 24, 1600), id="1600 UCS-2"),
        pytest.param(EMOJI * 800, SegmentInfo("UCS-2", 25, 1600), id="800 emoji: 33 per part"),
        pytest.param("a" * 69 + "ж", SegmentInfo("UCS-2", 1, 70), id="one non-GSM char makes it all UCS-2"),
        pytest.param("a" * 68 + EMOJI, SegmentInfo("UCS-2", 1, 70), id="emoji ends exactly at 70"),
        pytest.param("a" * 69 + EMOJI, SegmentInfo("UCS-2", 2, 71), id="emoji would end at 71"),
        pytest.param("a" * 66 + EMOJI + "a" * 65, SegmentInfo("UCS-2", 2, 133), id="emoji at 67-68 moves"),
        pytest.param("a" * 66 + EMOJI + "a" * 66, SegmentInfo("UCS-2", 3, 134), id="moved emoji overfills part 2"),
        pytest.param("a" * 65 + EMOJI + "a" * 67, SegmentInfo("UCS-2", 2, 134), id="emoji ending at 67 stays"),
        pytest.param("a" * 62 + FAMILY + "a" * 64, SegmentInfo("UCS-2", 3, 134), id="ZWJ sequence moves whole"),
        pytest.param("a" * 65 + FLAG_IT + "a" * 65, SegmentInfo("UCS-2", 3, 134), id="flag moves whole"),
        pytest.param("a" * 65 + THUMBS_UP_TONED + "a" * 65, SegmentInfo("UCS-2", 3, 134), id="toned emoji whole"),
        pytest.param("]" * 69 + EMOJI, SegmentInfo("UCS-2", 2, 71), id="escaped chars are one unit in UCS-2"),
        pytest.param("e" + "\u0301" * 80, SegmentInfo("UCS-2", 2, 81), id="a grapheme longer than a part"),
    ],
)
def test_known_cases(body: str, expected: SegmentInfo) -> None:
    assert analyse(body) == expected
    assert segment_count(body) == expected.segments
    assert reference(body) == expected


# The calculator's own published test data (tests/index.test.js), re-expressed.
@pytest.mark.parametrize(
    ("body", "encoding", "count"),
    [
        (digits(160), "GSM-7", 1),
        (digits(161), "GSM-7", 2),
        (digits(307), "GSM-7", 3),
        ("\U0001f61c" + digits(69)[1:], "UCS-2", 1),
        ("\U0001f61c" + digits(70)[1:], "UCS-2", 2),
        ("\U0001f61c" + digits(134)[1:], "UCS-2", 3),
        (FLAG_IT + digits(67)[1:], "UCS-2", 1),
        (FLAG_IT + digits(68)[1:], "UCS-2", 2),
        (RAINBOW_FLAG + digits(65)[1:], "UCS-2", 1),
        (RAINBOW_FLAG + digits(66)[1:], "UCS-2", 2),
        ("\U0001f600" + "]" * 68, "UCS-2", 1),
        ("\U0001f600" + "]" * 69, "UCS-2", 2),
        ("e\u0301\u0301\u0301" + "a" * 66, "UCS-2", 1),
        ("e\u0301\u0301\u0301" + "a" * 67, "UCS-2", 2),
        *((ch * 70, "UCS-2", 1) for ch in "ÁÚúçíÍóÓ"),
        *((ch * 71, "UCS-2", 2) for ch in "ÁÚúçíÍóÓ"),
        *((ch + digits(159)[1:], "GSM-7", 1) for ch in EXTENSION if ch != "\f"),
        *((ch + digits(160)[1:], "GSM-7", 2) for ch in EXTENSION if ch != "\f"),
    ],
)
def test_calculator_published_cases(body: str, encoding: str, count: int) -> None:
    info = analyse(body)
    assert (info.encoding, info.segments) == (encoding, count)
    assert segment_count(body) == count


@pytest.mark.parametrize("char", EXTENSION)
def test_each_extension_char_costs_two_septets_and_moves_whole_at_153(char: str) -> None:
    assert analyse(char) == SegmentInfo("GSM-7", 1, 2)
    straddling = "a" * 152 + char + "a" * 152  # the pair would take septets 153 and 154
    assert analyse(straddling) == SegmentInfo("GSM-7", 3, 306)


@pytest.mark.parametrize("code", range(128))
def test_ascii_fast_path_agrees_with_the_general_path(code: int) -> None:
    body = "x" * 100 + chr(code) * 70
    info = analyse(body)
    assert segment_count(body) == info.segments
    assert info.encoding == ("GSM-7" if chr(code) in GSM7_BASIC | GSM7_EXTENSION else "UCS-2")


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        ("e\u0301\u0301\u0301a", [4, 1]),  # combining marks extend their base
        (RAINBOW_FLAG + "x", [6, 1]),  # variation selector + ZWJ + pictograph
        (FAMILY, [8]),
        (THUMBS_UP_TONED, [4]),
        (FLAG_IT + "\U0001f1eb\U0001f1f7\U0001f1e9", [4, 4, 2]),  # indicators pair up; a lone one stays alone
        ("\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", [14]),  # tag sequence
        ("\r\n", [1, 1]),  # the calculator splits CR LF
        ("\n\u0301", [1, 1]),  # nothing extends a control
        ("한국어", [1, 1, 1]),  # precomposed syllables
        ("\u1100\u1161\u11a8", [3]),  # conjoining jamo make one syllable
        ("\u0600\u0661", [2]),  # a prepended mark joins what follows
        ("\u0600", [1]),
        ("กำ", [2]),  # Thai SARA AM is a spacing mark
        ("\ud800x", [1, 1]),  # a lone surrogate stands alone
        ("", []),
    ],
)
def test_graphemes(text: str, sizes: list[int]) -> None:
    assert segments._grapheme_sizes(text) == sizes


def test_class_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    table = segments._BreakClasses()
    monkeypatch.setattr(segments, "_CLASS_CACHE_LIMIT", 4)
    assert "abcdefgh".translate(table) == "OOOOOOOO"
    assert len(table) <= 4
    assert EMOJI.translate(table) == "X_"


# ---- properties ----

GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=1700)
INTERESTING = [
    "a",
    "[",
    "€",
    "\r",
    "\n",
    "ж",
    "é",
    "\u0301",
    "\u200d",
    "\ufe0f",
    EMOJI,
    "\U0001f3fd",
    "\U0001f1ee",
    "\U000e0067",
    "\u1100",
    "\u1161",
    "\u11a8",
    "한",
    "\u0600",
]
ANY_TEXT = st.text(alphabet=st.one_of(st.sampled_from(INTERESTING), st.characters()), max_size=900)
# mostly GSM text with an occasional stranger, so both encodings and every boundary get exercised
MIXED_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), st.sampled_from(INTERESTING))
)


@given(GSM_TEXT)
@example("a" * 152 + "[" * 200)
def test_gsm_text_is_gsm7_and_matches_the_oracle(body: str) -> None:
    info = analyse(body)
    assert info.encoding == "GSM-7"
    assert info.units == len(body) + sum(ch in GSM7_EXTENSION for ch in body)
    assert info == reference(body)
    assert segment_count(body) == info.segments


@given(ANY_TEXT)
def test_any_text_matches_the_oracle(body: str) -> None:
    info = analyse(body)
    assert info == reference(body)
    assert segment_count(body) == info.segments
    if info.encoding == "UCS-2":
        assert info.units == len(body.encode("utf-16-le", "surrogatepass")) // 2


@given(st.one_of(GSM_TEXT, ANY_TEXT, MIXED_TEXT), st.one_of(st.sampled_from(INTERESTING), st.characters()))
def test_appending_never_lowers_the_count(body: str, extra: str) -> None:
    assert segment_count(body + extra) >= segment_count(body)


@given(st.one_of(GSM_TEXT, ANY_TEXT, MIXED_TEXT))
def test_segments_bounded_by_capacity(body: str) -> None:
    info = analyse(body)
    single, part = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    if info.units <= single:
        assert info.segments == 1
    else:
        assert info.segments >= -(-info.units // part)


@given(st.lists(st.integers(min_value=1, max_value=90), max_size=120))
def test_packing_matches_the_oracle_even_for_oversized_graphemes(sizes: list[int]) -> None:
    assert segments._pack(sizes, 70, 67) == reference_segments([16 * s for s in sizes])


@given(ANY_TEXT)
def test_text_the_fast_check_passes_has_only_single_unit_graphemes(body: str) -> None:
    if segments._may_join().search(body) is None:
        assert segments._grapheme_sizes(body) == [1] * len(body)
