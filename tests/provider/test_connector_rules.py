"""The connector's pure rules: which failed attempt is retried and when, which path a raw request may take,
and when the kept TwiML Application has drifted."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from notifyq.provider.provision import application_fields, drifted
from notifyq.provider.rest import api_path, refuse_create
from notifyq.provider.retry import MAX_DELAY_MS, Failure, RetryOptions, retry_delay_s, should_retry

SID = "AC" + "a" * 32
RETRY_3 = RetryOptions(max_retries=3)


@pytest.mark.parametrize(
    ("failure", "method", "retried"),
    [
        (Failure(500, None), "GET", True),
        (Failure(503, None), "POST", True),
        (Failure(429, 20429), "POST", True),
        (Failure(400, 21611), "POST", True),  # a retryable Twilio code decides whatever the status
        (Failure(None, None), "POST", True),  # the connection never opened: nothing was sent
        (Failure(404, 20404), "GET", False),
        (Failure(400, 21211), "POST", False),
        (Failure(401, 20003), "GET", False),  # credentials: retrying changes nothing
        (Failure(None, None, ambiguous=True), "GET", True),
        (Failure(None, None, ambiguous=True), "POST", False),  # may have acted: never repeated blindly
        (Failure(None, None, ambiguous=True), "DELETE", False),
    ],
)
def test_by_default_only_what_the_error_table_retries_is_retried(failure: Failure, method: str, retried: bool) -> None:
    assert should_retry(RETRY_3, failure, method=method, retries_done=0) is retried


@pytest.mark.parametrize(
    "failure", [Failure(404, 20404), Failure(400, 21211), Failure(None, None, ambiguous=True), Failure(301, None)]
)
def test_retry_on_all_errors_retries_any_failure(failure: Failure) -> None:
    options = RetryOptions(max_retries=1, retry_on_all_errors=True)
    assert should_retry(options, failure, method="POST", retries_done=0)
    assert not should_retry(options, failure, method="POST", retries_done=1)


@given(hs.integers(0, 10), hs.integers(0, 12), hs.booleans())
def test_retries_stop_at_the_max_retry_count(max_retries: int, done: int, every: bool) -> None:
    options = RetryOptions(max_retries=max_retries, retry_on_all_errors=every)
    assert should_retry(options, Failure(500, None), method="GET", retries_done=done) is (done < max_retries)


def test_no_retries_by_default() -> None:
    assert not should_retry(RetryOptions(), Failure(503, None), method="GET", retries_done=0)


def test_a_retry_after_longer_than_an_operator_waits_ends_the_retries() -> None:
    too_long = Failure(429, 20429, retry_after_s=MAX_DELAY_MS / 1000 + 1)
    assert not should_retry(
        RetryOptions(max_retries=3, retry_on_all_errors=True), too_long, method="GET", retries_done=0
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max retries"),
        ({"max_retries": 11}, "max retries"),
        ({"retry_delay_ms": -1}, "retry delay"),
        ({"retry_delay_ms": MAX_DELAY_MS + 1}, "retry delay"),
    ],
)
def test_options_out_of_range_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryOptions(**options)


def test_the_fixed_delay_is_the_retry_delay_raised_to_retry_after() -> None:
    options = RetryOptions(max_retries=3, retry_delay_ms=250)
    assert retry_delay_s(options, Failure(500, None), 1) == 0.25
    assert retry_delay_s(options, Failure(500, None), 3) == 0.25
    assert retry_delay_s(options, Failure(429, None, retry_after_s=2.0), 1) == 2.0


@given(hs.integers(1, 20), hs.integers(0, 2**32))
def test_exponential_backoff_ignores_the_fixed_delay_and_stays_under_its_ceiling(retry: int, seed: int) -> None:
    options = RetryOptions(max_retries=10, retry_delay_ms=60_000, exponential_backoff=True, backoff_base_s=0.5)
    delay = retry_delay_s(options, Failure(500, None), retry, random.Random(seed))
    assert 0 <= delay <= min(options.backoff_cap_s, 0.5 * 2 ** (retry - 1))


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("/Accounts/$TWILIO_ACCOUNT_SID/Messages.json", f"/2010-04-01/Accounts/{SID}/Messages.json"),
        ("Accounts/{AccountSid}/Calls.json", f"/2010-04-01/Accounts/{SID}/Calls.json"),
        (f"/2010-04-01/Accounts/{SID}.json", f"/2010-04-01/Accounts/{SID}.json"),
        ("/Accounts.json", "/2010-04-01/Accounts.json"),
    ],
)
def test_a_path_is_put_under_the_api_version_with_the_account_sid(given_path: str, expected: str) -> None:
    assert api_path(given_path, SID) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "https://evil.example.com/Accounts.json",
        "//evil.example.com/Accounts.json",
        "/Accounts/../../Accounts.json",
        "/Accounts.json?PageSize=5",
        "/Accounts/x y.json",
    ],
)
def test_a_path_that_could_leave_twilio_s_api_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="a path under /2010-04-01"):
        api_path(bad, SID)


@pytest.mark.parametrize("resource", ["Messages", "Calls"])
def test_a_raw_request_does_not_create_messages_or_calls(resource: str) -> None:
    with pytest.raises(ValueError, match="does not create messages or calls"):
        refuse_create("POST", f"/2010-04-01/Accounts/{SID}/{resource}.json")
    refuse_create("GET", f"/2010-04-01/Accounts/{SID}/{resource}.json")
    refuse_create("POST", f"/2010-04-01/Accounts/{SID}/{resource}/SM{'0' * 32}.json")  # an update: allowed


def test_an_application_drifts_on_the_fields_we_keep_only() -> None:
    wanted = application_fields("https://n.example.com/", "notifyq")
    assert wanted["StatusCallback"] == "https://n.example.com/twilio/call-status"
    resource = {
        "friendly_name": "notifyq",
        "message_status_callback": "https://n.example.com/twilio/message-status",
        "sms_status_callback": "https://n.example.com/twilio/message-status",
        "status_callback": "https://n.example.com/twilio/call-status",
        "status_callback_method": "post",
        "voice_url": "https://elsewhere.example.com/voice",  # not ours to keep
    }
    assert drifted(resource, wanted) == {}
    moved = {**resource, "status_callback": "https://old.example.com/call", "status_callback_method": "GET"}
    assert drifted(moved, wanted) == {
        "StatusCallback": "https://n.example.com/twilio/call-status",
        "StatusCallbackMethod": "POST",
    }
