"""Suppressions: a number an account must not send to, put on the list once and taken off."""

from __future__ import annotations

from notifyq.store import Store

from .helpers import ACCOUNT

OTHER_ACCOUNT = "AC" + "1" * 32
NUMBER = "+14155550100"


async def test_a_number_is_suppressed_once_per_account_and_lifted(store: Store) -> None:
    assert not await store.is_suppressed(ACCOUNT, NUMBER)
    assert await store.suppress(ACCOUNT, NUMBER, source="stop", sender="+15005550006")
    assert not await store.suppress(ACCOUNT, NUMBER, source="21610")  # there already
    assert await store.is_suppressed(ACCOUNT, NUMBER)
    assert not await store.is_suppressed(OTHER_ACCOUNT, NUMBER)  # one account's list only
    assert await store.unsuppress(ACCOUNT, NUMBER)
    assert not await store.unsuppress(ACCOUNT, NUMBER)
    assert not await store.is_suppressed(ACCOUNT, NUMBER)
