"""Message body templates: ``{name}`` placeholders filled from each recipient's variables.

The language is deliberately tiny, because the template comes from a producer and is applied
to up to a million recipients:

- ``{name}`` is replaced by the recipient's variable ``name``; names match ``[A-Za-z_][A-Za-z0-9_]*``.
- ``{{`` and ``}}`` stand for a literal ``{`` and ``}``.
- Nothing else: no attribute access (``{a.b}``), indexing (``{a[0]}``), conversions (``{a!r}``) or
  format specs (``{a:>10}``). ``str.format`` is never applied to user text, so a template cannot reach
  into Python objects or build huge strings through padding.

A template is compiled once into literal pieces and placeholder names; rendering is a join, and the
rendered length can be computed without building the string (the batch validator checks every
recipient against Twilio's 1,600-character body limit that way). Values are inserted as they are:
a value that itself contains ``{x}`` is not expanded again.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import TYPE_CHECKING, Final

from notifyq.errors import Problem, ValidationFailed

if TYPE_CHECKING:
    from collections.abc import Mapping

NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# an escaped brace, a {...} group with no brace inside, or a brace that is neither
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_MAX_PROBLEMS: Final = 10  # a template full of stray braces needs only a few examples


class Template:
    """A compiled body template; build it with :meth:`compile`."""

    __slots__ = ("_format", "_literals", "_names", "_values", "fixed_length", "names", "source")

    def __init__(self, source: str, literals: tuple[str, ...], names: tuple[str, ...]) -> None:
        self.source = source
        # literals[i] comes before names[i]; there is one more literal than names
        self._literals = literals
        self._names = names
        self.fixed_length = sum(map(len, literals))
        self.names = tuple(dict.fromkeys(names))  # distinct, in order of first use
        # rendering is two C calls: the values in placeholder order, then the literals %-formatted around them
        self._format = "%s".join(literal.replace("%", "%%") for literal in literals)
        self._values = itemgetter(*names, names[0]) if names else None  # always a tuple, even for one name

    @classmethod
    def compile(cls, source: str, *, field: str = "body") -> Template:
        """Parse ``source``; raise ValidationFailed (problems at ``field``) listing what is wrong with it."""
        literals: list[str] = []
        names: list[str] = []
        problems: list[Problem] = []
        piece: list[str] = []
        pos = 0
        for m in _TOKEN.finditer(source):
            piece.append(source[pos : m.start()])
            pos = m.end()
            token = m.group()
            if token in {"{{", "}}"}:
                piece.append(token[0])
            elif token in {"{", "}"}:
                problems.append(Problem(field, _stray_brace(token, m.start())))
            elif NAME.fullmatch(name := m.group(1)):
                literals.append("".join(piece))
                piece = []
                names.append(name)
            else:
                problems.append(Problem(field, _bad_placeholder(token, m.start())))
        piece.append(source[pos:])
        literals.append("".join(piece))
        if problems:
            extra = len(problems) - _MAX_PROBLEMS
            problems = problems[:_MAX_PROBLEMS]
            if extra > 0:
                problems.append(Problem(field, f"{extra} more template problem(s) not listed"))
            raise ValidationFailed(problems)
        return cls(source, tuple(literals), tuple(names))

    @property
    def has_placeholders(self) -> bool:
        """Whether the rendered text depends on the recipient."""
        return bool(self._names)

    def render(self, variables: Mapping[str, str] | None) -> str:
        """The text for one recipient; KeyError names a variable the recipient lacks."""
        values = self._values
        if values is None:
            return self._literals[0]
        if variables is None:
            raise KeyError(self._names[0])
        text: str = self._format % values(variables)[:-1]
        return text

    def rendered_length(self, variables: Mapping[str, str] | None) -> int | None:
        """``len(render(variables))`` without building the text; None when a variable is missing."""
        if not self._names:
            return self.fixed_length
        if variables is None:
            return None
        try:
            return self.fixed_length + sum(map(len, map(variables.__getitem__, self._names)))
        except KeyError:
            return None

    def missing(self, variables: Mapping[str, str] | None) -> list[str]:
        """The placeholder names ``variables`` does not supply, in order of first use."""
        if variables is None:
            return list(self.names)
        return [name for name in self.names if name not in variables]

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def _stray_brace(brace: str, at: int) -> str:
    double = brace * 2
    return f"unmatched {brace!r} at character {at}; write {double!r} for a literal {brace!r}"


def _bad_placeholder(token: str, at: int) -> str:
    shown = token if len(token) <= 40 else token[:37] + "...}"
    return (
        f"placeholder {shown} at character {at} is not allowed: use {{name}} with a name of letters, digits "
        "and underscores (not starting with a digit); no attributes, indexes or format specs"
    )
