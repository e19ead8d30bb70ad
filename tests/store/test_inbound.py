"""Inbound messages: each kept as a row, and what a number asked for read back oldest first."""

from __future__ import annotations

from notifyq.store import Store

from .helpers import ACCOUNT


async def test_what_a_number_asked_for_is_read_back_in_order(store: Store) -> None:
    for at, sender, body, action in (
        (1.0, "+14155550100", "STOP", "opt_out"),
        (2.0, "+14155550101", "HELP", "help"),
        (3.0, "+14155550100", "START", "opt_in"),
        (4.0, "+14155550100", "thanks", "none"),
    ):
        await store.record_inbound(
            at=at, account_sid=ACCOUNT, message_sid=None, from_number=sender, to_number="+15005550006",
            body=body, action=action,
        )  # fmt: skip
    assert await store.inbound_actions("+14155550100") == ["opt_out", "opt_in", "none"]
    assert await store.inbound_actions("+14155550101") == ["help"]
    assert await store.inbound_actions("+14155550199") == []
