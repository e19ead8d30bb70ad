"""Producer token text, hashing and the route scope table: pure functions, tested whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from notifyq import tokens as tk
from notifyq.api.limits import period_keys
from notifyq.api.scopes import PUBLIC, UNLISTED, needed, protected
from notifyq.tokens import Scope


def test_an_issued_token_parses_back_to_its_id_and_its_secret_hashes_to_what_is_kept() -> None:
    issued = tk.issue()
    assert issued.text.startswith(f"nq_{issued.id}_")
    parsed = tk.parse(issued.text)
    assert parsed is not None
    token_id, secret = parsed
    assert token_id == issued.id
    assert tk.secret_hash(secret) == issued.secret_hash
    assert secret not in issued.secret_hash
    assert tk.secret_matches(secret, issued.secret_hash)
    assert not tk.secret_matches(secret + "x", issued.secret_hash)


def test_two_tokens_differ_in_id_secret_and_hash() -> None:
    a, b = tk.issue(), tk.issue()
    assert len({a.id, b.id}) == len({a.text, b.text}) == len({a.secret_hash, b.secret_hash}) == 2


def test_the_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = tk.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tk.hmac, "compare_digest", spy)
    issued = tk.issue()
    _, secret = tk.parse(issued.text) or ("", "")
    assert tk.secret_matches(secret, issued.secret_hash)
    assert calls == [(issued.secret_hash.encode(), issued.secret_hash.encode())]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "local-producer-token",
        "nq_",
        "nq_0123456789ab",  # no secret
        "nq_0123456789ab_",
        "nq_0123456789AB_secret",  # the id is lower-case hex
        "nq_0123456789a_secret",  # too short
        "nq_0123456789abc_secret",  # too long
        "nq_0123456789ag_secret",
    ],
)
def test_text_that_is_not_a_registry_token_does_not_parse(text: str) -> None:
    assert tk.parse(text) is None


@given(hs.text())
def test_parse_never_raises(text: str) -> None:
    parsed = tk.parse(text)
    if parsed is not None:
        assert text == f"nq_{parsed[0]}_{parsed[1]}"


def test_a_principal_limited_to_accounts_may_use_those_only() -> None:
    assert tk.ENV_PRINCIPAL.may_use("anything")
    assert tk.ENV_PRINCIPAL.scopes == frozenset(Scope)
    limited = tk.Principal("0123456789ab", "p", frozenset({Scope.SUBMIT}), ("main",))
    assert limited.may_use("main")
    assert not limited.may_use("other")


@pytest.mark.parametrize(
    ("method", "pattern", "need"),
    [
        ("POST", "/v1/batches", Scope.SUBMIT),
        ("GET", "/v1/batches/{batch_id}", Scope.READ),
        ("HEAD", "/v1/batches/{batch_id}", Scope.READ),
        ("GET", "/v1/batches/{batch_id}/deliveries", Scope.READ),
        ("POST", "/v1/batches/{batch_id}/cancel", Scope.SUBMIT),
        ("GET", "/v1/deliveries/{delivery_id}", Scope.READ),
        ("POST", "/v1/replays", Scope.REPLAY),
        ("GET", "/v1/replays/{replay_id}", Scope.REPLAY),
        ("GET", "/v1/accounts", Scope.ACCOUNTS),
        ("POST", "/v1/accounts/{name}/pause", Scope.ACCOUNTS),
        ("GET", "/ops", Scope.OPS),
        ("GET", "/ops/data", Scope.OPS),
        ("GET", "/ops/signin", PUBLIC),
        ("POST", "/ops/signin", PUBLIC),
        ("POST", "/ops/signout", PUBLIC),
        ("GET", "/ops/static/{name}", PUBLIC),
        ("DELETE", "/v1/batches/{batch_id}", UNLISTED),
        ("GET", "/v1/whoever", UNLISTED),
        ("GET", "/v1/batchesx", UNLISTED),  # a prefix ends at a slash
        ("GET", "/v1", UNLISTED),
    ],
)
def test_the_table_gives_each_route_its_scope(method: str, pattern: str, need: object) -> None:
    assert needed(method, pattern) == need


def test_the_guarded_areas_are_v1_and_ops_only() -> None:
    assert protected("/v1/batches")
    assert protected("/ops")
    assert protected("/ops/data")
    for path in ("/twilio/status", "/healthz", "/metrics", "/v10", "/opsx", "/"):
        assert not protected(path), path


def test_quota_counters_end_with_their_utc_day_and_month() -> None:
    (day, day_end), (month, month_end) = period_keys("0123456789ab", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert day.endswith(":day:2026-12-31")
    assert month.endswith(":month:2026-12")
    assert day_end == month_end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    (day, day_end), (month, month_end) = period_keys("0123456789ab", datetime(2027, 2, 10, tzinfo=UTC))
    assert day_end == datetime(2027, 2, 11, tzinfo=UTC).timestamp()
    assert month_end == datetime(2027, 3, 1, tzinfo=UTC).timestamp()
