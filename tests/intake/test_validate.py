"""BatchIntake: a request accepted whole or refused whole, its recipients checked, deduplicated and counted as read."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import phonenumbers
import pytest

from notifyq.errors import Problem, ValidationFailed
from notifyq.intake import BatchIntake, load_request

from .helpers import DE, FR, UK, UK2, US, US2, Recipient, parse, problem, problems, recipients, sms, without

# -- the whole request


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert problem(["not", "an", "object"]).reason == "the request body must be a JSON object"


def test_accepted_whole_or_rejected_whole() -> None:
    good = [US, US2, UK, UK2, DE, FR]
    assert len(parse(sms(recipients=good)).recipients) == 6
    found = problems(sms(recipients=[*good[:3], "+44 20", *good[3:]]))
    assert found == [Problem("recipients[3]", "'+44 20' is too short for +44 (GB)", 3)]


# -- recipients


def test_recipients_as_strings_and_objects() -> None:
    spec = parse(
        sms(
            body="Hi {name}, {code}",
            recipients=[
                {"to": US, "vars": {"name": "Ann", "code": "1"}},
                {"to": "+44 20 7946 0018", "vars": {"name": "Bo", "code": 42}},
            ],
        )
    )
    assert spec.recipients == [
        Recipient(US, {"name": "Ann", "code": "1"}, 0),
        Recipient(UK, {"name": "Bo", "code": "42"}, 1),  # integers become strings
    ]


def test_recipient_without_vars() -> None:
    spec = parse(sms(recipients=[{"to": US}, {"to": UK, "vars": None}]))
    assert [r.vars for r in spec.recipients] == [None, None]


def test_duplicates_are_dropped_and_counted() -> None:
    spec = parse(sms(recipients=[US, UK, "+1 (415) 555-0100", {"to": US, "vars": {"x": "y"}}, DE, UK]))
    assert [(r.to, r.index) for r in spec.recipients] == [(US, 0), (UK, 1), (DE, 4)]
    assert spec.duplicates_dropped == 3


def test_non_string_numbers_are_refused() -> None:
    found = problems(sms(recipients=[14155550100, {"to": 14155550100}, {"vars": {}}]))
    assert [(p.field, p.index) for p in found] == [
        ("recipients[0]", 0),
        ("recipients[1].to", 1),
        ("recipients[2].to", 2),
    ]


@pytest.mark.parametrize(
    ("entry", "field", "reason"),
    [
        (42, "recipients[1]", "must be a phone number string or an object"),
        (None, "recipients[1]", "must be a phone number string or an object"),
        (["+14155550100"], "recipients[1]", "must be a phone number string or an object"),
        ({"to": UK, "name": "Ann"}, "recipients[1]", "unknown field(s) ['name']"),
        ({"number": UK}, "recipients[1]", "unknown field(s)"),
        ({}, "recipients[1].to", "is required"),
        ({"to": UK, "vars": "Ann"}, "recipients[1].vars", "must be an object"),
        ({"to": UK, "vars": ["Ann"]}, "recipients[1].vars", "must be an object"),
        ({"to": UK, "vars": {"price": 1.5}}, "recipients[1].vars", "'price' must be a string or an integer"),
        ({"to": UK, "vars": {"ok": True}}, "recipients[1].vars", "'ok' must be a string or an integer"),
        ({"to": UK, "vars": {"x": None}}, "recipients[1].vars", "'x' must be a string or an integer"),
        ({"to": UK, "vars": {"x": {"y": "z"}}}, "recipients[1].vars", "'x' must be a string or an integer"),
        ({"to": UK, "vars": {"x": "y" * 1601}}, "recipients[1].vars", "'x' is 1601 characters; at most 1600"),
        ({"to": UK, "vars": {f"v{i}": "x" for i in range(51)}}, "recipients[1].vars", "51 variables; at most 50"),
        ({"to": UK, "vars": {1: "x"}}, "recipients[1].vars", "variable names must be strings"),
    ],
)
def test_bad_recipient_entries(entry: Any, field: str, reason: str) -> None:
    found = problem(sms(recipients=[US, entry, US2]))
    assert (found.field, found.index) == (field, 1)
    assert reason in found.reason


def test_fifty_variables_of_1600_characters_are_fine() -> None:
    variables = {f"v{i}": "x" * 1600 for i in range(50)}
    assert parse(sms(recipients=[{"to": US, "vars": variables}])).recipients[0].vars == variables


def test_recipients_required_as_a_non_empty_list() -> None:
    assert problem(without(sms(), "recipients")).field == "recipients"
    assert problem(sms(recipients=US)).reason.startswith("is required")
    assert problem(sms(recipients=[])).reason == "needs at least one recipient"


def test_at_most_max_recipients_without_looking_at_each() -> None:
    found = problem(sms(recipients=["bad"] * 11), max_recipients=10)
    assert found == Problem("recipients", "has 11 recipients; at most 10 per batch")
    assert len(parse(sms(recipients=[US, UK]), max_recipients=2).recipients) == 2


# -- the body, rendered for each recipient


def test_missing_variables_are_reported_per_recipient() -> None:
    found = problems(
        sms(
            body="Hi {name}, your code is {code}",
            recipients=[
                {"to": US, "vars": {"name": "Ann", "code": "1"}},
                {"to": UK, "vars": {"name": "Bo"}},
                DE,
                {"to": FR, "vars": {"Name": "Cy", "code": "3"}},
            ],
        )
    )
    assert found == [
        Problem("recipients[1].vars", "missing variable(s) used by body: code", 1),
        Problem("recipients[2].vars", "missing variable(s) used by body: name, code", 2),
        Problem("recipients[3].vars", "missing variable(s) used by body: name", 3),
    ]


def test_body_limit_is_1600_characters_after_rendering() -> None:
    body = "x" * 1590 + "{name}"
    spec = parse(sms(body=body, recipients=[{"to": US, "vars": {"name": "y" * 10}}, {"to": UK, "vars": {"name": ""}}]))
    assert len(spec.render_body(spec.recipients[0].vars)) == 1600
    found = problem(
        sms(body=body, recipients=[{"to": US, "vars": {"name": "y" * 10}}, {"to": UK, "vars": {"name": "y" * 11}}])
    )
    assert found == Problem("body", "renders to 1601 characters for this recipient; at most 1600", 1)


def test_body_limit_counts_escapes_once_and_every_use_of_a_variable() -> None:
    body = "{{" * 1000 + "{a}{a}"  # 1000 literal braces plus two copies of a
    assert parse(sms(body=body, recipients=[{"to": US, "vars": {"a": "z" * 300}}])).recipients
    found = problem(sms(body=body, recipients=[{"to": US, "vars": {"a": "z" * 301}}]))
    assert "renders to 1602 characters" in found.reason


def test_a_body_that_renders_empty_is_refused() -> None:
    found = problem(sms(body="{x}", recipients=[{"to": US, "vars": {"x": ""}}]))
    assert found == Problem("body", "renders to an empty body for this recipient", 0)


# -- recipients read from the request text


def _people(n: int) -> list[dict[str, Any]]:
    return [{"to": f"+1415555{2000 + i:04d}", "vars": {"name": f"P{i}", "code": str(i)}} for i in range(n)]


def _sms_batch(entries: list[Any]) -> dict[str, Any]:
    return sms(body="Hi {name}, code {code}", recipients=entries)  # recipients stays the last member


def test_streamed_and_listed_recipients_are_validated_alike() -> None:
    entries: list[Any] = [*_people(3), "+1555", "+14155552000", {"to": "+14155550109"}, 7]
    for extra, accepted, indexes in (({}, [0, 1, 2], [3, 5, 6]), ({"priority": "nope"}, [], [None, 3, 5, 6])):
        payload = {**extra, **_sms_batch(entries)}  # recipients last, as load_request reads them lazily
        found = []
        for intake in (BatchIntake(payload), BatchIntake(load_request(json.dumps(payload)))):
            # accepted recipients are handed out until the first problem (the writer stops there)
            assert [r.index for r in recipients(intake)] == accepted
            with pytest.raises(ValidationFailed) as info:
                intake.finish()
            found.append(info.value.problems)
        assert found[0] == found[1]
        assert [p.index for p in found[0]] == indexes
    empty = BatchIntake(load_request(json.dumps(_sms_batch([]))))
    assert recipients(empty) == []
    with pytest.raises(ValidationFailed) as info:
        empty.finish()
    assert [p.reason for p in info.value.problems] == ["needs at least one recipient"]


# -- speed


def _distinct_numbers(n: int) -> list[str]:
    """Realistic distinct US, UK and German mobile/landline numbers, all from ranges that are valid."""
    rng = random.Random(20261122)
    area_codes = [201, 212, 213, 310, 312, 415, 617, 646, 702, 718, 773, 818, 917, 972, 404, 305, 206, 503]
    out: dict[str, None] = {}
    while len(out) < n:
        kind = rng.random()
        if kind < 0.5:
            number = f"+1{rng.choice(area_codes)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        elif kind < 0.8:
            number = f"+447{rng.choice('58')}{rng.randint(0, 99999999):08d}"
        else:
            number = f"+4915{rng.choice('12579')}{rng.randint(0, 99999999):08d}"
        out[number] = None
    return list(out)


def test_the_speed_sample_is_valid_by_phonenumbers() -> None:
    for number in _distinct_numbers(2000):
        assert phonenumbers.is_valid_number(phonenumbers.parse(number)), number


def test_100k_recipients_validate_quickly() -> None:
    numbers = _distinct_numbers(100_000)
    recipients = [{"to": n, "vars": {"name": "Ann", "code": str(i)}} for i, n in enumerate(numbers)]
    started = time.perf_counter()
    spec = parse(sms(body="Hi {name}, your code is {code}", recipients=recipients))
    elapsed = time.perf_counter() - started
    assert len(spec.recipients) == len(numbers)
    # the reference, on this machine now: parsing and checking each number with phonenumbers, timed on
    # a sample and scaled to all. The whole validation costs less than that alone; a return to parsing
    # each number would cost that and more
    sample = numbers[:5000]
    started = time.perf_counter()
    for number in sample:
        phonenumbers.is_valid_number(phonenumbers.parse(number))
    per_number = (time.perf_counter() - started) * len(numbers) / len(sample)
    assert elapsed < per_number, (elapsed, per_number)
