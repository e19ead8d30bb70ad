"""A callback's event time: Twilio's ``Timestamp`` when it is a date, else the time notifyq received it."""

from __future__ import annotations

import pytest

from notifyq.queue.inbox import event_time
from notifyq.store import StatusReport

RECEIVED = 1_796_658_261.5


def report(raw: dict[str, str]) -> StatusReport:
    return StatusReport("d1", "CA" + "0" * 32, "completed", "callback", at=RECEIVED, raw=raw)


def test_twilio_s_timestamp_is_the_event_time() -> None:
    assert event_time(report({"Timestamp": "Mon, 07 Dec 2026 15:44:01 +0000"})) == 1_796_658_241.0
    assert event_time(report({"Timestamp": "Mon, 07 Dec 2026 16:44:01 +0100"})) == 1_796_658_241.0


@pytest.mark.parametrize(
    "raw",
    [{}, {"Timestamp": ""}, {"Timestamp": "yesterday"}, {"Timestamp": "Mon, 07 Dec 99999 15:44:01 +0000"}],
)
def test_without_a_readable_timestamp_the_receipt_stands_in(raw: dict[str, str]) -> None:
    assert event_time(report(raw)) == RECEIVED
