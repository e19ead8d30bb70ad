"""Invariant 3: status only moves forward.

Callbacks arrive out of order and more than once, and a create's 201 can arrive after the callbacks
it caused. Statuses have ranks; a final status is never overwritten by an earlier one (``read`` after
``delivered`` is the one move between final statuses); call events are ordered by ``SequenceNumber``.
``statuses.should_apply`` is the rule; the accept path (a 201, recorded by ``flush_send_writes``)
holds to it in SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from helpers import wait_until
from helpers.rows import create_deliveries
from notifyq import statuses as st
from notifyq.client import Client
from notifyq.statuses import Channel
from notifyq.store import StatusReport, Store, accepted_send
from notifyq.testing import API_TOKEN, LocalStack
from notifyq.worker import NotifyqWorker

SID = "SM" + "5" * 32
MESSAGE_FINALS = sorted(s for s in st.MESSAGE_RANKS if st.is_final(Channel.SMS, s))
TWILIO_CALL_STATUSES = [
    *("queued", "initiated", "ringing", "in-progress"),
    *("completed", "busy", "no-answer", "failed", "canceled"),
]

# what Twilio reports, in the order it happens (notifyq's own statuses come before, or instead)
MESSAGE_PATHS = [
    ["queued", "sending", "sent", "delivered", "read"],
    ["queued", "sending", "sent", "undelivered"],
    ["queued", "sending", "sent", "failed"],
    ["queued", "canceled"],
]
CALL_PATHS = [
    ["queued", "initiated", "ringing", "in-progress", "completed"],
    ["queued", "initiated", "ringing", "busy"],
    ["queued", "initiated", "ringing", "no-answer"],
    ["queued", "initiated", "failed"],
]

channels = hs.sampled_from([Channel.SMS, Channel.MMS, Channel.CALL])
sequences = hs.none() | hs.integers(min_value=0, max_value=6)


def _statuses(channel: Channel) -> hs.SearchStrategy[str]:
    return hs.sampled_from(sorted(st.ranks(channel)))


# ---- the rule, case by case ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "applied"),
    [
        ("pending", "dispatching", True),
        ("dispatching", "queued", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("delivered", "read", True),  # the one move between final statuses
        ("sent", "queued", False),  # late
        ("sent", "sent", False),  # a duplicate
        ("queued", "accepted", False),  # the same rank is no move
        ("delivered", "sent", False),
        ("delivered", "queued", False),  # the late 201
        ("delivered", "undelivered", False),  # one final never replaces another
        ("undelivered", "delivered", False),
        ("failed", "queued", False),
        ("suppressed", "queued", False),
        ("expired", "sent", False),
        ("read", "delivered", False),
        ("sent", "receiving", False),  # an inbound status is not ours to apply
        ("sent", "no-such-status", False),
    ],
)
def test_message_statuses(current: str, new: str, applied: bool) -> None:
    ok, reason = st.should_apply(Channel.SMS, current, new)
    assert ok is applied, reason
    assert reason  # a refusal is kept with its reason in the event row


@pytest.mark.parametrize(
    ("current", "current_seq", "new", "new_seq", "applied"),
    [
        ("queued", None, "initiated", 0, True),
        ("ringing", 1, "in-progress", 2, True),
        ("in-progress", 2, "ringing", 1, False),  # an earlier event, late
        ("ringing", 1, "ringing", 1, False),  # the same event twice
        ("in-progress", 3, "completed", 3, False),  # not after the stored one
        ("completed", 4, "ringing", 5, False),  # final: not even a later sequence moves it
        ("busy", None, "ringing", None, False),
        ("ringing", None, "initiated", None, False),  # without sequence numbers, ranks decide
    ],
)
def test_call_statuses(current: str, current_seq: int | None, new: str, new_seq: int | None, applied: bool) -> None:
    ok, reason = st.should_apply(Channel.CALL, current, new, current_seq=current_seq, new_seq=new_seq)
    assert ok is applied, reason


@pytest.mark.parametrize("final", [s for s in MESSAGE_FINALS if s not in {"delivered", "read"}])
def test_read_follows_delivered_only(final: str) -> None:
    assert st.should_apply(Channel.SMS, final, "read")[0] is False


# ---- the rule, for every input -----------------------------------------------------------------


@given(channels.flatmap(lambda c: hs.tuples(hs.just(c), _statuses(c), _statuses(c) | hs.text(max_size=12))))
def test_without_sequence_numbers_ranks_only_rise(case: tuple[Channel, str, str]) -> None:
    channel, current, new = case
    ok, _ = st.should_apply(channel, current, new)
    if ok:
        new_rank, current_rank = st.rank(channel, new), st.rank(channel, current)
        assert new_rank is not None
        assert current_rank is not None
        assert new_rank > current_rank


@given(channels.flatmap(lambda c: hs.tuples(hs.just(c), _statuses(c), _statuses(c))), sequences, sequences)
def test_a_final_status_is_never_replaced_but_by_a_higher_final(
    case: tuple[Channel, str, str], current_seq: int | None, new_seq: int | None
) -> None:
    channel, current, new = case
    ok, _ = st.should_apply(channel, current, new, current_seq=current_seq, new_seq=new_seq)
    if st.is_final(channel, current) and ok:
        assert channel.is_message
        assert (current, new) == ("delivered", "read")


@given(_statuses(Channel.CALL), hs.sampled_from(TWILIO_CALL_STATUSES), hs.integers(0, 6), hs.integers(0, 6))
def test_call_events_apply_only_in_sequence_order(current: str, new: str, current_seq: int, new_seq: int) -> None:
    ok, _ = st.should_apply(Channel.CALL, current, new, current_seq=current_seq, new_seq=new_seq)
    if new_seq <= current_seq:
        assert not ok
    elif not st.is_final(Channel.CALL, current):
        assert ok  # a later event of a call that is not over always applies, whatever its rank


def _fold(channel: Channel, reports: Sequence[tuple[str, int | None]]) -> str:
    """Apply ``reports`` one after the other to a delivery that was just sent, as the store does."""
    status, seq = st.DISPATCHING, None
    for new, new_seq in reports:
        if st.should_apply(channel, status, new, current_seq=seq, new_seq=new_seq)[0]:
            status, seq = new, new_seq if new_seq is not None else seq
    return status


@given(hs.sampled_from(MESSAGE_PATHS).flatmap(lambda p: hs.tuples(hs.just(p), hs.integers(1, len(p)))), hs.data())
def test_a_message_ends_where_twilio_says_whatever_the_order(case: tuple[list[str], int], data: hs.DataObject) -> None:
    path, reached = case
    reports = [(s, None) for s in path[:reached]]
    arrived = data.draw(hs.permutations(reports + data.draw(hs.lists(hs.sampled_from(reports), max_size=4))))
    assert _fold(Channel.SMS, arrived) == path[reached - 1]


@given(hs.sampled_from(CALL_PATHS).flatmap(lambda p: hs.tuples(hs.just(p), hs.integers(1, len(p)))), hs.data())
def test_a_call_ends_where_twilio_says_whatever_the_order(case: tuple[list[str], int], data: hs.DataObject) -> None:
    path, reached = case
    # the 201 carries no sequence number; the callbacks count from 0
    reports: list[tuple[str, int | None]] = [(path[0], None)]
    reports += [(s, i) for i, s in enumerate(path[1:reached])]
    arrived = data.draw(hs.permutations(reports + data.draw(hs.lists(hs.sampled_from(reports), max_size=4))))
    assert _fold(Channel.CALL, arrived) == path[reached - 1]


# ---- the store: a late 201 after a callback made the delivery final --------------------------


def _report(delivery_id: str, status: str, at: float, code: int | None = None) -> StatusReport:
    return StatusReport(delivery_id=delivery_id, sid=SID, status=status, source="callback", at=at, error_code=code)


@pytest.mark.parametrize(("final", "code"), [("delivered", None), ("undelivered", 30003), ("failed", 30007)])
@pytest.mark.parametrize("path", ["record_accepted", "flush_send_writes"])
async def test_a_late_201_leaves_a_final_status_final(store: Store, final: str, code: int | None, path: str) -> None:
    [delivery] = await create_deliveries(store, ["+14155550100"])
    claimed, _ = await store.flush_send_writes(claim_ids=[(delivery, "AC")], accepted=[], now=10.0)
    assert list(claimed) == [delivery]
    # the callbacks come first (the callback URL carries the delivery id)...
    applied = await store.apply_reports([_report(delivery, "sent", 11.0), _report(delivery, final, 12.0, code)])
    assert [a.applied for a in applied] == [True, True]
    before = await store.get_delivery(delivery)
    # ...then the create's answer, with the status the message had when it was created
    event = {"at": 13.0, "status": "queued", "http_status": 201, "reason": f"created {SID}"}
    if path == "record_accepted":
        await store.record_accepted(delivery, channel=Channel.SMS, sid=SID, status="queued", segments=1, event=event)
    else:
        params = accepted_send(delivery, channel=Channel.SMS, sid=SID, status="queued", segments=1)
        await store.flush_send_writes(claim_ids=[], accepted=[(params, event)], now=13.0)
    row = await store.get_delivery(delivery)
    assert (row.status, row.status_rank) == (final, st.FINAL_RANK)
    assert row.twilio_sid == SID
    assert (row.error_code, row.final_at) == (code, before.final_at)
    assert [e["kind"] for e in await store.events(delivery)] == ["callback", "callback", "attempt"]  # all kept


@pytest.mark.parametrize("final", ["delivered", "undelivered", "failed", "canceled", "expired", "suppressed"])
@pytest.mark.parametrize("path", ["apply_reports", "record_accepted"])
async def test_read_replaces_delivered_only_in_the_store(store: Store, final: str, path: str) -> None:
    """Both writers of a status (reports, and the accept path of a 201) hold to ``should_apply``'s final moves."""
    [delivery] = await create_deliveries(store, ["+14155550100"])
    await store.flush_send_writes(claim_ids=[(delivery, "AC")], accepted=[], now=10.0)
    await store.record_outcome(delivery, channel=Channel.SMS, status=final, error_code=None, error_message=None,
                               event={"at": 11.0, "reason": "made final"})  # fmt: skip
    before = await store.get_delivery(delivery)
    assert before.status == final
    if path == "apply_reports":
        [applied] = await store.apply_reports([_report(delivery, "read", 12.0)])
        assert applied.applied is (final == "delivered"), applied.reason
    else:
        event = {"at": 12.0, "status": "read", "http_status": 201}
        await store.record_accepted(delivery, channel=Channel.SMS, sid=SID, status="read", segments=1, event=event)
    row = await store.get_delivery(delivery)
    expected = "read" if final == "delivered" else final
    assert (row.status, row.status_rank) == (expected, st.rank(Channel.SMS, expected))
    assert row.final_at == before.final_at  # final since it first became final


