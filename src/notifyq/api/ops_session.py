"""The ops pages' session cookie: a browser signs in once with a token that has the ``ops`` scope.

The cookie never holds the token: ``<expiry>.<who>.<nonce>.<mac>``, ``who`` the id of the token it
was issued for (``env`` for the environment's plain tokens) and the MAC an HMAC-SHA256 under the
server's session key: ``NOTIFYQ_API__SESSION_KEY`` when set (the same on every replica), else a key
derived from the environment's tokens, else a random key of this process. A session expires on its own
(``SESSION_S``); revoking its registry token ends it at the next request (the API resolves ``who``
each time), and changing the session key (or the environment's tokens it is derived from) ends every
session at once. The cookie is HttpOnly, SameSite=Strict (no other site's page can send it, so the
read-only pages and the sign-out need no CSRF token), scoped to ``/ops``, and Secure whenever the
public URL or the request is https.
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


def session_key(configured: str | None, env_tokens: list[str]) -> bytes:
    """The key that signs session cookies: configured, else derived from the environment's tokens, else random."""
    if configured:
        return hashlib.sha256(_KEY_CONTEXT + configured.encode()).digest()
    if env_tokens:
        return hashlib.sha256(_KEY_CONTEXT + b"\x00".join(sorted(t.encode() for t in env_tokens))).digest()
    return secrets.token_bytes(32)  # sessions of this process only: set NOTIFYQ_API__SESSION_KEY with replicas


class OperatorAuth:
    """Issues, checks and clears the session cookie; who may sign in is the API's resolver's call."""

    def __init__(self, key: bytes, *, secure: bool, session_s: float = SESSION_S) -> None:
        self._key = key
        self._always_secure = secure
        self._session_s = session_s

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, who: str, *, now: float | None = None) -> str:
        """A new session cookie's value for the token ``who``."""
        expiry = int((time.time() if now is None else now) + self._session_s)
        payload = f"{expiry}.{who}.{_b64(secrets.token_bytes(12))}"
        return f"{payload}.{self._mac(payload)}"

    def session(self, value: str, *, now: float | None = None) -> str | None:
        """The token id a cookie was issued for, when this deployment issued it and it has not expired."""
        payload, _, mac = value.rpartition(".")
        expiry, _, rest = payload.partition(".")
        who, _, nonce = rest.partition(".")
        if not (expiry.isdigit() and who and nonce and hmac.compare_digest(self._mac(payload), mac)):
            return None
        return who if int(expiry) > (time.time() if now is None else now) else None

    def secure(self, request: web.Request) -> bool:
        """Whether the cookie must travel over https only."""
        return self._always_secure or request.secure

    def sign_in(self, request: web.Request, response: web.StreamResponse, who: str) -> None:
        """Set a new session cookie for the token ``who`` on ``response``."""
        response.set_cookie(
            COOKIE,
            self.issue(who),
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
