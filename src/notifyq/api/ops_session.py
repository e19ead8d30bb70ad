"""Operator auth for the ops pages: the bearer token for scripts, a signed session cookie for browsers.

The sign-in form takes an operator token (one of ``NOTIFYQ_API__TOKENS``) and answers with a cookie
that never holds the token: ``<expiry>.<nonce>.<mac>``, the MAC an HMAC-SHA256 under a key derived
from every configured token. It expires on its own (``SESSION_S``), and removing or rotating a token
ends every session at once, since the key changes with it. The cookie is HttpOnly, SameSite=Strict
(no other site's page can send it, so the read-only pages and the sign-out need no CSRF token), scoped
to ``/ops``, and Secure whenever the public URL or the request is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

COOKIE: Final = "notifyq_ops"
SESSION_S: Final = 8 * 3600  # one on-call shift
COOKIE_PATH: Final = "/ops"
_KEY_CONTEXT: Final = b"notifyq ops session v1\x00"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OperatorAuth:
    """Checks an operator's bearer token or session cookie; issues and clears the cookie."""

    def __init__(self, tokens: list[str], *, secure: bool, session_s: float = SESSION_S) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._key = hashlib.sha256(_KEY_CONTEXT + b"\x00".join(sorted(self._tokens))).digest()
        self._always_secure = secure
        self._session_s = session_s

    def token_ok(self, given: str) -> bool:
        """Whether ``given`` is a configured token (compared in constant time with each)."""
        ok = False
        raw = given.encode()
        for token in self._tokens:
            ok |= hmac.compare_digest(token, raw)
        return ok and bool(given)

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, *, now: float | None = None) -> str:
        """A new session cookie's value."""
        expiry = int((time.time() if now is None else now) + self._session_s)
        payload = f"{expiry}.{_b64(secrets.token_bytes(12))}"
        return f"{payload}.{self._mac(payload)}"

    def session_ok(self, value: str, *, now: float | None = None) -> bool:
        """Whether a cookie's value is one this deployment issued and it has not expired."""
        if not self._tokens:  # no operator can sign in, so no session is valid
            return False
        payload, _, mac = value.rpartition(".")
        expiry, _, _nonce = payload.partition(".")
        if not (expiry.isdigit() and hmac.compare_digest(self._mac(payload), mac)):
            return False
        return int(expiry) > (time.time() if now is None else now)

    def authorized(self, request: web.Request) -> bool:
        """A valid ``Authorization: Bearer`` token, or a valid session cookie."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return self.token_ok(given)
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and self.session_ok(cookie)

    def secure(self, request: web.Request) -> bool:
        """Whether the cookie must travel over https only."""
        return self._always_secure or request.secure

    def sign_in(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set a new session cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            self.issue(),
            max_age=int(self._session_s),
            path=COOKIE_PATH,
            httponly=True,
            secure=self.secure(request),
            samesite="Strict",
        )

    def sign_out(self, request: web.Request, response: web.StreamResponse) -> None:
        """Clear the session cookie."""
        response.del_cookie(COOKIE, path=COOKIE_PATH, secure=self.secure(request), httponly=True, samesite="Strict")


def same_origin(request: web.Request, public_base_url: str) -> bool:
    """Whether a form post comes from this site's own page: its Origin, when the browser sends one, is ours.

    Ours is the public URL (behind a proxy) or the host the request was made to.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(public_base_url)
    return origin in {f"{public.scheme}://{public.netloc}", f"{request.scheme}://{request.host}"}
