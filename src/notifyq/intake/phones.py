"""Phone numbers: is a recipient (or a sender) a valid number, in E.164 form, and if not, why not.

Two paths give one answer. The fast path, :func:`read_e164`, takes a string already shaped
``+[1-9][0-9]{1,14}``, reads the national number as ``phonenumbers.parse`` would (which drops a national
prefix written after the country code, by the country's own rule, even from a number valid as written),
and applies libphonenumber's own per-country patterns to it directly, compiled once per country code and
length into one regex; its answer equals ``phonenumbers.parse`` then ``is_valid_number`` (the tests
compare the two). Every other string takes :func:`to_e164_slow`, which removes separators, settles
what it cheaply can, and otherwise asks ``phonenumbers.parse`` (the reference), which also says what is
wrong. :func:`to_e164` is the two in turn. Intake runs the fast path on every recipient and the slow
path only for those that fail it, so a batch of valid E.164 numbers never pays for parsing.

Twilio's test numbers ``+15005550000``..``+15005550009`` are always accepted.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, ValidationResult

E164_SHAPE: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_TWILIO_TEST_PREFIX: Final = "+1500555000"  # and a digit: valid in Twilio's test mode, whatever the metadata
SEPARATOR_CHARS: Final = " \t-()."  # what a number may be written with between its digits
MAX_NUMBER_CHARS: Final = 64  # longer is no phone number, however written
MAX_E164_DIGITS: Final = 15
_SEPARATORS: Final = str.maketrans("", "", SEPARATOR_CHARS)
_MIN_NSN: Final = 2  # phonenumbers.parse refuses a shorter national number
_MASK: Final = "•••"
_E164_IN_TEXT: Final = re.compile(r"\+[1-9][0-9]{5,14}\b")
_MASK_KEEP: Final = 4  # last digits a masked number shows
_MASK_HIDE_AT_LEAST: Final = 3
_COUNTRY_CODES: Final = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
_NUMBER_TYPES: Final = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
    "fixed_line", "mobile",
)  # fmt: skip
_PARSE_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}
_LENGTH_REASONS: Final = {
    ValidationResult.TOO_SHORT: "is too short for {}",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is too short for {}: a local number without its area code?",
    ValidationResult.TOO_LONG: "is too long for {}",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits for {}",
}
# (None, (valid,)) for a region without leading digits; (leading, valids) for a run of regions with them,
# their leading-digit patterns joined into one regex whose group "r<i>" names the region that matched
_Rule = tuple[re.Pattern[str] | None, tuple[re.Pattern[str] | None, ...]]


def to_e164(raw: str, *, explain: bool = True) -> tuple[str | None, str]:
    """``(number, "")`` with ``raw`` in E.164 form, or ``(None, reason)`` when it is not a valid number.

    The number is what ``phonenumbers.parse`` makes of ``raw``, when ``phonenumbers.is_valid_number``
    finds it valid. With ``explain=False`` the reason is left empty, which saves a slow parse for most
    invalid numbers.
    """
    if E164_SHAPE.fullmatch(raw):
        number = read_e164(raw)
        if number:
            return number, ""
    return to_e164_slow(raw, explain)


def _split(number: str) -> tuple[int, str] | None:
    """The country calling code and national number of ``+digits``; None for an unknown code."""
    for end in (2, 3, 4):  # country calling codes are 1-3 digits and none is a prefix of another
        cc = _COUNTRY_CODES.get(number[1:end])
        if cc is not None:
            return cc, number[end:]
    return None


def mask_number(number: str) -> str:
    """A recipient as a report shows it: the country code and the last 4 digits, ``+1•••0100``.

    At least 3 digits stay hidden however short the number, and the mask has one length whatever it hides.
    Anything else (``client:alice``, a number with an unknown country code) keeps at most its last 4 characters,
    and a channel prefix such as ``whatsapp:`` is kept.
    """
    scheme, colon, rest = number.rpartition(":")
    if colon and scheme:
        return f"{scheme}:{mask_number(rest)}"
    split = _split(number) if E164_SHAPE.fullmatch(number) else None
    head, tail = (f"+{split[0]}", split[1]) if split is not None else ("", number)
    shown = min(_MASK_KEEP, max(0, len(tail) - _MASK_HIDE_AT_LEAST))
    return f"{head}{_MASK}{tail[len(tail) - shown :]}"


def mask_numbers_in(text: str) -> str:
    """``text`` (an error message from Twilio, say) with every number in E.164 form in it masked."""
    return _E164_IN_TEXT.sub(lambda m: mask_number(m[0]), text)


def is_valid_e164(number: str) -> bool:
    """``phonenumbers.is_valid_number`` for a string of shape ``+[1-9][0-9]{1,14}``, without parsing it."""
    split = _split(number)
    return split is not None and _is_valid_national(*split)


def _is_valid_national(cc: int, nsn: str) -> bool:
    """``phonenumbers.is_valid_number`` for the national number ``nsn`` (read digit for digit) of ``+cc``."""
    for leading, valids in _rules(cc, len(nsn)):
        # the region choice of phonenumbers.region_code_for_number: the first region whose leading
        # digits match decides; a region without leading digits is chosen when the number is valid there
        if leading is None:
            if valids[0] is not None and valids[0].fullmatch(nsn):
                return True
        elif (m := leading.match(nsn)) is not None:
            valid = valids[int((m.lastgroup or "r0")[1:])]
            return valid is not None and valid.fullmatch(nsn) is not None
    return False


@functools.cache  # bounded: about 250 country codes times 15 lengths
def _rules(cc: int, length: int) -> tuple[_Rule, ...]:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    per_region: list[tuple[str | None, re.Pattern[str] | None]] = []
    for region in regions:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            meta = PhoneMetadata.metadata_for_nongeo_region(cc)
        else:
            meta = PhoneMetadata.metadata_for_region(region)
        if meta is None:
            continue
        leading = meta.leading_digits if len(regions) > 1 and meta.leading_digits else None
        valid = _valid_pattern(meta, length)
        if leading is not None or valid is not None:  # a region with neither never decides anything
            per_region.append((leading, valid))
    if all(valid is None for _, valid in per_region):
        return ()  # no region has a valid number of this length
    rules: list[_Rule] = []
    run: list[tuple[str, re.Pattern[str] | None]] = []
    for leading, valid in [*per_region, (None, None)]:
        if leading is not None:
            run.append((leading, valid))
            continue
        if run:
            joined = "|".join(f"(?P<r{i}>{pattern})" for i, (pattern, _) in enumerate(run))
            rules.append((re.compile(joined), tuple(v for _, v in run)))
            run = []
        if valid is not None:
            rules.append((None, (valid,)))
    return tuple(rules)


def _valid_pattern(meta: PhoneMetadata, length: int) -> re.Pattern[str] | None:
    """One regex for "matches the general pattern and the pattern of some number type" at this length."""

    def usable(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and length not in desc.possible_length:
            return None
        return desc.national_number_pattern

    general = usable(meta.general_desc)
    types = [p for p in (usable(getattr(meta, t)) for t in _NUMBER_TYPES) if p is not None]
    if general is None or not types:
        return None
    return re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(f'(?:{p})' for p in types)})")


def to_e164_slow(raw: str, explain: bool) -> tuple[str | None, str]:
    """``to_e164`` for a ``raw`` that failed the fast path as it stands."""
    cleaned, reason = _clean(raw)
    if cleaned:
        number = _without_parse(cleaned)
        if number:
            return number, ""
        if explain or number is None:
            number, reason = _parse(cleaned)
            if number is not None:
                return number, ""
    if not explain:
        return None, ""
    shown = raw if len(raw) <= 32 else raw[:29] + "..."
    return None, f"{shown!r} {reason}"


def _without_parse(cleaned: str) -> str | None:
    """What phonenumbers.parse, then is_valid_number, make of ``cleaned`` where that can be told cheaply.

    The valid E.164 number; "" for a number they find invalid; None when only parse can tell.
    """
    return read_e164(cleaned) if E164_SHAPE.fullmatch(cleaned) else None


def read_e164(number: str) -> str | None:
    """The fast path, for a ``number`` of E.164 shape: what parse then is_valid_number make of it, unparsed.

    The valid E.164 number; "" for a number they find invalid; None when only parse can tell.

    With a leading +, parse reads the digits after the country code as the national number, except
    that it may drop a national prefix written at its start (``+44 (0)20 ...``): ``_national_number``
    says whether it does, also for a number valid as written (``+375 8 ...`` is read without the 8).
    """
    if len(number) == len(_TWILIO_TEST_PREFIX) + 1 and number.startswith(_TWILIO_TEST_PREFIX):
        return number
    split = _split(number)
    if split is None:
        return ""  # an unknown country code
    cc, nsn = split
    kept = _national_number(cc, nsn)
    if kept is None:
        return None
    if not _is_valid_national(cc, kept):
        return ""
    return number if kept is nsn else number[: len(number) - len(nsn)] + kept


def _national_number(cc: int, nsn: str) -> str | None:
    """The national number parse keeps of ``+cc nsn``: ``nsn``, or ``nsn`` without its national prefix.

    None when parse would rewrite the prefix rather than drop it (a transform rule): only parse can tell.
    This is phonenumbers' ``_maybe_strip_national_prefix_carrier_code`` and the length test ``parse``
    applies after it, for the country's main region.
    """
    rule = _national_prefix(cc)
    match = None if rule is None else rule.pattern.match(nsn)
    if rule is None or match is None or len(nsn) < _MIN_NSN:
        return nsn  # too short a national number: parse refuses it, and the number is invalid either way
    groups = match.groups()
    if rule.transform and groups and groups[-1] is not None:
        return None
    rest = nsn[match.end() :]
    if rule.viable(nsn) and not rule.viable(rest):
        return nsn  # parse keeps a prefix whose removal would spoil a number of the right shape
    return rest if rule.keeps(len(rest)) else nsn


def _parse(cleaned: str) -> tuple[str | None, str]:
    try:
        # parse also drops a national prefix written after the country code: +44 (0)20 ... -> +4420...
        parsed = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException as e:
        return None, _PARSE_REASONS.get(e.error_type, "is not a phone number")
    number = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    if E164_SHAPE.fullmatch(number) and is_valid_e164(number):  # is_valid_number(parsed), only faster
        return number, ""
    cc = parsed.country_code
    region = phonenumbers.region_code_for_country_code(cc or 0)
    where = f"+{cc}" if region in {"ZZ", phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY} else f"+{cc} ({region})"
    length_reason = _LENGTH_REASONS.get(phonenumbers.is_possible_number_with_reason(parsed))
    if length_reason is not None:
        return None, length_reason.format(where)
    return None, f"is not a valid number for {where}: no number range there matches it"


@dataclass(frozen=True, slots=True)
class _PrefixRule:
    """How phonenumbers.parse reads a national prefix after ``+cc``: the main region's metadata."""

    pattern: re.Pattern[str]  # national_prefix_for_parsing
    transform: bool  # a transform rule rewrites the prefix instead of dropping it
    general: re.Pattern[str] | None  # the general national number pattern: a "viable" number matches it whole
    lengths: tuple[int, ...]  # the general possible lengths, in order
    local_only: frozenset[int]

    def viable(self, nsn: str) -> bool:
        """Whether ``nsn`` matches the general description whole (phonenumbers' ``_match_national_number``)."""
        return self.general is not None and self.general.fullmatch(nsn) is not None

    def keeps(self, length: int) -> bool:
        """Whether parse keeps a national number this long once the prefix is dropped.

        Its ``_test_number_length``: the prefix stays when the rest is too short, possible only
        locally, or of a length between the possible ones; a rest that is too long loses it.
        """
        if length in self.local_only or not self.lengths:
            return False
        return length in self.lengths or length > self.lengths[-1]


