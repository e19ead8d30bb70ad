"""Twilio's form bodies (``application/x-www-form-urlencoded``): parsed as aiohttp's ``request.post()`` does.

Shared by the callback receiver and the simulator, which read every form Twilio or a sender posts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final
from urllib.parse import parse_qsl

# the content types read as a urlencoded form (aiohttp reads a body without one as such too)
FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")


class TooManyFields(ValueError):
    """A form with more fields than the app allows (``client_max_fields``)."""


# yarl's parser (what aiohttp's request.post() uses) gives parse_qsl's pairs, in C; older yarl lacks it
_pairs: Callable[..., list[tuple[str, str]]]
try:
    from yarl import query_to_pairs as _pairs
except ImportError:  # pragma: no cover - yarl < 1.18
    _pairs = partial(parse_qsl, keep_blank_values=True)


def parse_form(body: bytes, charset: str | None, *, max_fields: int = 0) -> list[tuple[str, str]]:
    """The (name, value) pairs of an ``application/x-www-form-urlencoded`` body, in order.

    As aiohttp's ``request.post()`` reads one (repeated names kept, blank values kept, ``+`` is a space,
    percent-escapes decoded in ``charset``, utf-8 when none), without building a MultiDict. Raises
    ``TooManyFields`` past ``max_fields`` fields (0: no limit), ``ValueError`` when the body is not text
    in ``charset``.
    """
    encoding = charset or "utf-8"
    try:
        query = body.rstrip().decode(encoding)
    except LookupError as exc:
        raise ValueError(f"unknown charset {encoding!r}") from exc
    if not query:
        return []
    if max_fields > 0 and query.count("&") >= max_fields:
        raise TooManyFields(f"Maximum number of form fields {max_fields} exceeded.")
    return _pairs(query, encoding=encoding)
