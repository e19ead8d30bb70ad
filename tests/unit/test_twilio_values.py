"""What a signed Twilio form may put in the store: Twilio's shapes checked, every value bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from notifyq.api.twilio_values import (
    DROPPED,
    ERROR_CODES,
    MAX_FORM_CHARS,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
    SEQUENCES,
    bounded,
    bounded_form,
    status_report,
    whole_number,
)

SID = "SM" + "0123456789abcdef" * 2
ID = "0" * 24


@given(hs.text(max_size=300), hs.integers(min_value=0, max_value=200))
def test_bounded_text_fits_keeps_its_start_and_holds_no_nul(text: str, limit: int) -> None:
    out = bounded(text, limit)
    assert len(out) <= limit
    assert "\x00" not in out
    clean = text.replace("\x00", "\ufffd")
    if len(clean) <= limit:
        assert out == clean
    elif limit >= 20:
        assert out.endswith(f"...[{len(clean) - limit} more]")
        assert clean.startswith(out[: out.rindex("...[")])


@given(hs.dictionaries(hs.text(max_size=100), hs.text(max_size=3000), max_size=40))
def test_a_bounded_form_fits_and_keeps_what_fits_unchanged(form: dict[str, str]) -> None:
    out = bounded_form(form)
    assert sum(len(k) + len(v) for k, v in out.items() if k != DROPPED) <= MAX_FORM_CHARS
    assert all(len(k) <= MAX_NAME_CHARS and len(v) <= MAX_VALUE_CHARS for k, v in out.items())
    kept = [k for k in out if k != DROPPED]
    assert len(kept) + int(out.get(DROPPED, "0")) == len(form)
    for name, value in form.items():
        if name in out and len(value) <= MAX_VALUE_CHARS and "\x00" not in value:
            assert out[name] == value


def test_a_form_past_the_whole_bound_says_how_many_fields_were_left_out() -> None:
    form = {f"F{i}": "x" * 1000 for i in range(40)}
    out = bounded_form(form)
    assert len(out) - 1 == 16  # 16,038 characters: a 17th field would pass 16,384
    assert out[DROPPED] == "24"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, False)),
        ("", (None, False)),
        ("30003", (30003, False)),
        ("999999", (999999, False)),
        ("1000000", (None, True)),
        ("0", (None, True)),
        ("99999999999999999999", (None, True)),
        ("-1", (None, True)),
        (" 30003", (None, True)),
        ("30_003", (None, True)),
        ("٣٠٠٠٣", (None, True)),  # Arabic-Indic digits: int() takes them, Twilio never sends them
        ("3" * 5000, (None, True)),
    ],
)
def test_an_error_code_is_a_whole_number_in_twilio_range(value: str | None, expected: tuple[int | None, bool]) -> None:
    assert whole_number(value, ERROR_CODES) == expected


def test_a_sequence_number_fits_the_stores_32_bit_column() -> None:
    assert whole_number(str(2**31 - 1), SEQUENCES) == (2**31 - 1, False)
    assert whole_number(str(2**31), SEQUENCES) == (None, True)
    assert whole_number("0", SEQUENCES) == (0, False)


def test_a_valid_message_callback_is_read_as_before() -> None:
    form = {"MessageSid": SID, "MessageStatus": "undelivered", "ErrorCode": "30003", "To": "+14155550100"}
    read = status_report(ID, form, kind="message", at=1.0)
    assert read is not None
    assert read.invalid_fields == []
    r = read.report
    assert (r.sid, r.status, r.error_code, r.invalid, r.raw) == (SID, "undelivered", 30003, None, form)


def test_sms_names_stand_in_for_message_names() -> None:
    read = status_report(ID, {"SmsSid": SID, "SmsStatus": "sent"}, kind="message", at=1.0)
    assert read is not None
    assert (read.report.sid, read.report.status, read.report.invalid) == (SID, "sent", None)


def test_a_form_without_a_status_or_sid_is_not_a_status_callback() -> None:
    assert status_report(ID, {"MessageSid": SID}, kind="message", at=1.0) is None
    assert status_report(ID, {"CallStatus": "ringing"}, kind="call", at=1.0) is None


@pytest.mark.parametrize(
    ("form", "invalid", "fields"),
    [
        ({"CallSid": "CA" + "x" * 32, "CallStatus": "ringing"}, "not a valid CallSid", ["CallSid"]),
        ({"CallSid": "CA" + "a" * 32, "CallStatus": "Ringing!"}, "not a valid CallStatus", ["CallStatus"]),
        ({"CallSid": "C" + "a" * 33, "CallStatus": "r" * 25}, "not a valid CallSid or CallStatus", None),
        ({"CallSid": "CA" + "a" * 32, "CallStatus": "ringing", "SequenceNumber": "x"}, None, ["SequenceNumber"]),
        ({"CallSid": "CA" + "a" * 32, "CallStatus": "failed", "ErrorCode": "1e5"}, None, ["ErrorCode"]),
    ],
)
def test_values_that_are_not_twilio_values_are_named(
    form: dict[str, str], invalid: str | None, fields: list[str] | None
) -> None:
    read = status_report(ID, form, kind="call", at=1.0)
    assert read is not None
    assert read.report.invalid == invalid
    assert read.invalid_fields == (fields or ["CallSid", "CallStatus"])
    assert (read.report.sequence, read.report.error_code) == (None, None)
    assert len(read.report.sid) <= 34
    assert len(read.report.status) <= 24