@functools.cache
def _national_prefix(cc: int) -> _PrefixRule | None:
    """How phonenumbers.parse drops a national prefix after ``+cc``: by the main region's rule."""
    region = phonenumbers.region_code_for_country_code(cc)
    meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    if meta is None or not meta.national_prefix_for_parsing:
        return None
    general = meta.general_desc
    pattern = general.national_number_pattern if general is not None else None
    return _PrefixRule(
        pattern=re.compile(meta.national_prefix_for_parsing),
        transform=bool(meta.national_prefix_transform_rule),
        general=re.compile(pattern) if pattern else None,
        lengths=tuple(general.possible_length) if general is not None else (),
        local_only=frozenset(general.possible_length_local_only) if general is not None else frozenset(),
    )


def _clean(raw: str) -> tuple[str, str]:
    """``raw`` without separators, or ``("", reason)`` when it cannot be an E.164 number."""
    if len(raw) > MAX_NUMBER_CHARS:
        return "", "is too long to be a phone number"
    cleaned = raw.translate(_SEPARATORS)
    digits = cleaned[1:]
    if not cleaned:
        reason = "is empty"
    elif not cleaned.startswith("+"):
        reason = "must be in E.164 form: + and the country code, e.g. +14155550100"
    elif not (digits.isascii() and digits.isdigit()):
        reason = "is not a phone number: only digits, spaces, dashes, dots and parentheses may follow the +"
    elif len(digits) > MAX_E164_DIGITS:
        reason = f"is too long: E.164 numbers have at most {MAX_E164_DIGITS} digits"
    else:
        return cleaned, ""
    return "", reason
