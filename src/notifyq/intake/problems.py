"""The problems found in one batch request, collected rather than raised, so that all of them are listed.

Problems with the request's fields and with the recipient list as a whole come first, in the order
they are found; problems with single recipients follow, the first ``MAX_RECIPIENT_PROBLEMS`` of them
listed and the rest counted in one closing problem. A problem with the whole list (too many, or none)
is listed where the ``recipients`` field is read, even though it may be known only once the list has
been read to its end.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Final

from notifyq.errors import Problem

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_RECIPIENT_PROBLEMS: Final = 100

_SHOWN: Final = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 40
_SHOWN.maxlevel = 2
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 4
_NAME_SHOWN: Final = 64


class Problems:
    """Every problem of one request so far.

    ``general`` holds the problems with fields and with the recipient list as a whole;
    ``per_recipient`` the first ``MAX_RECIPIENT_PROBLEMS`` problems with single recipients, and
    ``recipient_count`` how many of those there are in all. Intake's loop reads the three directly.
    """

    __slots__ = ("_list_at", "general", "per_recipient", "recipient_count")

    def __init__(self) -> None:
        self.general: list[Problem] = []
        self.per_recipient: list[Problem] = []
        self.recipient_count = 0
        self._list_at = 0

    @property
    def found(self) -> bool:
        """Whether any problem has been found."""
        return bool(self.general or self.recipient_count)

    @property
    def listing(self) -> bool:
        """Whether a recipient problem found now is listed (rather than only counted)."""
        return len(self.per_recipient) < MAX_RECIPIENT_PROBLEMS

    def add(self, field: str, reason: str) -> None:
        """A problem with a field."""
        self.general.append(Problem(field, reason))

    def extend(self, problems: Iterable[Problem]) -> None:
        """Problems with fields, found elsewhere (a template's own)."""
        self.general.extend(problems)

    def recipient(self, field: str, reason: str, index: int) -> None:
        """A problem with the recipient at ``index``: listed while fewer than the cap are, counted always."""
        self.recipient_count += 1
        if len(self.per_recipient) < MAX_RECIPIENT_PROBLEMS:
            self.per_recipient.append(Problem(field, reason, index))

    def mark_list_place(self) -> None:
        """Remember this point as where problems with the recipient list as a whole are listed."""
        self._list_at = len(self.general)

    def add_list_problem(self, reason: str) -> None:
        """A problem with the recipient list as a whole, listed at the marked place."""
        self.general.insert(self._list_at, Problem("recipients", reason))

    def refuse_list(self, reason: str) -> None:
        """The recipient list refused as a whole: its single recipients' problems no longer count."""
        self.per_recipient.clear()
        self.recipient_count = 0
        self.add_list_problem(reason)

    def listed(self) -> list[Problem]:
        """Every problem in the order they are reported, unlisted recipient problems counted in the last."""
        problems = self.general + self.per_recipient
        more = self.recipient_count - len(self.per_recipient)
        if more > 0:
            problems.append(Problem("recipients", f"{more} more recipient problem(s) not listed"))
        return problems


def shown(value: object) -> str:
    """``repr(value)`` shortened, for quoting what a client sent in a problem (any size, any depth)."""
    return _SHOWN.repr(value)


def shown_name(name: object) -> str:
    """A field name as a problem's ``field``: the name itself unless it is too long to repeat."""
    text = str(name)
    return text if len(text) <= _NAME_SHOWN else text[: _NAME_SHOWN - 3] + "..."
