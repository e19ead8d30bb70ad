"""The batch request's published schema and intake agree: on every example, and at every constraint's edge.

Each case sets one member of a request intake accepts to a value just inside a constraint of the
schema and to one just outside it: the schema and ``BatchIntake`` must both accept the first and both
refuse the second. ``test_every_constraint_has_a_case`` walks the schema, so a constraint added
without its case fails.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from intake.helpers import AP, MG, NOW
from notifyq.api.examples import BATCH_EXAMPLES
from notifyq.errors import ValidationFailed
from notifyq.intake import BatchIntake
from notifyq.intake.request import (
    CALL_ONLY,
    FIELDS,
    MAX_BODY_CHARS,
    MAX_BODY_SOURCE_CHARS,
    MAX_IDEMPOTENCY_KEY,
    MAX_MEDIA,
    MAX_TIMEOUT_S,
    MAX_TWIML_CHARS,
    MAX_URL_CHARS,
    MAX_VALIDITY_S,
    MAX_VARS,
)
from notifyq.intake.schema import batch_request_schema

MAX_RECIPIENTS: Final = 5
ACCOUNTS: Final = ("main", "backup")
SCHEMA: Final = batch_request_schema(max_recipients=MAX_RECIPIENTS, accounts=ACCOUNTS)
VALIDATOR: Final = Draft202012Validator(SCHEMA)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()  # the member taken out
SENDER: Final = "+15005550006"

SMS: Final = {
    "channel": "sms",
    "from": SENDER,
    "body": "Hi {name}",
    "recipients": [{"to": "+14155550100", "vars": {"name": "Ann"}}],
}
MMS: Final = {
    "channel": "mms",
    "from": SENDER,
    "media_url": ["https://example.com/a.png"],
    "recipients": ["+14155550100"],
}
CALL: Final = {"channel": "call", "from": SENDER, "url": "https://example.com/t.xml", "recipients": ["+14155550100"]}
BASES: Final = {"sms": SMS, "mms": MMS, "call": CALL}


def accepted_by_intake(payload: dict[str, Any]) -> bool:
    intake = BatchIntake(payload, max_recipients=MAX_RECIPIENTS, accounts=ACCOUNTS, now=NOW)
    for _ in intake.accepted():
        pass
    try:
        intake.finish()
    except ValidationFailed:
        return False
    return True


def with_value(base: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    payload = copy.deepcopy(base)
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    if value is ABSENT:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return payload


@dataclass(frozen=True)
class Case:
    covers: tuple[str, ...]  # the schema's constraints (JSON pointers) the case sits at the edge of
    base: str
    path: tuple[str | int, ...]
    inside: object
    outside: object
    extra: tuple[tuple[str, object], ...] = ()  # members of the base changed first

    def request(self, value: object) -> dict[str, Any]:
        base = BASES[self.base]
        for name, changed in self.extra:
            base = with_value(base, (name,), changed)
        return with_value(base, self.path, value)


def _numbers(n: int) -> list[str]:
    return [f"+1415555{100 + i:04d}" for i in range(n)]


def _urls(n: int) -> list[str]:
    return [f"https://example.com/{i}.png" for i in range(n)]


def _long_url(n: int) -> str:
    return "https://example.com/" + "a" * (n - len("https://example.com/"))


P = "/properties"
R = "/properties/recipients/items/anyOf"
V = f"{R}/1/properties/vars"
CTRL = "a\x01b"  # a C0 control character intake refuses; tab, LF, FF and CR it takes
TEXT_OK = "a\tb\nc"
NO_URL = (("url", None),)
VARS_50 = {"name": "Ann"} | {f"v{i}": "x" for i in range(MAX_VARS - 1)}

CASES: Final = [
    Case(("/required",), "sms", ("channel",), "sms", ABSENT),
    Case(("/required",), "mms", ("recipients",), ["+14155550100"], ABSENT),
    Case(("/additionalProperties",), "sms", ("channels",), ABSENT, None),
    Case((f"{P}/channel/enum",), "sms", ("channel",), "sms", "fax"),
    Case((f"{P}/account/enum",), "sms", ("account",), "backup", "other"),
    Case((f"{P}/from/anyOf/0/pattern",), "sms", ("from",), "+1 (500) 555-0006", "+1 500 555 0006x"),
    Case((f"{P}/from/anyOf/0/pattern",), "sms", ("from",), "+15005550006", "+1500555000612345"),
    Case((f"{P}/from/anyOf/0/maxLength",), "sms", ("from",), SENDER.ljust(64), SENDER.ljust(65)),
    Case((f"{P}/from/anyOf/1/pattern",), "sms", ("from",), "123456", "1234567"),
    Case((f"{P}/from/anyOf/1/pattern",), "sms", ("from",), "12345", "1234"),
    Case((f"{P}/from/anyOf/2/pattern",), "sms", ("from",), "MyBrand1234", "MyBrand12345"),
    Case((f"{P}/from/anyOf/2/pattern",), "sms", ("from",), "My Brand", "My_Brand"),
    Case((f"{P}/from/anyOf/2/pattern",), "sms", ("from",), "A 1", " A1"),
    Case((f"{P}/from/anyOf/2/pattern",), "sms", ("from",), "1 A", "12 34"),
    Case((f"{P}/messaging_service_sid/pattern",), "sms", ("messaging_service_sid",), MG, MG[:-1]),
    Case((f"{P}/messaging_service_sid/pattern",), "sms", ("messaging_service_sid",), MG, "MX" + MG[2:]),
    Case((f"{P}/body/minLength",), "sms", ("body",), "x", ""),
    Case((f"{P}/body/pattern",), "sms", ("body",), TEXT_OK, CTRL),
    Case((f"{P}/body/pattern",), "sms", ("body",), " x ", " \t\n "),
    Case(
        (f"{P}/body/maxLength",),
        "sms",
        ("body",),
        "x" + "{name}" * ((MAX_BODY_SOURCE_CHARS - 1) // 6) + "y" * ((MAX_BODY_SOURCE_CHARS - 1) % 6),
        "x" + "{name}" * ((MAX_BODY_SOURCE_CHARS - 1) // 6) + "y" * ((MAX_BODY_SOURCE_CHARS - 1) % 6 + 1),
        extra=(("recipients", [{"to": "+14155550100", "vars": {"name": ""}}]),),
    ),
    Case((f"{P}/media_url/minItems",), "mms", ("media_url",), _urls(1), []),
    Case((f"{P}/media_url/maxItems",), "mms", ("media_url",), _urls(MAX_MEDIA), _urls(MAX_MEDIA + 1)),
    Case(
        (f"{P}/media_url/items/maxLength",),
        "mms",
        ("media_url", 0),
        _long_url(MAX_URL_CHARS),
        _long_url(MAX_URL_CHARS + 1),
    ),
    Case(
        (f"{P}/media_url/items/pattern",),
        "mms",
        ("media_url", 0),
        "HTTP://example.com/a.png",
        "ftp://example.com/a.png",
    ),
    Case(
        (f"{P}/media_url/items/pattern",),
        "mms",
        ("media_url", 0),
        "https://example.com/a.png",
        "https://example.com/a b.png",
    ),
    Case((f"{P}/url/pattern",), "call", ("url",), "https://example.com", "example.com/t.xml"),
    Case((f"{P}/url/maxLength",), "call", ("url",), _long_url(MAX_URL_CHARS), _long_url(MAX_URL_CHARS + 1)),
    Case((f"{P}/twiml/minLength",), "call", ("twiml",), "<Response/>", "", NO_URL),
    Case((f"{P}/twiml/maxLength",), "call", ("twiml",), "x" * MAX_TWIML_CHARS, "x" * (MAX_TWIML_CHARS + 1), NO_URL),
    Case((f"{P}/twiml/pattern",), "call", ("twiml",), TEXT_OK, CTRL, NO_URL),
    Case((f"{P}/application_sid/pattern",), "call", ("application_sid",), AP, AP + "0", NO_URL),
    Case(
        ("/allOf/0/then/oneOf/1/required", "/allOf/0/then/oneOf/1/properties/twiml/type"),
        "call",
        ("twiml",),
        "<Response/>",
        None,
        NO_URL,
    ),
    Case(
        ("/allOf/0/then/oneOf/2/required", "/allOf/0/then/oneOf/2/properties/application_sid/type"),
        "call",
        ("application_sid",),
        AP,
        ABSENT,
        NO_URL,
    ),
    Case((f"{P}/status_callback_event/items/enum",), "call", ("status_callback_event",), ["answered"], ["hungup"]),
    Case((f"{P}/machine_detection/enum",), "call", ("machine_detection",), "DetectMessageEnd", "enable"),
    Case((f"{P}/timeout/minimum",), "call", ("timeout",), 1, 0),
    Case((f"{P}/timeout/maximum",), "call", ("timeout",), MAX_TIMEOUT_S, MAX_TIMEOUT_S + 1),
    Case((f"{P}/recipients/minItems",), "mms", ("recipients",), _numbers(1), []),
    Case((f"{P}/recipients/maxItems",), "mms", ("recipients",), _numbers(MAX_RECIPIENTS), _numbers(MAX_RECIPIENTS + 1)),
    Case((f"{R}/0/maxLength",), "mms", ("recipients", 0), "+14155550100".ljust(64), "+14155550100".ljust(65)),
    Case((f"{R}/0/pattern",), "mms", ("recipients", 0), " (+1) 415.555-0100", "14155550100"),
    Case((f"{R}/0/pattern",), "mms", ("recipients", 0), "+1 415 555 0100", "+1 415 555 0100 ext"),
    Case((f"{R}/1/required",), "sms", ("recipients", 0, "to"), "+14155550100", ABSENT),
    Case((f"{R}/1/additionalProperties",), "sms", ("recipients", 0, "name"), ABSENT, "Ann"),
    Case(
        (f"{R}/1/properties/to/maxLength",),
        "sms",
        ("recipients", 0, "to"),
        "+14155550100".ljust(64),
        "+14155550100".ljust(65),
    ),
    Case((f"{R}/1/properties/to/pattern",), "sms", ("recipients", 0, "to"), "+1-415-555-0100", "+1/415/555/0100"),
    Case((f"{V}/maxProperties",), "sms", ("recipients", 0, "vars"), VARS_50, VARS_50 | {"extra": "x"}),
    Case(
        (f"{V}/propertyNames/pattern",),
        "sms",
        ("recipients", 0, "vars"),
        {"name": "A", "a\tb": "x"},
        {"name": "A", CTRL: "x"},
    ),
    Case(
        (f"{V}/additionalProperties/anyOf/0/maxLength",),
        "sms",
        ("recipients", 0, "vars", "name"),
        "n" * (MAX_BODY_CHARS - 3),
        "n" * (MAX_BODY_CHARS + 1),
    ),
    Case((f"{V}/additionalProperties/anyOf/0/pattern",), "sms", ("recipients", 0, "vars", "name"), TEXT_OK, CTRL),
    Case((f"{V}/additionalProperties/anyOf/1/type",), "sms", ("recipients", 0, "vars", "name"), 12, 1.5),
    Case((f"{P}/idempotency_key/minLength",), "sms", ("idempotency_key",), "k", ""),
    Case(
        (f"{P}/idempotency_key/maxLength",),
        "sms",
        ("idempotency_key",),
        "k" * MAX_IDEMPOTENCY_KEY,
        "k" * (MAX_IDEMPOTENCY_KEY + 1),
    ),
    Case((f"{P}/idempotency_key/pattern",), "sms", ("idempotency_key",), TEXT_OK, CTRL),
    Case((f"{P}/priority/enum",), "sms", ("priority",), "urgent", "low"),
    Case((f"{P}/validity_s/minimum",), "sms", ("validity_s",), 1, 0),
    Case((f"{P}/validity_s/maximum",), "sms", ("validity_s",), MAX_VALIDITY_S, MAX_VALIDITY_S + 1),
    Case((f"{P}/validity_s/type",), "sms", ("validity_s",), 60, outside=True),
    Case((f"{P}/smart_encoded/type",), "sms", ("smart_encoded",), inside=False, outside="yes"),
    Case((f"{P}/timeout/type",), "call", ("timeout",), 30, "30"),
    Case((f"{P}/metadata/type",), "sms", ("metadata",), {"a": [1]}, [1]),
    Case((f"{P}/send_at/type",), "sms", ("send_at",), "2026-11-22T10:00:00Z", 1795341600),
    # the channel rules
    Case(("/allOf/0/then/required",), "call", ("from",), SENDER, ABSENT),
    Case(("/allOf/0/then/properties/from/pattern",), "call", ("from",), "+1 500 555 0006", "12345"),
    Case(("/allOf/0/then/properties/from/maxLength",), "call", ("from",), SENDER.ljust(64), SENDER.ljust(65)),
    Case(("/allOf/0/then/properties/from/type",), "call", ("from",), SENDER, "MyBrand"),
    Case(("/allOf/0/then/properties/messaging_service_sid/type",), "call", ("messaging_service_sid",), None, MG),
    Case(("/allOf/0/then/properties/body/type",), "call", ("body",), None, "Hi"),
    Case(("/allOf/0/then/properties/media_url/type",), "call", ("media_url",), None, _urls(1)),
    Case(("/allOf/0/then/properties/smart_encoded/type",), "call", ("smart_encoded",), inside=None, outside=True),
    Case(("/allOf/0/then/oneOf",), "call", ("twiml",), None, "<Response/>"),
    Case(("/allOf/0/then/oneOf",), "call", ("url",), "https://example.com/t.xml", ABSENT),
    Case(
        ("/allOf/0/then/oneOf/0/required", "/allOf/0/then/oneOf/0/properties/url/type"),
        "call",
        ("url",),
        "https://example.com/t.xml",
        None,
    ),
    *(
        Case((f"/allOf/1/then/properties/{name}/type",), "sms", (name,), None, value)
        for name, value in (
            ("url", "https://example.com/t.xml"),
            ("twiml", "<Response/>"),
            ("application_sid", AP),
            ("status_callback_event", ["ringing"]),
            ("machine_detection", "Enable"),
            ("timeout", 30),
        )
    ),
    Case(
        ("/allOf/1/then/anyOf", "/allOf/1/then/anyOf/0/required", "/allOf/1/then/anyOf/0/properties/from/type"),
        "sms",
        ("from",),
        SENDER,
        ABSENT,
    ),
    Case(
        ("/allOf/1/then/anyOf/1/required", "/allOf/1/then/anyOf/1/properties/messaging_service_sid/type"),
        "mms",
        ("messaging_service_sid",),
        MG,
        ABSENT,
        (("from", None),),
    ),
    Case(("/allOf/2/then/required", "/allOf/2/then/properties/body/type"), "sms", ("body",), "Hi {name}", None),
    Case(("/allOf/2/then/properties/media_url/type",), "sms", ("media_url",), None, _urls(1)),
    Case(("/allOf/3/then/required", "/allOf/3/then/properties/media_url/type"), "mms", ("media_url",), _urls(1), None),
    Case(
        (
            "/allOf/3/then/properties/from/anyOf",
            "/allOf/3/then/properties/from/anyOf/0/pattern",
            "/allOf/3/then/properties/from/anyOf/0/maxLength",
        ),
        "mms",
        ("from",),
        SENDER.ljust(64),
        "MyBrand",
    ),
    Case(
        (
            "/allOf/3/then/properties/from/anyOf/1/pattern",
            "/allOf/3/then/properties/from/anyOf/0/type",
            "/allOf/3/then/properties/from/anyOf/1/type",
            "/allOf/3/then/properties/from/anyOf/2/type",
        ),
        "mms",
        ("from",),
        "12345",
        "Brand",
    ),
]
CONSTRAINTS: Final = frozenset({
    "maxLength", "minLength", "pattern", "enum", "minimum", "maximum", "minItems", "maxItems", "maxProperties",
    "required", "additionalProperties", "oneOf",
})  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.covers[0]}:{c.outside!r}"[:90])
def test_schema_and_intake_agree_at_the_edge(case: Case) -> None:
    inside, outside = case.request(case.inside), case.request(case.outside)
    assert VALIDATOR.is_valid(inside), [e.message for e in VALIDATOR.iter_errors(inside)]
    assert accepted_by_intake(inside)
    assert not VALIDATOR.is_valid(outside)
    assert not accepted_by_intake(outside)


def _constraints(node: object, pointer: str = "") -> set[str]:
    """The pointers of the schema's constraints: the keywords above, and type and anyOf in the channel rules."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{pointer}/{key}"
            if "/if/" in here or key in {"examples", "description"}:
                continue
            takes_any = key == "additionalProperties" and value is not False
            if (key in CONSTRAINTS and not takes_any) or (key in {"type", "anyOf"} and "/allOf/" in here):
                found.add(here)
            found |= _constraints(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found |= _constraints(value, f"{pointer}/{i}")
    return found


def test_every_constraint_has_a_case() -> None:
    covered = {pointer for case in CASES for pointer in case.covers}
    missing = sorted(_constraints(SCHEMA) - covered)
    assert not missing, missing
    assert all(_resolves(pointer) for pointer in covered), [p for p in covered if not _resolves(p)]


def _resolves(pointer: str) -> bool:
    node: Any = SCHEMA
    for step in pointer.split("/")[1:]:
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return False
    return True


def test_the_schema_has_exactly_intakes_fields() -> None:
    assert set(SCHEMA["properties"]) == FIELDS
    assert set(CALL_ONLY) < FIELDS


@pytest.mark.parametrize("name", sorted(BATCH_EXAMPLES))
def test_every_documented_request_example_is_valid_and_accepted(name: str) -> None:
    value = BATCH_EXAMPLES[name]["value"]
    assert VALIDATOR.is_valid(value), [e.message for e in VALIDATOR.iter_errors(value)]
    assert accepted_by_intake(value)


@pytest.mark.parametrize("base", sorted(BASES))
def test_null_is_absent_for_every_optional_member(base: str) -> None:
    """Intake reads null as absent, and so does the schema: every optional member takes null."""
    required = set(SCHEMA["required"])
    for name in SCHEMA["properties"]:
        if name in required or name in BASES[base]:
            continue
        payload = with_value(BASES[base], (name,), None)
        assert VALIDATOR.is_valid(payload), name
        assert accepted_by_intake(payload), name


# -- anything intake accepts, the schema accepts: a client that follows the schema is never refused for it

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, MAX_VALIDITY_S + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([
        "sms", "mms", "call", "main", "bulk", "urgent", "Enable", "answered", SENDER, "+44 7911 123456",
        "12345", "MyBrand", MG, AP, "https://example.com/a.png", "<Response/>", "Hi {name}", "2026-11-22T10:00:00Z",
        "", " ", "\x01",
    ]),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
_MEMBERS = st.sampled_from([*SCHEMA["properties"], "extra"])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    base=st.sampled_from(sorted(BASES)),
    changes=st.lists(st.tuples(_MEMBERS, st.one_of(_VALUES, st.just(ABSENT))), max_size=3),
)
def test_what_intake_accepts_the_schema_accepts(base: str, changes: list[tuple[str, object]]) -> None:
    payload = BASES[base]
    for name, value in changes:
        payload = with_value(payload, (name,), value)
    if accepted_by_intake(payload):
        assert VALIDATOR.is_valid(payload), [e.message for e in VALIDATOR.iter_errors(payload)]
