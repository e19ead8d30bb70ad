"""Reading a request's text: the ``recipients`` array one element at a time, the rest as ``json.loads`` does.

A batch of a million recipients is validated and stored as its text is read, so the list never exists
as Python objects. :func:`load_request` parses the members before the array and leaves the array to a
:class:`RecipientArray`; a request with members after ``recipients`` raises :class:`RecipientsNotLast`
when the iteration reaches them, and is then read whole with :func:`decode_json`. Text that is not
JSON notifyq can read raises one of :data:`MALFORMED_JSON`, wherever in the request it is met.
"""

from __future__ import annotations

import json
import json.scanner
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

_WS: Final = re.compile(r"[ \t\n\r]+")
_WS_CHARS: Final = frozenset(" \t\n\r")
# the C scanner behind json.loads: (text, index) -> (value, end); StopIteration where no value starts
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _ws(text: str, pos: int) -> int:
    """``pos`` moved past JSON whitespace."""
    m = _WS.match(text, pos)
    return pos if m is None else m.end()


class RecipientsNotLast(Exception):
    """The request has members after its ``recipients`` array: read it with :func:`decode_json` instead."""


class UnreadableJson(ValueError):
    """Well-formed JSON that Python will not read: a number too long for ``int``, or nesting too deep."""


MALFORMED_JSON: Final = (json.JSONDecodeError, UnreadableJson)
"""What reading a request's text raises for text that is not JSON notifyq can read: a 400, never a 500."""


def _unreadable(exc: ValueError | RecursionError, text: str, pos: int | None) -> UnreadableJson:
    if isinstance(exc, RecursionError):
        what = "arrays or objects are nested too deeply"
    else:  # the only ValueError the scanner raises that is not a JSONDecodeError: int()'s digit limit
        what = f"a number has more than {sys.get_int_max_str_digits()} digits"
    # JSONDecodeError's own wording of where: "...: line 1 column 5 (char 4)"
    return UnreadableJson(what if pos is None else str(json.JSONDecodeError(what, text, pos)))


def decode_json(text: str) -> Any:
    """``json.loads(text)``, raising only what :data:`MALFORMED_JSON` names for text it cannot read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _unreadable(exc, text, None) from None


class RecipientArray:
    """The ``recipients`` array of a request's text, parsed one element at a time as it is iterated.

    Made by :func:`load_request` only when the array is the request's last member (checked when the
    iteration reaches its end: :class:`RecipientsNotLast` otherwise). A malformed element raises
    ``json.JSONDecodeError`` where it is met, an unreadable one (a number too long, nesting too deep)
    :class:`UnreadableJson`.
    """

    __slots__ = ("_start", "_text")

    def __init__(self, text: str, start: int) -> None:
        self._text = text
        self._start = start  # the "["

    def __iter__(self) -> Iterator[Any]:
        text, ws, scan = self._text, _ws, _SCAN
        pos = ws(text, self._start + 1)
        if text.startswith("]", pos):
            pos += 1
        else:
            while True:
                try:
                    item, pos = scan(text, pos)
                except StopIteration as e:
                    raise json.JSONDecodeError("Expecting value", text, e.value) from None
                except json.JSONDecodeError:
                    raise
                except (ValueError, RecursionError) as e:
                    raise _unreadable(e, text, pos) from None
                yield item
                if text.startswith(",", pos):  # as json.dumps writes it: ", " or "," right after the element
                    pos += 2 if text.startswith(" ", pos + 1) else 1
                    if text[pos : pos + 1] in _WS_CHARS:
                        pos = ws(text, pos)
                    continue
                pos = ws(text, pos)
                if text.startswith(",", pos):
                    pos = ws(text, pos + 1)
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        _expect_end(text, pos)


def _expect_end(text: str, pos: int) -> None:
    """Raise RecipientsNotLast unless only the object's ``}`` follows ``pos``."""
    pos = _ws(text, pos)
    if not (text.startswith("}", pos) and _ws(text, pos + 1) == len(text)):
        raise RecipientsNotLast


def load_request(text: str) -> Any:
    """``json.loads(text)``, except that a ``recipients`` array that ends the object is left unparsed.

    It becomes a :class:`RecipientArray`, so the batch is validated (and stored) as it is read and the
    whole list of recipients never exists as Python objects. The members before it are parsed as usual.
    Anything unusual in those members is left to :func:`decode_json`, which raises what
    :data:`MALFORMED_JSON` names.
    """
    ws = _ws
    pos = ws(text, 0)
    if not text.startswith("{", pos):
        return decode_json(text)
    out: dict[str, Any] = {}
    pos = ws(text, pos + 1)
    while text.startswith('"', pos):
        key, pos = _SCAN(text, pos)
        pos = ws(text, pos)
        if not text.startswith(":", pos):
            break
        pos = ws(text, pos + 1)
        if key == "recipients" and text.startswith("[", pos):
            out[key] = RecipientArray(text, pos)
            return out
        try:
            out[key], pos = _SCAN(text, pos)
        except (StopIteration, ValueError, RecursionError):
            break
        pos = ws(text, pos)
        if not text.startswith(",", pos):
            break
        pos = ws(text, pos + 1)
    return decode_json(text)  # no recipients array last (or malformed): the ordinary way, with its errors
