"""A batch as the worker sends it: the create form, and its body encoded from parts (what is shared, once)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from notifyq.errors import Unsendable
from notifyq.intake import BatchIntake
from notifyq.statuses import Channel
from notifyq.template import Template
from notifyq.worker.prepared import PreparedBatch, prepare

# what a form value may hold: spaces, reserved and percent signs, non-ASCII, an emoji
TEXT = hs.text(alphabet=hs.sampled_from([*"aZ09 +&=%/:?#~._-", "é", "✓", "😀", "\n"]), max_size=20)


def prepared(common: list[tuple[str, str]], body: str | None, callback_base: str) -> PreparedBatch:
    row = cast("Any", SimpleNamespace(channel=Channel.SMS))
    return PreparedBatch(
        row=row,
        account=cast("Any", None),
        resource="Messages.json",
        common_params=tuple(common),
        template=Template.compile(body) if body is not None else None,
        pace_key="+15005550006",
        pace_kind="long_code",
        callback_base=callback_base,
    )


def test_the_form_of_a_message() -> None:
    batch = prepared([("From", "+15005550006")], "Hi {name}, 100% off!", "https://q.example.com/twilio/message-status/")
    form = batch.form("+14155550100", {"name": "Zoë"}, "06h2o9l8uikekf8ed582iiqn")
    assert form.items == [
        ("To", "+14155550100"),
        ("From", "+15005550006"),
        ("Body", "Hi Zoë, 100% off!"),
        ("StatusCallback", "https://q.example.com/twilio/message-status/06h2o9l8uikekf8ed582iiqn"),
    ]
    assert form.encoded == (
        b"To=%2B14155550100&From=%2B15005550006&Body=Hi+Zo%C3%AB%2C+100%25+off%21"
        b"&StatusCallback=https%3A%2F%2Fq.example.com%2Ftwilio%2Fmessage-status%2F06h2o9l8uikekf8ed582iiqn"
    )


@given(
    to=TEXT,
    common=hs.lists(hs.tuples(TEXT, TEXT), max_size=4),
    body=hs.one_of(hs.none(), TEXT, hs.just("{a} and {b}")),
    values=hs.tuples(TEXT, TEXT),
    base=TEXT,
    delivery_id=TEXT,
)
def test_the_body_is_what_urlencode_makes_of_the_items(
    to: str, common: list[tuple[str, str]], body: str | None, values: tuple[str, str], base: str, delivery_id: str
) -> None:
    batch = prepared(common, body, base)  # TEXT has no braces: a body is a template with no variables, or "{a} and {b}"
    form = batch.form(to, {"a": values[0], "b": values[1]}, delivery_id)
    assert form.encoded == urlencode(form.items).encode()
    assert parse_qsl(form.encoded.decode(), keep_blank_values=True) == form.items
    assert form.items[0] == ("To", to)
    assert form.items[-1] == ("StatusCallback", base + delivery_id)
    assert form.items[1 : 1 + len(common)] == common


def test_a_send_that_cannot_be_built_is_unsendable_alone() -> None:
    batch = prepared([("From", "+15005550006")], "Hi {name}", "https://q.example.com/s/")
    for to, variables, reason in (
        ("+14155550100", {"name": "\ud800"}, "cannot be encoded as UTF-8"),
        ("+1415\udfff", {"name": "Ann"}, "cannot be encoded as UTF-8"),
        ("+14155550100", {}, "missing variable 'name'"),
    ):
        with pytest.raises(Unsendable, match=reason):
            batch.form(to, variables, "06h2o9l8uikekf8ed582iiqn")
    assert batch.form("+14155550100", {"name": "Ann"}, "06h2o9l8uikekf8ed582iiqn").items[2] == ("Body", "Hi Ann")


def test_a_batch_whose_shared_parts_cannot_be_encoded_is_prepared_broken() -> None:
    for common, body in (([("From", "\ud800")], "Hi"), ([("From", "+15005550006")], "Hi \ud800")):
        batch = prepared(common, body, "https://q.example.com/s/")
        assert batch.broken is not None
        with pytest.raises(Unsendable, match="cannot be encoded as UTF-8"):
            batch.form("+14155550100", None, "06h2o9l8uikekf8ed582iiqn")


@pytest.mark.parametrize(
    ("fields", "smart"),
    [
        pytest.param({"smart_encoded": True}, True, id="asked"),
        pytest.param({}, False, id="a number, not asked"),
        pytest.param({"from": None, "messaging_service_sid": "MG" + "0" * 32}, True, id="a service"),
        pytest.param({"messaging_service_sid": "MG" + "0" * 32, "smart_encoded": False}, False, id="turned off"),
    ],
)
def test_a_send_costs_what_intake_counted(fields: dict[str, Any], smart: bool) -> None:
    # the worker books the pace with its own count; it must be intake's, smart-encoded or not
    request = {"channel": "sms", "from": "+15005550006", "body": "It\u2019s {x} \u2014 " + "y" * 140} | fields
    intake = BatchIntake(request | {"recipients": [{"to": "+14155550100", "vars": {"x": "ok"}}]})
    [(_, variables, _, counted)] = list(intake.accepted())
    spec = intake.spec
    assert spec is not None
    row = cast(
        "Any",
        SimpleNamespace(
            id="b", channel=Channel.SMS, account=None, sender=spec.sender,
            messaging_service_sid=spec.messaging_service_sid,
            content={"params": [list(p) for p in spec.shared_params()], "body": spec.body_template},
        ),
    )  # fmt: skip
    batch = prepare(row, cast("Any", SimpleNamespace(callback_url=lambda *_: "")), cast("Any", object()))
    assert (batch.smart, batch.cost(variables)) == (smart, counted)
    assert counted == (1 if smart else 3)
