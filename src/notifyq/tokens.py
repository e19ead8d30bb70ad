"""Producer tokens: their text, how it is hashed and checked, their scopes, and who holds one.

A token reads ``nq_<id>_<secret>``: the id finds its row without a scan, and only the SHA-256 of the
secret is stored. The secret is 256 random bits, so a plain hash is enough: nobody can guess their way
back from it, and a slow password hash would only cost every request its time. The hash is compared in
constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

PREFIX: Final = "nq_"
ID_CHARS: Final = 12  # hex: 48 bits, enough that two tokens of one deployment never share one
_SECRET_BYTES: Final = 32
_HEX: Final = frozenset("0123456789abcdef")


class Scope(StrEnum):
    """What a token may do; each API route needs one (``api.scopes``)."""

    SUBMIT = "submit"
    READ = "read"
    REPLAY = "replay"
    OPS = "ops"
    ACCOUNTS = "accounts"


ALL_SCOPES: Final = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: its id, the text shown once to whoever created it, and the hash that is kept."""

    id: str
    text: str
    secret_hash: str


def secret_hash(secret: str) -> str:
    """The hex SHA-256 of a token's secret: what the registry stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue() -> IssuedToken:
    """A new random token."""
    token_id = secrets.token_hex(ID_CHARS // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return IssuedToken(token_id, f"{PREFIX}{token_id}_{secret}", secret_hash(secret))


def parse(text: str) -> tuple[str, str] | None:
    """The id and secret of a token's text, or None when it is not a registry token's form."""
    if not text.startswith(PREFIX):
        return None
    token_id, sep, secret = text[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != ID_CHARS or not set(token_id) <= _HEX or not secret:
        return None
    return token_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(secret_hash(secret).encode(), stored_hash.encode())


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """A token's rate limit (requests a second, and a burst) and its recipient quotas; None: no limit."""

    rate: float | None = None
    burst: int | None = None
    daily: int | None = None
    monthly: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: a registry token, or one of the environment's plain tokens (every scope)."""

    id: str
    name: str
    scopes: frozenset[Scope] = ALL_SCOPES
    accounts: tuple[str, ...] | None = None  # None: every account
    limits: TokenLimits = field(default_factory=TokenLimits)

    def may_use(self, account: str) -> bool:
        """Whether a batch may name this account."""
        return self.accounts is None or account in self.accounts


ENV_PRINCIPAL: Final = Principal(id="env", name="environment token")
# NOTIFYQ_API__OPERATOR_TOKENS: the account registry, the ops pages and reading, not sending
OPERATOR_PRINCIPAL: Final = Principal(
    id="operator", name="operator token", scopes=frozenset({Scope.ACCOUNTS, Scope.OPS, Scope.READ})
)
