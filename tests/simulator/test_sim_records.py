"""The simulator's date format: Twilio's RFC 2822 dates, formatted once per second and zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from notifyq.simulator.records import rfc2822


def test_dates_are_written_as_twilio_writes_them() -> None:
    moment = datetime(2023, 8, 24, 5, 1, 45, 987_654, tzinfo=UTC)
    assert rfc2822(moment) == "Thu, 24 Aug 2023 05:01:45 +0000"  # microseconds dropped, not rounded
    assert rfc2822(moment + timedelta(seconds=1)) == "Thu, 24 Aug 2023 05:01:46 +0000"
    assert rfc2822(None) is None


def test_the_same_instant_in_another_zone_keeps_its_own_offset() -> None:
    moment = datetime(2023, 8, 24, 5, 1, 45, tzinfo=UTC)
    assert rfc2822(moment) == "Thu, 24 Aug 2023 05:01:45 +0000"
    # equal to the first (and so the same key for a cache that looked only at the instant)
    elsewhere = moment.astimezone(timezone(timedelta(hours=2)))
    assert elsewhere == moment
    assert rfc2822(elsewhere) == "Thu, 24 Aug 2023 07:01:45 +0200"