async def test_a_201_still_moves_a_delivery_no_callback_has_reached(store: Store) -> None:
    """The guard is not a wall: the answer of an ordinary send is recorded."""
    [delivery] = await create_deliveries(store, ["+14155550100"])
    await store.flush_send_writes(claim_ids=[(delivery, "AC")], accepted=[], now=10.0)
    event = {"at": 11.0, "status": "queued", "http_status": 201}
    await store.record_accepted(delivery, channel=Channel.SMS, sid=SID, status="queued", segments=1, event=event)
    row = await store.get_delivery(delivery)
    assert (row.status, row.twilio_sid) == ("queued", SID)


async def test_callbacks_that_overtake_the_201_keep_the_delivery_final(stack: LocalStack) -> None:
    """End to end: Twilio's callbacks reach us while the 201 of the create is still on its way."""
    assert stack.simulator is not None
    stack.simulator.config.answer_delay_s = 2.0  # the message exists and moves on; its answer comes late
    store = stack.worker_app.store
    async with Client(stack.api_url, token=API_TOKEN) as client:
        batch = {"channel": "sms", "from": "+15005550006", "body": "x", "recipients": ["+14155550100"]}
        accepted = await client.submit(batch)
        worker = asyncio.create_task(NotifyqWorker(stack.worker_app, burst=True).run())
        try:
            [row] = await store.list_deliveries(accepted["id"])

            async def final_before_the_answer() -> bool:
                await stack.inbox.drain()
                return (await store.get_delivery(row.id)).status == "delivered"

            await wait_until(final_before_the_answer, "the callbacks to make the delivery final")
            assert not worker.done()
            assert sum(stack.simulator.in_flight.values()) == 1, "the 201 arrived before the callbacks"
            await asyncio.wait_for(worker, 15)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        await stack.inbox.drain()
        status = await client.batch(accepted["id"])
    [message] = stack.simulator.messages
    final = await store.get_delivery(row.id)
    assert (final.status, final.twilio_sid) == ("delivered", message.sid)
    assert status["by_status"] == {"delivered": 1}
    assert list(stack.simulator.sends_by_callback().values()) == [1]
