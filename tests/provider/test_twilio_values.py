"""What a signed Twilio form may put in the store: Twilio's shapes checked, every value bounded."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from notifyq.provider.twilio_values import (
    DROPPED,
    ERROR_CODES,
    MAX_FORM_CHARS,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
    SEQUENCES,
    bounded,
    bounded_form,
    fetched_report,
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


# ---- a record the reconciler fetched (JSON) ----------------------------------------------------------------

json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats() | hs.text(max_size=2000),
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def test_a_valid_fetched_record_is_read_as_it_came() -> None:
    found = {"sid": SID, "status": "undelivered", "error_code": 30003, "error_message": "Unreachable", "to": "+1"}
    read = fetched_report(ID, SID, found, at=1.0)
    assert read.invalid_fields == []
    r = read.report
    assert (r.sid, r.status, r.error_code, r.error_message, r.source, r.invalid) == (
        SID, "undelivered", 30003, "Unreachable", "reconcile", None,
    )  # fmt: skip
    assert r.raw == {"sid": SID, "status": "undelivered", "error_code": 30003, "error_message": "Unreachable"}


@pytest.mark.parametrize(
    ("changes", "invalid", "fields"),
    [
        ({"error_code": 99999999999999999999}, None, ["error_code"]),  # sqlite3 cannot bind it
        ({"error_code": -30003}, None, ["error_code"]),
        ({"error_code": True}, None, ["error_code"]),
        ({"error_code": "30003"}, None, []),  # a number as text is still the number
        ({"error_code": 3.5}, None, ["error_code"]),
        ({"error_message": {"text": "x"}}, None, ["error_message"]),
        ({"status": "Delivered!"}, "not a valid status", ["status"]),
        ({"status": ["delivered"]}, "not a valid status", ["status"]),
        ({"sid": "SM" + "f" * 32}, "not a valid sid", ["sid"]),  # a record of another message
    ],
)
def test_values_of_a_fetched_record_that_are_not_twilio_values_are_named(
    changes: dict[str, object], invalid: str | None, fields: list[str]
) -> None:
    found = {"sid": SID, "status": "failed", "error_code": 30007, "error_message": "Filtered"} | changes
    read = fetched_report(ID, SID, found, at=1.0)
    assert (read.report.invalid, read.invalid_fields) == (invalid, fields)
    assert read.report.error_code in {None, 30003, 30007}


@given(
    hs.dictionaries(hs.sampled_from(["sid", "status", "error_code", "error_message", "date_updated", "x"]), json_values)
)
def test_whatever_a_fetched_record_holds_its_report_fits_the_store(found: dict[str, object]) -> None:
    report = fetched_report(ID, SID, found, at=1.0).report
    assert len(report.sid) <= 34
    assert len(report.status) <= 24
    assert report.error_code is None or report.error_code in ERROR_CODES
    assert report.error_message is None or len(report.error_message) <= MAX_VALUE_CHARS
    assert set(report.raw) <= {"sid", "status", "error_code", "error_message", "date_updated"}
    for value in report.raw.values():
        if isinstance(value, str):
            assert len(value) <= MAX_VALUE_CHARS
            assert "\x00" not in value
        else:
            assert value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**53)
    json.dumps(report.raw, allow_nan=False)  # what a JSON column takes
    if report.invalid is None:
        assert found.get("sid") == SID
