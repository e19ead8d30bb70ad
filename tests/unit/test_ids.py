"""Ids are unique, time-ordered and recognisable."""

from __future__ import annotations

import time

from notifyq.ids import is_id, new_id, new_ids


def test_ids_are_unique_well_formed_and_sorted_by_time() -> None:
    first = new_id()
    time.sleep(0.002)
    batch = new_ids(10_000)
    time.sleep(0.002)
    last = new_id()
    assert len(set(batch)) == 10_000
    assert all(is_id(i) for i in [first, *batch, last])
    assert first < min(batch)
    assert max(batch) < last


def test_is_id_refuses_what_is_not_an_id() -> None:
    assert not is_id("")
    assert not is_id("x" * 24)
    assert not is_id(new_id().upper())
    assert not is_id(new_id() + "0")
    assert not is_id("../../etc/passwd")
