"""The token registry: a row per token holding the hash of its secret, never the token."""

from __future__ import annotations

from sqlalchemy import select

from notifyq import tokens as tk
from notifyq.store import Store
from notifyq.store.schema import api_tokens
from notifyq.tokens import Scope, TokenLimits


async def _add(store: Store, name: str = "billing", **kwargs: object) -> tk.IssuedToken:
    issued = tk.issue()
    await store.add_token(
        issued.id,
        issued.secret_hash,
        name=name,
        scopes=kwargs.get("scopes", (Scope.SUBMIT, Scope.READ)),  # type: ignore[arg-type]
        accounts=kwargs.get("accounts"),  # type: ignore[arg-type]
        limits=kwargs.get("limits", TokenLimits()),  # type: ignore[arg-type]
    )
    return issued


async def test_a_token_is_stored_with_what_it_may_do_and_read_back(store: Store) -> None:
    limits = TokenLimits(rate=2.5, burst=5, daily=1000, monthly=20_000)
    issued = await _add(store, scopes=(Scope.SUBMIT, Scope.REPLAY), accounts=("main",), limits=limits)
    found = await store.token_with_hash(issued.id)
    assert found is not None
    row, stored_hash = found
    assert stored_hash == issued.secret_hash
    assert (row.name, row.scopes, row.accounts, row.limits) == (
        "billing",
        (Scope.SUBMIT, Scope.REPLAY),
        ("main",),
        limits,
    )
    assert row.revoked_at is None
    principal = row.principal()
    assert (principal.id, principal.scopes, principal.accounts) == (issued.id, {Scope.SUBMIT, Scope.REPLAY}, ("main",))
    assert await store.token_with_hash("0" * 12) is None


async def test_the_row_holds_no_token_text(store: Store) -> None:
    issued = await _add(store)
    _, secret = tk.parse(issued.text) or ("", "")
    async with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(select(api_tokens))]
    assert len(rows) == 1
    stored = repr(rows)
    assert issued.text not in stored
    assert secret not in stored
    assert secret[:8] not in stored  # not even a part of it
    assert rows[0]["secret_hash"] == tk.secret_hash(secret)


async def test_tokens_are_listed_oldest_first_and_revoked_once(store: Store) -> None:
    first = await _add(store, "first")
    second = await _add(store, "second", accounts=None)
    assert [r.name for r in await store.list_tokens()] == ["first", "second"]
    assert await store.revoke_token(first.id)
    assert not await store.revoke_token(first.id)  # revoked already
    assert not await store.revoke_token("0" * 12)
    listed = {r.id: r for r in await store.list_tokens()}
    assert listed[first.id].revoked_at is not None
    assert listed[second.id].revoked_at is None
    assert listed[second.id].as_dict()["accounts"] is None
    assert "secret_hash" not in listed[first.id].as_dict()
