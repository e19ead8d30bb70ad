"""Text a batch may carry: refused where it cannot be encoded, stored or sent, in every field, naming where."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyq.errors import Problem, ValidationFailed
from notifyq.intake.request import MAX_METADATA_DEPTH

from .helpers import UK, US, call, mms, parse, problem, problems, sms, without

LONE = "a\ud800b"  # what JSON's "a\ud800b" decodes to: a lone surrogate, which has no UTF-8 form


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (sms(body=f"Hi {LONE}"), "body"),
        (
            sms(body="Hi {name}", recipients=[{"to": US, "vars": {"name": "A"}}, {"to": UK, "vars": {"name": LONE}}]),
            "recipients[1].vars",
        ),
        (sms(recipients=[US, {"to": UK, "vars": {LONE: "x"}}]), "recipients[1].vars"),
        (sms(recipients=[US, {"to": UK, "vars": {"name": "x", "unused": LONE}}]), "recipients[1].vars"),
        (sms(idempotency_key=LONE), "idempotency_key"),
        (sms(metadata={"campaign": LONE}), "metadata"),
        (sms(metadata={LONE: 1}), "metadata"),
        (sms(metadata={"deep": [{"x": [LONE]}]}), "metadata"),
        (mms(media_url=["https://example.com/a.png", f"https://example.com/{LONE}.png"]), "media_url[1]"),
        (mms(media_url=[f"https://{LONE}.example.com/a.png"]), "media_url[0]"),
        (sms(**{"from": f"Brand{LONE}"}), "from"),
        (sms(**{"from": f"+1500555{LONE}0006"}), "from"),
        (sms(account=LONE), "account"),
        (sms(send_at=f"2026-11-22T10:00:00{LONE}Z"), "send_at"),
        (sms(priority=LONE), "priority"),
        (sms(recipients=[US, f"+1415{LONE}5550101"]), "recipients[1]"),
        (call(url=f"https://example.com/{LONE}"), "url"),
        (without(call(twiml=f"<Response><Say>{LONE}</Say></Response>"), "url"), "twiml"),
        (call(status_callback_event=[LONE]), "status_callback_event"),
        (call(machine_detection=LONE), "machine_detection"),
        (sms(**{LONE: "x"}), LONE),
    ],
)
def test_text_that_cannot_be_encoded_is_refused_naming_its_field(payload: dict[str, Any], field: str) -> None:
    found = problems(payload)
    assert [p.field for p in found] == [field]
    assert all(p.reason.encode() for p in found)  # the reasons themselves can be encoded


def test_a_lone_surrogate_is_named_with_where_it_is() -> None:
    assert problem(sms(body=f"Hi {LONE}")) == Problem(
        "body", "holds a lone surrogate (U+D800) at character 4: text needs whole characters to be sent as UTF-8"
    )
    found = problem(sms(recipients=[{"to": US, "vars": {"name": LONE}}]))
    assert (
        found.reason
        == "'name' holds a lone surrogate (U+D800) at character 1: text needs whole characters to be sent as UTF-8"
    )


def test_whole_characters_outside_the_bmp_are_fine() -> None:
    emoji = "\U0001f600"  # JSON writes it as the pair "\ud83d\ude00", which decodes to one character
    spec = parse(
        sms(body="Hi {name} " + emoji, recipients=[{"to": US, "vars": {"name": emoji}}], metadata={"e": emoji})
    )
    assert spec.render_body(spec.recipients[0].vars) == f"Hi {emoji} {emoji}"


def test_a_body_of_only_whitespace_is_refused() -> None:
    assert problem(sms(body=" \n\t ")) == Problem("body", "is only whitespace")
    assert problem(mms(body="   ")) == Problem("body", "is only whitespace")
    found = problem(sms(body="{a}{b}", recipients=[{"to": US, "vars": {"a": " ", "b": "\n"}}]))
    assert found == Problem("body", "renders to only whitespace for this recipient", 0)
    assert parse(sms(body=" {a} ", recipients=[{"to": UK, "vars": {"a": "x"}}])).recipients


@pytest.mark.parametrize("char", [chr(c) for c in (*range(0x09), 0x0B, *range(0x0E, 0x20))])
def test_control_characters_are_refused_in_body_variables_and_twiml(char: str) -> None:
    code = f"U+{ord(char):04X}"
    assert problem(sms(body=f"Hi{char}there")) == Problem("body", f"holds the control character {code} at character 2")
    found = problem(sms(body="Hi {n}", recipients=[{"to": US, "vars": {"n": f"a{char}"}}]))
    assert found == Problem("recipients[0].vars", f"'n' holds the control character {code} at character 1", 0)
    assert problem(without(call(twiml=f"<Response>{char}</Response>"), "url")).field == "twiml"
    assert problem(sms(idempotency_key=f"k{char}")).field == "idempotency_key"


def test_tab_line_feed_form_feed_and_carriage_return_are_fine() -> None:
    text = "Line one\r\nline two\ttabbed\fpage"
    spec = parse(sms(body="{t}", recipients=[{"to": US, "vars": {"t": text}}], metadata={"note": text}))
    assert spec.render_body(spec.recipients[0].vars) == text
    assert parse(sms(body=text)).body_template == text


def test_metadata_nested_deeper_than_the_limit_is_refused() -> None:
    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth - 1):
            value = [value]
        return {"x": value}

    assert parse(sms(metadata=nested(MAX_METADATA_DEPTH))).metadata
    limit = MAX_METADATA_DEPTH
    assert problem(sms(metadata=nested(limit + 1))) == Problem("metadata", f"is nested more than {limit} levels deep")
    # far deeper than Python's recursion limit: refused, not a RecursionError
    assert problem(sms(metadata=nested(100_000))).field == "metadata"


def test_metadata_keys_must_be_strings() -> None:
    assert problem(sms(metadata={1: "x"})) == Problem("metadata", "must be plain JSON: object keys are strings")


def test_an_integer_variable_longer_than_a_body_is_refused() -> None:
    found = problem(sms(recipients=[{"to": US, "vars": {"n": 10**1600}}]))
    assert found == Problem("recipients[0].vars", "'n' is 1601 characters; at most 1600", 0)
    assert parse(sms(recipients=[{"to": US, "vars": {"n": 10**1599}}])).recipients[0].vars == {"n": str(10**1599)}
    # an integer too long for str() (Python's int_max_str_digits) is refused the same way
    assert problem(sms(recipients=[{"to": US, "vars": {"n": 10**5000}}])).field == "recipients[0].vars"


def test_urls_are_at_most_4096_characters() -> None:
    url = "https://example.com/" + "a" * (4096 - 20)
    assert parse(mms(media_url=[url])).media_urls == (url,)
    assert problem(mms(media_url=[url + "a"])) == Problem("media_url[0]", "is 4097 characters; at most 4096")


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=()) | st.sampled_from("\ud800\udfff\x00\x1f\t\n"), max_size=20))
def test_any_text_in_a_body_is_accepted_only_when_it_can_be_encoded(text: str) -> None:
    payload = sms(body="{{" + text + "}}", recipients=[{"to": US, "vars": {"v": text}}])
    try:
        spec = parse(payload)
    except ValidationFailed:
        return
    body = spec.render_body(spec.recipients[0].vars)
    body.encode("utf-8")  # strict: raises for a lone surrogate
    assert not any(ord(c) < 32 and c not in "\t\n\f\r" for c in body)
