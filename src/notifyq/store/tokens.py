"""The producer token registry: one row per token, holding the hash of its secret and never the token."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from notifyq.store.engine import Database
from notifyq.store.schema import api_tokens
from notifyq.tokens import Principal, Scope, TokenLimits


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A registry token as stored (its hash stays in the database)."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    accounts: tuple[str, ...] | None
    limits: TokenLimits
    created_at: float
    revoked_at: float | None

    def principal(self) -> Principal:
        """Who a request made with this token comes from."""
        return Principal(self.id, self.name, frozenset(self.scopes), self.accounts, self.limits)

    def as_dict(self) -> dict[str, Any]:
        """The row for ``notifyq tokens list --json``."""
        lim = self.limits
        return {
            "id": self.id,
            "name": self.name,
            "scopes": [s.value for s in self.scopes],
            "accounts": None if self.accounts is None else list(self.accounts),
            "rate": lim.rate,
            "burst": lim.burst,
            "daily": lim.daily,
            "monthly": lim.monthly,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _row(m: Mapping[Any, Any]) -> TokenRow:
    accounts = m["accounts"]
    return TokenRow(
        id=m["id"],
        name=m["name"],
        scopes=tuple(Scope(s) for s in m["scopes"] if s in Scope.__members__.values()),
        accounts=None if accounts is None else tuple(accounts),
        limits=TokenLimits(m["rate"], m["burst"], m["daily_quota"], m["monthly_quota"]),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


class Tokens(Database):
    """The ``api_tokens`` table."""

    async def add_token(
        self,
        token_id: str,
        secret_hash: str,
        *,
        name: str,
        scopes: tuple[Scope, ...],
        accounts: tuple[str, ...] | None,
        limits: TokenLimits,
    ) -> TokenRow:
        """Store a new token's hash and what it may do."""
        values = {
            "id": token_id,
            "name": name,
            "secret_hash": secret_hash,
            "scopes": [s.value for s in scopes],
            "accounts": None if accounts is None else list(accounts),
            "rate": limits.rate,
            "burst": limits.burst,
            "daily_quota": limits.daily,
            "monthly_quota": limits.monthly,
            "created_at": time.time(),
            "revoked_at": None,
        }
        async with self._write() as conn:
            await conn.execute(insert(api_tokens), [values])
        return _row(values)

    async def token_with_hash(self, token_id: str) -> tuple[TokenRow, str] | None:
        """A token and its stored hash, by id (revoked ones too: the caller refuses them)."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
        return None if row is None else (_row(row._mapping), row.secret_hash)

    async def list_tokens(self) -> list[TokenRow]:
        """Every token, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id))
            return [_row(r._mapping) for r in rows]

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such token or it was revoked already."""
        async with self._write() as conn:
            result = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return int(result.rowcount) == 1
