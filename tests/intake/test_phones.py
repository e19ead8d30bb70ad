"""Phone numbers: normalised to E.164 or refused with a reason; the fast path against phonenumbers, the reference."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from notifyq.intake import phones
from notifyq.intake.phones import to_e164

from .helpers import DE, FR, UK, UK2, US, parse, problem, sms

# -- what a number becomes, or why not


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        (US, US),
        ("+1 (415) 555-0100", US),
        ("+1.415.555.0100", US),
        ("+1 415\t555 0100", US),
        ("+44 20 7946 0018", UK),
        ("+44 (0)20 7946 0018", UK),  # the national prefix some people write in brackets
        ("+44 7911 123456", UK2),
        ("+49 151 23456789", DE),
        ("+49 (0)151 23456789", DE),
        ("+33 6 12 34 56 78", FR),
        ("+61 491 570 156", "+61491570156"),
        ("+39 06 6982 0000", "+390669820000"),  # Italy keeps its leading zero
        ("+800 1234 5678", "+80012345678"),  # a non-geographic number
        ("+54 11 15 2345 6789", "+5491123456789"),  # Argentina rewrites its mobile prefix 15 to 9
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == (e164, "")
    assert to_e164(raw, explain=False) == (e164, "")
    assert parse(sms(recipients=[raw])).recipients[0].to == e164


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("4155550100", "must be in E.164 form: + and the country code"),
        ("004414155550100", "must be in E.164 form"),
        ("+1 415 CALL NOW", "is not a phone number"),
        ("+1 415 555 0100 ext 12", "is not a phone number"),
        ("+١٤١٥٥٥٥٠١٠٠", "is not a phone number"),  # Arabic-Indic digits are not E.164
        ("+", "is not a phone number"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("+1415555", "is too short for +1 (US)"),
        ("+1 415 555 01000", "is too long for +1 (US)"),
        ("+1234567890123456", "is too long: E.164 numbers have at most 15 digits"),
        ("+" + "1" * 70, "is too long to be a phone number"),
        ("+99912345678", "has an unknown country code"),
        ("+0123456", "has an unknown country code"),
        ("+1 099 555 0100", "is not a valid number for +1 (US)"),
        ("+447700900123", "is not a valid number for +44 (GB)"),
        ("+44 1234", "is too short for +44 (GB)"),
    ],
)
def test_invalid_numbers_say_why(raw: str, reason: str) -> None:
    number, why = to_e164(raw)
    assert number is None
    assert reason in why
    assert to_e164(raw, explain=False) == (None, "")
    found = problem(sms(recipients=[US, raw]))
    assert (found.field, found.index) == ("recipients[1]", 1)
    assert reason in found.reason


def test_the_reason_quotes_the_number_shortened() -> None:
    assert to_e164("+1415555")[1].startswith("'+1415555' ")
    assert to_e164("x" * 60)[1].startswith("'" + "x" * 29 + "...' ")


@pytest.mark.parametrize("digit", range(10))
def test_twilio_magic_numbers_are_accepted(digit: int) -> None:
    magic = f"+1500555000{digit}"
    spec = parse(sms(**{"from": magic}, recipients=[magic]))
    assert spec.recipients[0].to == magic
    assert spec.sender == magic


def test_magic_numbers_are_accepted_even_if_the_metadata_disagreed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phones, "_is_valid_national", lambda _cc, _nsn: False)
    assert parse(sms(recipients=["+15005550004", "+1 500 555 0009"])).recipients[1].to == "+15005550009"
    assert problem(sms(recipients=["+15005550010"])).index == 0


# -- the fast path and the slow path against phonenumbers


def _literal_number(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """What phonenumbers makes of +cc nsn read digit for digit (leading zeros kept as Italian zeros)."""
    number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if zeros and len(nsn) > 1:
        number.italian_leading_zero = True
        zeros = min(zeros, len(nsn) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(COUNTRY_CODES), st.data())
def test_fast_path_agrees_with_is_valid_number(cc: int, data: st.DataObject) -> None:
    nsn = data.draw(st.text(alphabet="0123456789", min_size=1, max_size=15 - len(str(cc))))
    number = f"+{cc}{nsn}"
    assert phones.is_valid_e164(number) == phonenumbers.is_valid_number(_literal_number(cc, nsn))


def test_fast_path_accepts_every_example_number() -> None:
    checked = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None and phonenumbers.is_valid_number(example):
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                assert phones.is_valid_e164(e164), (region, kind, e164)
                assert to_e164(e164) == (e164, "")
                checked += 1
    for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(cc)
        if example is not None:
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            assert phones.is_valid_e164(e164), e164
            checked += 1
    assert checked > 1000


def test_country_codes_are_prefix_free() -> None:
    codes = [str(cc) for cc in COUNTRY_CODES]
    assert not [(a, b) for a in codes for b in codes if a != b and b.startswith(a)]


def _reference(raw: str) -> str | None:
    """What phonenumbers itself makes of ``raw``: the valid E.164 number or None."""
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    valid = phonenumbers.is_valid_number(parsed)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if valid else None


EXAMPLES = sorted(
    phonenumbers.format_number(ex, phonenumbers.PhoneNumberFormat.E164)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    if (ex := phonenumbers.example_number_for_type(region, kind)) is not None
)


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    """An example number with a digit or two changed, maybe a national prefix and separators: as people write."""
    cc, nsn = phones._split(draw(st.sampled_from(EXAMPLES))) or (0, "")
    digits = list(nsn)
    for _ in range(draw(st.integers(0, 2))):
        digits[draw(st.integers(0, len(digits) - 1))] = draw(st.sampled_from("0123456789"))
    nsn = "".join(digits)
    prefix = draw(st.sampled_from(["", "0", "(0)", "1", "8"]))
    sep = draw(st.sampled_from(["", " ", "-", "."]))
    return f"+{cc}{sep}{prefix}{sep}{nsn[:3]}{sep}{nsn[3:]}"


# valid as written, but parse drops the 8 (Belarus' national prefix): +375 102450911 is not valid
BELARUS_PREFIXED = ("+375 8 102450911", "+3758102450911")


@settings(max_examples=2000, deadline=None)
@given(written_numbers())
@example(BELARUS_PREFIXED[0])
@example(BELARUS_PREFIXED[1])
def test_to_e164_agrees_with_phonenumbers_parse(raw: str) -> None:
    expected = _reference(raw)
    if raw.translate(phones._SEPARATORS) in {f"+1500555000{d}" for d in range(10)}:
        expected = raw.translate(phones._SEPARATORS)
    assert to_e164(raw)[0] == expected
    assert to_e164(raw, explain=False)[0] == expected


@settings(max_examples=300, deadline=None)
@given(written_numbers())
@example(BELARUS_PREFIXED[0])
@example(BELARUS_PREFIXED[1])
def test_intake_accepts_what_to_e164_accepts(raw: str) -> None:
    # the intake's own loop takes the fast path directly: it must read a number as to_e164 does
    number, _ = to_e164(raw)
    if number is None:
        assert problem(sms(recipients=[raw])).index == 0
    else:
        assert parse(sms(recipients=[raw])).recipients[0].to == number
