"""Reading a request's text: the recipients array lazily, as json.loads reads it, and one kind of error for bad JSON."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from notifyq.errors import ValidationFailed
from notifyq.intake import MALFORMED_JSON, BatchIntake, RecipientsNotLast, decode_json, load_request

from .helpers import BATCH_REQUESTS


@pytest.mark.parametrize(
    "array",
    [
        '["+14155550100", "+14155550101"]',
        '["+14155550100","+14155550101",{"to":"+14155550102"}]',
        '[ "+14155550100" ,\n  "+14155550101",\t"+14155550102" , \r\n "+14155550103"\n]',
        "[]",
        '["+14155550100", ]',
        '["+14155550100",, "+14155550101"]',
        '["+14155550100" "+14155550101"]',
        '["+14155550100", ',
        '["+14155550100",',
    ],
)
def test_the_lazy_recipients_array_reads_as_json_loads_does(array: str) -> None:
    text = '{"channel": "sms", "recipients": ' + array + "}"
    try:
        expected: Any = json.loads(text)["recipients"]
    except json.JSONDecodeError as e:
        expected = ("error", e.msg, e.pos)
    try:
        got: Any = list(load_request(text)["recipients"])
    except json.JSONDecodeError as e:
        got = ("error", e.msg, e.pos)
    assert got == expected


DEEP = "[" * 100_000 + "]" * 100_000


LONG = "1" * 5000


@pytest.mark.parametrize(
    "text",
    [
        '{"channel": "sms", "recipients": ["+14155550100", ' + DEEP + "]}",
        '{"channel": "sms", "recipients": ["+14155550100", ' + LONG + "]}",
        '{"channel": "sms", "recipients": [' + LONG + ', "+14155550100"]}',
        '{"metadata": ' + DEEP + ', "recipients": ["+14155550100"]}',
        '{"timeout": ' + LONG + ', "recipients": ["+14155550100"]}',
        '{"recipients": ["+14155550100"], "metadata": ' + DEEP + "}",
        '{"recipients": ["+14155550100"], "timeout": -' + LONG + "}",
        DEEP,
        LONG,
    ],
)
def test_json_nobody_can_read_is_one_kind_of_error_wherever_it_is(text: str) -> None:
    with pytest.raises(MALFORMED_JSON) as info:
        _read_as_the_api_does(text)
    assert "set_int_max_str_digits" not in str(info.value)


def _read_as_the_api_does(text: str) -> list[tuple[str, dict[str, str] | None]] | None:
    """What POST /v1/batches does with a request's text before the store: read it, validate every recipient.

    The accepted recipients (None when the text is not an object); raises what the API answers 4xx for.
    """
    payload = load_request(text)
    if not isinstance(payload, dict):
        return None
    try:
        intake = BatchIntake(payload, accounts=["main"])
        accepted = [(to, variables) for to, variables, _, _ in intake.accepted()]
    except RecipientsNotLast:
        intake = BatchIntake(decode_json(text), accounts=["main"])
        accepted = [(to, variables) for to, variables, _, _ in intake.accepted()]
    intake.finish()
    if intake.spec is None:  # pragma: no cover - finish() raised
        raise AssertionError
    # accepted: every piece of text in it can be encoded, so the worker can send it
    spec = [getattr(intake.spec, f.name) for f in dataclasses.fields(intake.spec) if not f.name.startswith("_")]
    json.dumps([spec, accepted], default=str, ensure_ascii=False).encode()
    return accepted


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(BATCH_REQUESTS, st.integers(min_value=0, max_value=200), st.text(max_size=3))
def test_any_json_text_is_read_or_refused_as_bad_input(fields: dict[str, Any], cut: int, noise: str) -> None:
    """Whatever JSON (or almost-JSON) arrives, reading it ends in a batch, MALFORMED_JSON or ValidationFailed."""
    text = json.dumps(fields).replace("\\\\u", "\\u")  # let escapes through: lone surrogates reach the parser
    for candidate in (text, text[:cut] + noise + text[cut:]):
        with contextlib.suppress(*MALFORMED_JSON, ValidationFailed):
            _read_as_the_api_does(candidate)
