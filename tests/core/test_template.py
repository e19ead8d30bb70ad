"""Body templates: {name} placeholders, {{ }} escapes, and nothing that reaches into Python.

The behaviour is the documented one: the README ("a template with `{name}` placeholders filled from each
recipient's `vars`; `{{` and `}}` for literal braces"; a recipient missing a variable is a 422 naming it)
and template.py's docstring (plain names only; values inserted as they are, never expanded again).
The properties compare rendering with a naive expansion written here, not with the module's own pieces.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyq.errors import ValidationFailed
from notifyq.template import Template


def reasons(source: str) -> list[str]:
    with pytest.raises(ValidationFailed) as exc:
        Template.compile(source)
    return [p.reason for p in exc.value.problems]


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("plain text", {}, "plain text"),
        ("", {}, ""),
        ("Hi {name}", {"name": "Ann"}, "Hi Ann"),
        ("{a}{b}{a}", {"a": "1", "b": "2"}, "121"),
        ("Hi {name}, code {code}.", {"name": "Ann", "code": "123"}, "Hi Ann, code 123."),
        ("{_x9}", {"_x9": "ok"}, "ok"),
        ("{{literal}}", {}, "{literal}"),
        ("{{{name}}}", {"name": "Ann"}, "{Ann}"),
        ("a {{ b }} c", {}, "a { b } c"),
        ("}}{{", {}, "}{"),
        ("Grüße {name} 👋", {"name": "Zoë"}, "Grüße Zoë 👋"),
        ("unused vars are fine", {"x": "y"}, "unused vars are fine"),
    ],
)
def test_renders(source: str, variables: dict[str, str], expected: str) -> None:
    template = Template.compile(source)
    assert template.render(variables) == expected
    assert template.rendered_length(variables) == len(expected)


def test_values_are_not_expanded_again() -> None:
    template = Template.compile("Hi {name}")
    assert template.render({"name": "{secret} {{ {0.__class__}"}) == "Hi {secret} {{ {0.__class__}"


def test_names_in_order_of_first_use_without_repeats() -> None:
    template = Template.compile("{b} {a} {b}")
    assert template.names == ("b", "a")
    assert template.has_placeholders
    assert not Template.compile("no {{placeholders}}").has_placeholders


def test_fixed_length_counts_literals_after_unescaping() -> None:
    assert Template.compile("{{ab}} {x}").fixed_length == len("{ab} ")


def test_missing_variables() -> None:
    template = Template.compile("{a} {b} {c} {a}")
    assert template.missing({"b": "1"}) == ["a", "c"]
    assert template.missing(None) == ["a", "b", "c"]
    assert template.missing({"a": "", "b": "", "c": ""}) == []
    assert template.rendered_length({"b": "1"}) is None
    assert template.rendered_length(None) is None
    with pytest.raises(KeyError, match="a"):
        template.render({"b": "1", "c": "2"})
    with pytest.raises(KeyError):
        template.render(None)


def test_no_placeholders_needs_no_variables() -> None:
    template = Template.compile("static")
    assert template.render(None) == "static"
    assert template.rendered_length(None) == 6
    assert template.missing(None) == []


@pytest.mark.parametrize(
    "source",
    [
        "{0}",
        "{}",
        "{ name }",
        "{name.attr}",
        "{name[0]}",
        "{name!r}",
        "{name:>10}",
        "{9lives}",
        "{na-me}",
        "{0.__class__.__mro__}",
        "{naïve}",
    ],
)
def test_rejects_anything_but_plain_names(source: str) -> None:
    (reason,) = reasons(source)
    assert "is not allowed" in reason
    assert "character 0" in reason


@pytest.mark.parametrize(
    ("source", "brace", "at"),
    [("Hi {name", "{", 3), ("Hi name}", "}", 7), ("a } b", "}", 2), ("{", "{", 0), ("x {{{ y", "{", 4)],
)
def test_rejects_unmatched_braces(source: str, brace: str, at: int) -> None:
    (reason,) = reasons(source)
    assert f"unmatched {brace!r} at character {at}" in reason
    assert repr(brace * 2) in reason


def test_reports_every_problem_up_to_a_cap() -> None:
    assert len(reasons("{a.b} and } and {0}")) == 3
    many = reasons("} " * 25)
    assert len(many) == 11
    assert many[-1] == "15 more template problem(s) not listed"


def test_problems_carry_the_field() -> None:
    with pytest.raises(ValidationFailed) as exc:
        Template.compile("{", field="twiml")
    assert exc.value.problems[0].field == "twiml"
    assert exc.value.problems[0].index is None


def test_long_bad_placeholder_is_shortened_in_the_reason() -> None:
    (reason,) = reasons("{" + "x." * 100 + "}")
    assert len(reason) < 300


def test_equality_by_source() -> None:
    assert Template.compile("Hi {a}") == Template.compile("Hi {a}")
    assert Template.compile("Hi {a}") != Template.compile("Hi {b}")
    assert Template.compile("x") != "x"
    assert len({Template.compile("x"), Template.compile("x")}) == 1
    assert repr(Template.compile("Hi {a}")) == "Template('Hi {a}')"


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
texts = st.text(max_size=20)


@given(st.lists(st.one_of(texts.map(lambda t: ("text", t)), names.map(lambda n: ("name", n))), max_size=8), texts)
def test_rendering_matches_a_naive_expansion(pieces: list[tuple[str, str]], value: str) -> None:
    source = "".join(p.replace("{", "{{").replace("}", "}}") if kind == "text" else "{" + p + "}" for kind, p in pieces)
    expected = "".join(p if kind == "text" else value for kind, p in pieces)
    variables = {p: value for kind, p in pieces if kind == "name"}
    template = Template.compile(source)
    assert template.render(variables) == expected
    assert template.rendered_length(variables) == len(expected)


@given(st.text(max_size=40))
def test_escaped_text_renders_to_itself(text: str) -> None:
    template = Template.compile(text.replace("{", "{{").replace("}", "}}"))
    assert template.render({}) == text
    assert not template.has_placeholders


@given(st.text(alphabet="{}ab.:!0 ", max_size=20))
def test_any_text_compiles_or_fails_with_reasons(text: str) -> None:
    problems = []
    template = None
    try:
        template = Template.compile(text)
    except ValidationFailed as exc:
        problems = exc.problems
    if template is None:
        assert problems
        assert all(p.field == "body" and p.reason for p in problems)
    else:
        variables = dict.fromkeys(template.names, "v")
        assert template.rendered_length(variables) == len(template.render(variables))
