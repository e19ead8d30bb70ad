r"""Text a batch may carry: what can be encoded, stored and sent, in every string of the request.

Every string (a field, a variable's name or value, a metadata key or value) must be whole characters
(no lone surrogate: JSON can write one, ``"\ud800"``, but it has no UTF-8 form, so no form, row or log
line holding it can be encoded) without C0 control characters other than tab, line feed, form feed and
carriage return (GSM-7 has LF, CR and, escaped, FF; the rest have no place in a message or a TwiML
document, and PostgreSQL's text cannot hold NUL). Each function returns why a value breaks its rule,
worded to follow the value's name, or "" when it does not.
"""

from __future__ import annotations

import math
import re
from typing import Final
from urllib.parse import urlsplit

from notifyq.intake.problems import shown
from notifyq.intake.request import MAX_BODY_CHARS, MAX_URL_CHARS, MAX_VARS

_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
CONTROL_CHARS: Final = r"[\x00-\x08\x0b\x0e-\x1f]"  # the C0 controls text may not hold; a regex class
_CONTROL: Final = re.compile(CONTROL_CHARS)
# an integer variable with more bits than this has more than MAX_BODY_CHARS digits (log2(10) < 4)
_VAR_INT_BITS: Final = 4 * MAX_BODY_CHARS


def text_problem(text: str) -> str:
    """Why ``text`` cannot be sent or stored as it is, or "" when it can."""
    if text.isprintable():  # one C pass, and true for almost every value
        return ""
    if (m := _SURROGATE.search(text)) is not None:
        at = f"(U+{ord(m.group()):04X}) at character {m.start()}"
        return f"holds a lone surrogate {at}: text needs whole characters to be sent as UTF-8"
    if (m := _CONTROL.search(text)) is not None:
        return f"holds the control character U+{ord(m.group()):04X} at character {m.start()}"
    return ""


def url_problem(url: object) -> str:
    """Why ``url`` is not an absolute http(s) URL Twilio can fetch."""
    if not isinstance(url, str):
        return "must be a URL string"
    if len(url) > MAX_URL_CHARS:
        return f"is {len(url)} characters; at most {MAX_URL_CHARS}"
    return text_problem(url) or _url_shape_problem(url)


def _url_shape_problem(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an absolute http or https URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain spaces or control characters"
    return ""


def vars_problem(variables: object) -> str:
    """Why a recipient's ``vars`` cannot fill a body: not an object of names to strings or integers."""
    if not isinstance(variables, dict):
        return "must be an object of name: value"
    if len(variables) > MAX_VARS:
        return f"has {len(variables)} variables; at most {MAX_VARS}"
    for name, value in variables.items():
        if not isinstance(name, str):
            return "variable names must be strings"
        if reason := text_problem(name):
            return f"the variable name {shown(name)} {reason}"
        if reason := _var_value_problem(value):
            return f"{shown(name)} {reason}"
    return ""


def _var_value_problem(value: object) -> str:
    """Why a variable's value cannot go into a body, worded to follow the variable's name ("" if it can)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "must be a string or an integer (send decimals as strings to keep their format)"
    if isinstance(value, int) and value.bit_length() > _VAR_INT_BITS:
        return f"has more than {MAX_BODY_CHARS} digits"  # and str() may refuse it: Python's digit limit
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_BODY_CHARS:
        return f"is {len(text)} characters; at most {MAX_BODY_CHARS}"
    return text_problem(text)


def json_problem(value: object, max_depth: int) -> str:
    """Why ``value`` is not plain JSON of text that can be stored, nested at most ``max_depth`` deep ("" if it is).

    Walked with a list, not recursion: a client can nest deeper than Python's recursion limit.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            reason = _json_scalar_problem(item)
        elif depth > max_depth:
            reason = f"is nested more than {max_depth} levels deep"
        elif isinstance(item, list):
            stack.extend((member, depth + 1) for member in item)
            continue
        else:
            reason = next(filter(None, map(_json_key_problem, item)), "")
            stack.extend((member, depth + 1) for member in item.values())
        if reason:
            return reason
    return ""


def _json_key_problem(key: object) -> str:
    if not isinstance(key, str):
        return "must be plain JSON: object keys are strings"
    reason = text_problem(key)
    return f"key {shown(key)} {reason}" if reason else ""


def _json_scalar_problem(item: object) -> str:
    if isinstance(item, str):
        reason = text_problem(item)
        return f"value {shown(item)} {reason}" if reason else ""
    if isinstance(item, float) and not math.isfinite(item):
        return "must be plain JSON"
    if item is None or isinstance(item, int | float):  # bool is an int
        return ""
    return "must be plain JSON"
