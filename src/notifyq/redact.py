"""Secrets out of text: the password of a URL, and secret-named query parameters, hidden.

Redis and database URLs may carry a password (``redis://:pw@host``, ``postgresql://user:pw@host``,
``?password=pw``). Whatever names a URL to a person (a log line, an error message, a settings repr)
shows it through ``mask_url`` or ``mask_secrets``.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"
# scheme://user:password@ : everything from the colon after the user to the last @ of the URL is hidden
# (an unencoded @ or / inside a password still hides the whole password, at worst some host with it)
_USERINFO: Final = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s'\"]*:)[^\s'\"]*@")
_QUERY_SECRET: Final = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|auth_token|api_key_secret)=)[^&#\s'\"]*", re.IGNORECASE
)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>{MASK}@", text))


def mask_url(url: str) -> str:
    """One URL, its password hidden: what a log line or an error message shows of it."""
    return mask_secrets(url)
