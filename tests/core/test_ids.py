"""Ids are unique, time-ordered and recognisable."""

from __future__ import annotations

import base64
import time

from notifyq.ids import is_id, new_id, new_ids


def test_ids_are_unique_well_formed_and_sorted_by_time() -> None:
    # the scenario: each group is made in a later millisecond than the one before
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


def test_ids_are_base32hex_of_the_milliseconds_then_random_bytes() -> None:
    before = int(time.time() * 1000)
    batch = new_ids(2_000)
    after = int(time.time() * 1000)
    for one in batch:
        raw = base64.b32hexdecode(one.upper())
        assert len(raw) == 15
        assert before <= int.from_bytes(raw[:6], "big") <= after
    # the 72 random bits vary: every position of the random part takes many values
    randoms = [base64.b32hexdecode(one.upper())[6:] for one in batch]
    assert all(len({r[k] for r in randoms}) > 200 for k in range(9))
