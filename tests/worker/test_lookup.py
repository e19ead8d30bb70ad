"""The look-up's failure policy: every error classified, retryable ones backed off, none read as "not found"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyq.classify import Action
from notifyq.errors import AmbiguousSend, ListTooLong, ProviderError, TransportError, TwilioApiError
from notifyq.settings import WorkerSettings
from notifyq.worker.lookup import after_failure

WORKER = WorkerSettings(max_attempts=5, backoff_base_s=1.0, backoff_cap_s=60.0, paused_recheck_s=30.0)
NOW = 1_000_000.0
RETRYABLE = [
    TwilioApiError(500, 20500, "Internal Server Error"),
    TwilioApiError(503, None, "Service Unavailable"),
    TwilioApiError(429, 20429, "Too Many Requests"),
    TransportError("GET failed: connection reset", "u"),
    AmbiguousSend("no answer after the request was sent", "u"),  # a GET: safe to repeat
    TransportError("malformed list page: no 'messages' list of records", "u"),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: type(e).__name__ + ":" + str(e)[:20])
@given(failed_before=st.integers(min_value=0, max_value=3))
def test_a_retryable_failure_comes_back_within_its_backoff(error: ProviderError, failed_before: int) -> None:
    decision = after_failure(error, failed_before, now=NOW, worker=WORKER)
    assert decision.verdict.action is Action.RETRY
    assert decision.again_at is not None
    ceiling = min(WORKER.backoff_cap_s, WORKER.backoff_base_s * 2**failed_before)
    assert NOW <= decision.again_at <= NOW + ceiling
    assert "look-up failed" in decision.reason


def test_retry_after_is_honoured() -> None:
    error = TwilioApiError(429, 20429, "Too Many Requests", retry_after_s=120.0)
    decision = after_failure(error, 0, now=NOW, worker=WORKER)
    assert decision.again_at == NOW + 120.0


@pytest.mark.parametrize("error", RETRYABLE[:2], ids=["500", "503"])
def test_after_max_attempts_failures_it_is_left_to_the_reconciler(error: ProviderError) -> None:
    decision = after_failure(error, WORKER.max_attempts - 1, now=NOW, worker=WORKER)
    assert decision.again_at is None
    assert "failed 5 times" in decision.reason
    assert "left to the reconciler" in decision.reason


@pytest.mark.parametrize(
    "error", [TwilioApiError(401, 20003, "Authenticate"), TwilioApiError(403, 20003, "Permission Denied")]
)
def test_refused_credentials_pause_the_account_and_look_again_later(error: ProviderError) -> None:
    decision = after_failure(error, 0, now=NOW, worker=WORKER)
    assert decision.verdict.action is Action.PAUSE_ACCOUNT
    assert decision.again_at == NOW + WORKER.paused_recheck_s


@pytest.mark.parametrize(
    "error",
    [
        TwilioApiError(400, 20001, "Invalid value for DateSent>"),
        TwilioApiError(404, 20404, "Not Found"),
        ListTooLong("u", 5),  # reading the same pages again would not end sooner
    ],
)
def test_a_refused_query_is_left_to_the_reconciler_at_once(error: ProviderError) -> None:
    decision = after_failure(error, 0, now=NOW, worker=WORKER)
    assert decision.verdict.action is Action.FAIL
    assert decision.again_at is None
    assert "left to the reconciler" in decision.reason
