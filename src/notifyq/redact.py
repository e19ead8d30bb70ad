"""Secrets out of text: the password of a URL, secret-named query parameters, HTTP credentials.

Redis and database URLs may carry a password (``redis://:pw@host``, ``postgresql://user:pw@host``,
``?password=pw``). Whatever names a URL to a person (a log line, an error message, a settings repr)
shows it through ``mask_url`` or ``mask_secrets``. An ``Authorization`` header's credentials
(``Basic ...``, ``Bearer ...``) that reach a text, in some library's repr of a request, are hidden too.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"
# scheme://user:password@ : everything from the colon after the user to the last @ of the URL is hidden
# (an unencoded @ or / inside a password still hides the whole password, at worst some host with it)
_USERINFO: Final = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s'\"]*:)[^\s'\"]*@")
# credentials are long (base64 of "SID:token", a token); a short word after "Basic" is prose
_CREDENTIALS: Final = re.compile(r"\b(?P<head>Basic|Bearer) [A-Za-z0-9+/=._~-]{16,}")
_LOOK_FOR: Final = ("://", "=", "Basic ", "Bearer ")
_QUERY_SECRET: Final = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|auth_token|api_key_secret|sentinel_password)=)[^&#\s'\"]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it, and any HTTP credentials, replaced by ``***``."""
    if not any(marker in text for marker in _LOOK_FOR):
        return text
    text = _USERINFO.sub(rf"\g<head>{MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)
    return _CREDENTIALS.sub(rf"\g<head> {MASK}", text)


def mask_url(url: str) -> str:
    """One URL, its password hidden: what a log line or an error message shows of it."""
    return mask_secrets(url)
