"""X-Twilio-Signature: HMAC-SHA1 over the URL Twilio called plus the sorted form parameters.

Twilio's own validator accepts the URL both with and without the scheme's default port, because
Twilio's signing side is inconsistent about it; so do we. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

FormItems = Iterable[tuple[str, str]]


def _items(params: Mapping[str, str] | FormItems) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        return [(str(k), str(v)) for k, v in params.items()]
    return [(str(k), str(v)) for k, v in params]


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | FormItems = ()) -> str:
    """The signature Twilio would send for a form POST of ``params`` to ``url``."""
    # each name once, in order, then its distinct values in order: (name, value) pairs sorted as a set
    payload = url + "".join(name + value for name, value in sorted(set(_items(params))))
    mac = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _port_forms(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with_port = urlunsplit((parts.scheme, f"{prefix}{host}:{port}", parts.path, parts.query, ""))
    without_port = urlunsplit((parts.scheme, f"{prefix}{host}", parts.path, parts.query, ""))
    return with_port, without_port


def is_valid_signature(auth_token: str, url: str, params: Mapping[str, str] | FormItems, signature: str | None) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and ``params`` (with or without the default port)."""
    if not signature:
        return False
    items = _items(params)
    given = signature.encode()
    # the URL as given first (one HMAC in the usual case), then its other port form
    if hmac.compare_digest(compute_signature(auth_token, url, items).encode(), given):
        return True
    with_port, without_port = _port_forms(url)
    other = without_port if url == with_port else with_port
    return hmac.compare_digest(compute_signature(auth_token, other, items).encode(), given)
