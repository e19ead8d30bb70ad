"""Error classification: the whole table, case by case, the fallbacks, and totality."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyq.classify import (
    CODE_RANGES,
    CODES,
    DELIVERY_RETRY_LIMITS,
    Action,
    Verdict,
    classify,
    classify_delivery_error,
)

# Every code in api-facts.md section 5 (and the magic-number codes of section 7) and faq-facts.md section 6.
DOCUMENTED_CODES = {
    10004, 20003, 20429, 21210, 21211, 21212, 21214, 21215, 21216, 21217, 21408, 21606, 21610, 21611, 21612,
    21614, 21635, 22005, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008, 30034, 30036, 63005,
}  # fmt: skip

EXPECTED_ACTIONS = {
    Action.RETRY: {10004, 20429, 21611, 22005, 30001, 30003, 30008},
    Action.FAIL: {21210, 21211, 21212, 21214, 21215, 21216, 21217, 21408, 21606, 21612, 21614, 21635}
    | {30004, 30005, 30006, 30007, 30034, 30036, 63005},
    Action.SUPPRESS: {21610},
    Action.PAUSE_ACCOUNT: {20003, 30002},
}


def test_table_covers_every_documented_code() -> None:
    assert set(CODES) >= DOCUMENTED_CODES


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CODES[1] = (Action.FAIL, "x")  # type: ignore[index]


@pytest.mark.parametrize(("action", "code"), [(a, c) for a, codes in EXPECTED_ACTIONS.items() for c in sorted(codes)])
def test_documented_code_has_the_agreed_action(action: Action, code: int) -> None:
    assert CODES[code][0] is action


@pytest.mark.parametrize(("code", "entry"), sorted(CODES.items()))
@pytest.mark.parametrize("status", [None, 400, 401, 404, 429, 500, 503])
def test_code_rule_wins_over_http_status(code: int, entry: tuple[Action, str], status: int | None) -> None:
    action, reason = entry
    assert reason.strip()
    assert classify(status, code) == Verdict(action, reason, code, status)


@pytest.mark.parametrize("code", [30500, 30532, 30533, 30538, 30599])
def test_305xx_registration_errors_fail(code: int) -> None:
    verdict = classify(400, code)
    assert verdict.action is Action.FAIL
    assert "registration" in verdict.reason
    assert classify_delivery_error(code).action is Action.FAIL


def test_ranges_do_not_shadow_exact_codes() -> None:
    for codes, _, _ in CODE_RANGES:
        assert not set(codes) & set(CODES)


@pytest.mark.parametrize(
    ("status", "code", "action"),
    [
        pytest.param(None, None, Action.RETRY, id="transport error"),
        pytest.param(429, None, Action.RETRY, id="429 without a code"),
        pytest.param(429, 20429, Action.RETRY, id="429 with 20429"),
        pytest.param(500, None, Action.RETRY, id="500"),
        pytest.param(502, None, Action.RETRY, id="502"),
        pytest.param(503, 99999, Action.RETRY, id="unknown 5xx with unknown code"),
        pytest.param(504, None, Action.RETRY, id="504"),
        pytest.param(408, None, Action.RETRY, id="408 not processed"),
        pytest.param(401, None, Action.PAUSE_ACCOUNT, id="401 bad credentials"),
        pytest.param(401, 20003, Action.PAUSE_ACCOUNT, id="401 with 20003"),
        pytest.param(400, None, Action.FAIL, id="400 without a code"),
        pytest.param(400, 21999, Action.FAIL, id="unknown 4xx code"),
        pytest.param(403, None, Action.FAIL, id="403"),
        pytest.param(404, 20404, Action.FAIL, id="404"),
        pytest.param(422, None, Action.FAIL, id="422"),
        pytest.param(None, 12345, Action.FAIL, id="unknown code without a status"),
        pytest.param(200, None, Action.FAIL, id="a success status reported as failure"),
        pytest.param(302, None, Action.FAIL, id="a redirect"),
    ],
)
def test_fallbacks(status: int | None, code: int | None, action: Action) -> None:
    verdict = classify(status, code)
    assert verdict.action is action
    assert (verdict.http_status, verdict.code) == (status, code)
    assert verdict.reason
    assert verdict.retry_limit is None


def test_unknown_code_is_named_in_the_reason() -> None:
    assert "21999" in classify(400, 21999).reason
    assert "HTTP 503" in classify(503, None).reason


def test_verdict_is_frozen_and_action_renders_as_text() -> None:
    verdict = classify(429, 20429)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.action = Action.FAIL  # type: ignore[misc]
    assert f"{Action.PAUSE_ACCOUNT}" == "pause_account"
    assert Action("suppress") is Action.SUPPRESS


# ---- delivery errors reported by status callbacks ----


@pytest.mark.parametrize(
    ("code", "action", "limit"),
    [
        (30001, Action.RETRY, 2),
        (30003, Action.RETRY, 2),
        (30008, Action.RETRY, 1),
        (21611, Action.RETRY, 1),
        (30004, Action.FAIL, None),
        (30005, Action.FAIL, None),
        (30006, Action.FAIL, None),
        (30007, Action.FAIL, None),
        (30034, Action.FAIL, None),
        (30036, Action.FAIL, None),
        (30532, Action.FAIL, None),
        (21610, Action.SUPPRESS, None),
        (30002, Action.PAUSE_ACCOUNT, None),
        (20003, Action.PAUSE_ACCOUNT, None),
        (39999, Action.FAIL, None),
        (None, Action.RETRY, 1),
    ],
)
def test_delivery_errors(code: int | None, action: Action, limit: int | None) -> None:
    verdict = classify_delivery_error(code)
    assert (verdict.action, verdict.retry_limit, verdict.code, verdict.http_status) == (action, limit, code, None)
    assert verdict.reason


@pytest.mark.parametrize(("code", "entry"), sorted(CODES.items()))
def test_delivery_errors_use_the_same_table(code: int, entry: tuple[Action, str]) -> None:
    verdict = classify_delivery_error(code)
    assert (verdict.action, verdict.reason) == entry
    # every retry after a downstream failure is a new billed message: it is always bounded
    assert (verdict.retry_limit is not None) == (entry[0] is Action.RETRY)


def test_delivery_retry_limits_name_only_retryable_codes() -> None:
    for code, limit in DELIVERY_RETRY_LIMITS.items():
        assert CODES[code][0] is Action.RETRY
        assert limit >= 1


# ---- totality ----

STATUSES = st.one_of(st.none(), st.integers(min_value=100, max_value=599))
CODES_ANY = st.one_of(st.none(), st.sampled_from(sorted(CODES)), st.integers(min_value=0, max_value=99999))


@given(STATUSES, CODES_ANY)
def test_classify_is_total_and_follows_the_rule_order(status: int | None, code: int | None) -> None:
    verdict = classify(status, code)
    assert isinstance(verdict.action, Action)
    assert verdict.reason
    assert (verdict.http_status, verdict.code) == (status, code)
    if code is not None and code in CODES:
        assert verdict.action is CODES[code][0]
    elif code is not None and 30500 <= code < 30600:
        assert verdict.action is Action.FAIL
    elif status is not None and status >= 500:
        assert verdict.action is Action.RETRY
    elif status is not None and 400 <= status < 500 and status not in (401, 408, 429):
        assert verdict.action is Action.FAIL


@given(CODES_ANY)
def test_classify_delivery_error_is_total(code: int | None) -> None:
    verdict = classify_delivery_error(code)
    assert isinstance(verdict.action, Action)
    assert verdict.reason
    assert verdict.retry_limit is None or verdict.action is Action.RETRY
