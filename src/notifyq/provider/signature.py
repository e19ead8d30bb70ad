"""X-Twilio-Signature: HMAC-SHA1 over the URL Twilio called plus the sorted form parameters.

Twilio's own validator accepts the URL both with and without the scheme's default port, because
Twilio's signing side is inconsistent about it; so do we. Comparison is constant-time.

A request with a JSON body is signed over its URL alone, and that URL carries the body's SHA-256
(hex) in its ``bodySHA256`` query parameter: the signature covers the hash, the hash the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

FormItems = Iterable[tuple[str, str]]


def _items(params: Mapping[str, str] | FormItems) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        return [(str(k), str(v)) for k, v in params.items()]
    return [(str(k), str(v)) for k, v in params]


def _signed_params(items: list[tuple[str, str]]) -> str:
    # each name once, in order, then its distinct values in order: (name, value) pairs sorted as a set
    return "".join([name + value for name, value in sorted(set(items))])


def _sign(key: bytes, url: str, signed_params: str) -> bytes:
    return base64.b64encode(hmac.digest(key, (url + signed_params).encode("utf-8"), "sha1"))


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | FormItems = ()) -> str:
    """The signature Twilio would send for a form POST of ``params`` to ``url``."""
    return _sign(auth_token.encode(), url, _signed_params(_items(params))).decode()


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
    key = auth_token.encode()
    signed_params = _signed_params(_items(params))  # built once for both URL forms
    given = signature.encode()
    # the URL as given first (one HMAC in the usual case), then its other port form
    if hmac.compare_digest(_sign(key, url, signed_params), given):
        return True
    with_port, without_port = _port_forms(url)
    other = without_port if url == with_port else with_port
    return hmac.compare_digest(_sign(key, other, signed_params), given)


def is_valid_body_signature(auth_token: str, url: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is Twilio's for a JSON ``body`` sent to ``url`` (which names the body's hash)."""
    hashes = parse_qs(urlsplit(url).query).get("bodySHA256")
    if not hashes:
        return False
    body_hash = hashlib.sha256(body).hexdigest()
    matches = hmac.compare_digest(body_hash.encode(), hashes[0].strip().lower().encode())
    return is_valid_signature(auth_token, url, (), signature) and matches
