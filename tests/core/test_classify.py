"""Error classification, held against Twilio's documentation rather than against classify.py's own table.

The expected actions are copied here as literals from these references (the tests never read them):

* Twilio error dictionary, https://www.twilio.com/docs/errors/<code>: the meaning of each code and whether
  a retry can help ("Requests that receive 429 responses aren't processed and are safe to retry after
  backing off"; 30003 "A one-time downstream issue can cause a transient delivery failure"; 30006 "do not
  retry the same SMS"). Quotation marks below mark Twilio's words; the rest paraphrases its pages.
* Twilio support, "Messages Marked 'Failed' or 'Undelivered'": a REST API error "generally returns a
  2XXXX error code" with 400 Bad Request; failed or undelivered messages "generally return a 30XXX error
  code" in their status callback.
* Twilio test credentials, https://www.twilio.com/docs/iam/test-credentials: the magic numbers and the
  codes they produce (end to end in tests/e2e/test_twilio_magic_numbers.py).
* docs/architecture.md, invariant 5: what each kind of error makes notifyq do (retry with backoff, fail
  the delivery, suppress the recipient, stop the account).

The HTTP-status fallbacks and the bounds on new messages after a callback failure are notifyq's own
specification; their tables below are that specification, and say so.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyq.classify import CODES, Action, classify, classify_delivery_error

RETRY, FAIL, SUPPRESS, PAUSE = Action.RETRY, Action.FAIL, Action.SUPPRESS, Action.PAUSE_ACCOUNT


class Documented(NamedTuple):
    """One error as Twilio documents it, and what notifyq must do about it."""

    code: int
    action: Action
    meaning: str  # words of Twilio's title for the code; the verdict's reason must carry them
    http_status: int | None = None  # the status a create is answered with (None: reported by a callback)


# Errors a create request (POST Messages.json / Calls.json) is answered with, the HTTP status last. Twilio
# answers a rejected request with 400 and a 2XXXX code, bad credentials with 401, too much concurrency with 429.
CREATE_ERRORS = [
    # account level: every delivery of the account would fail alike, so the account stops
    Documented(20003, PAUSE, "permission denied", 401),  # auth failed, suspended or closed: fix the credentials
    # "your account exceeds allowed concurrency to Twilio's REST API": not processed, "safe to retry"
    Documented(20429, RETRY, "too many concurrent requests", 429),
    # trial accounts: "When 5 calls are active, any further requests will be rejected with Error 10004"
    Documented(10004, RETRY, "call concurrency limit", 400),
    # messages, refused at create
    Documented(21211, FAIL, "invalid 'to' phone number", 400),
    Documented(21212, FAIL, "invalid 'from' phone number", 400),
    Documented(21408, FAIL, "region", 400),  # "enable SMS permissions for this country" (Geo Permissions)
    Documented(21606, FAIL, "message-capable", 400),  # 'From' not a valid message-capable Twilio number
    Documented(21610, SUPPRESS, "unsubscribed", 400),  # opted out with STOP: never resend, mark opted out
    Documented(21611, RETRY, "queue", 400),  # the From number's queue holds over 10 h: later, after throttling
    Documented(21612, FAIL, "route", 400),  # cannot route between this To and From
    Documented(21614, FAIL, "not a mobile number", 400),  # 'To' not a valid mobile number, cannot receive SMS
    Documented(21635, FAIL, "landline", 400),  # 'To' is a landline
    # calls, refused at create
    Documented(21210, FAIL, "verified", 400),  # 'From' not a verified caller ID or Twilio number
    Documented(21214, FAIL, "cannot be reached", 400),
    Documented(21215, FAIL, "region", 400),  # Geo Permissions for calls
    Documented(21216, FAIL, "blocked", 400),
    Documented(21217, FAIL, "invalid 'to' phone number", 400),
    Documented(22005, RETRY, "queue is full", 400),  # over 24 h of calls at the account's CPS: later
]

# Errors a status callback reports with MessageStatus failed/undelivered (ErrorCode). The action says
# whether a new message is worth sending; each one is billed, so every retry here is bounded.
CALLBACK_ERRORS = [
    # queue overflow: more than the sender can send in time; later, at a lower rate
    Documented(30001, RETRY, "queue overflow"),
    Documented(30002, PAUSE, "account suspended"),
    # unreachable handset, "powered down, out of the service area": a limited, delayed retry
    Documented(30003, RETRY, "unreachable handset"),
    Documented(30004, FAIL, "blocked"),  # "Message blocked"
    Documented(30005, FAIL, "unknown destination handset"),  # "To number is unknown, or no longer in service"
    Documented(30006, FAIL, "landline or unreachable carrier"),  # "do not retry the same SMS"
    Documented(30007, FAIL, "carrier filtering"),  # fix content or sender registration
    Documented(30008, RETRY, "unknown error"),  # a generic carrier error: one delayed retry
    Documented(30034, FAIL, "unregistered"),  # US A2P 10DLC, sent from an unregistered number
    # ValidityPeriod expired. Twilio: a retry is optional, with a longer period; notifyq keeps the batch's
    # own validity, so a new message would expire the same way
    Documented(30036, FAIL, "validity period"),
    # toll-free verification and A2P registration review errors, a family numbered by the hundred
    Documented(30500, FAIL, "registration"),
    Documented(30532, FAIL, "registration"),
    Documented(30533, FAIL, "registration"),
    Documented(30538, FAIL, "registration"),
    Documented(30599, FAIL, "registration"),
    Documented(63005, FAIL, "media"),  # WhatsApp: an MP4 "which do[es] not include an audio track"
    # an opt-out Twilio learns of after accepting the message
    Documented(21610, SUPPRESS, "unsubscribed"),
]

DOCUMENTED = CREATE_ERRORS + CALLBACK_ERRORS
BY_CODE = sorted({case.code: case for case in DOCUMENTED}.values())


def _id(case: Documented) -> str:
    return f"{case.code}-{case.action}"


# ---- what Twilio documents for each code ----


@pytest.mark.parametrize("case", CREATE_ERRORS, ids=_id)
def test_create_error_gets_the_documented_action(case: Documented) -> None:
    verdict = classify(case.http_status, case.code)
    assert verdict.action is case.action
    assert (verdict.http_status, verdict.code, verdict.retry_limit) == (case.http_status, case.code, None)
    assert case.meaning in verdict.reason.lower()


@pytest.mark.parametrize("case", CALLBACK_ERRORS, ids=_id)
def test_callback_error_gets_the_documented_action(case: Documented) -> None:
    verdict = classify_delivery_error(case.code)
    assert verdict.action is case.action
    assert (verdict.http_status, verdict.code) == (None, case.code)
    assert case.meaning in verdict.reason.lower()
    # a new message after a downstream failure is billed again: a retry is always bounded, nothing else retries
    assert (verdict.retry_limit is not None) == (case.action is RETRY)


# notifyq's own specification: how many new messages a delivery may get after a callback reports a
# retryable failure: one for a generic carrier error (30008), a few for the transient ones.
@pytest.mark.parametrize(("code", "limit"), [(30001, 2), (30003, 2), (30008, 1), (None, 1)])
def test_retries_after_a_callback_failure_are_bounded(code: int | None, limit: int) -> None:
    verdict = classify_delivery_error(code)
    assert (verdict.action, verdict.retry_limit) == (RETRY, limit)


@given(st.sampled_from(BY_CODE), st.one_of(st.none(), st.integers(min_value=100, max_value=599)))
def test_a_documented_code_decides_whatever_the_http_status(case: Documented, status: int | None) -> None:
    """Twilio's code is the precise answer; the status only says which family it belongs to."""
    verdict = classify(status, case.code)
    assert verdict.action is case.action
    assert (verdict.http_status, verdict.code) == (status, case.code)


def test_a_code_means_the_same_at_create_and_in_a_callback() -> None:
    """One table answers both questions: a code Twilio documents gets its action whichever way it comes."""
    found = {case.code: classify_delivery_error(case.code).action for case in BY_CODE}
    assert found == {case.code: case.action for case in BY_CODE}


# ---- what notifyq does without a known code (its own rules; the table is the specification) ----


@pytest.mark.parametrize(
    ("status", "code", "action"),
    [
        pytest.param(None, None, RETRY, id="transport error"),
        pytest.param(429, None, RETRY, id="429 without a code: not processed, safe to retry"),
        pytest.param(500, None, RETRY, id="500"),
        pytest.param(502, None, RETRY, id="502"),
        pytest.param(503, 99999, RETRY, id="unknown 5xx with unknown code"),
        pytest.param(504, None, RETRY, id="504"),
        pytest.param(408, None, RETRY, id="408 not processed"),
        pytest.param(401, None, PAUSE, id="401 bad credentials"),
        pytest.param(400, None, FAIL, id="400 without a code"),
        pytest.param(400, 21999, FAIL, id="unknown 4xx code"),
        pytest.param(403, None, FAIL, id="403"),
        pytest.param(404, 20404, FAIL, id="404"),
        pytest.param(422, None, FAIL, id="422"),
        pytest.param(None, 12345, FAIL, id="unknown code without a status"),
        pytest.param(200, None, FAIL, id="a success status reported as failure"),
        pytest.param(302, None, FAIL, id="a redirect"),
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


def test_an_unknown_callback_error_is_not_retried() -> None:
    verdict = classify_delivery_error(39999)
    assert (verdict.action, verdict.retry_limit) == (FAIL, None)
    assert "39999" in verdict.reason


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CODES[1] = (Action.FAIL, "x")  # type: ignore[index]


def test_verdict_is_frozen_and_action_renders_as_text() -> None:
    verdict = classify(429, 20429)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.action = Action.FAIL  # type: ignore[misc]
    assert f"{Action.PAUSE_ACCOUNT}" == "pause_account"
    assert Action("suppress") is Action.SUPPRESS


# ---- totality: every input gets a verdict, and the status rules hold without a code ----

STATUSES = st.one_of(st.none(), st.integers(min_value=100, max_value=599))
ANY_CODE = st.one_of(st.none(), st.sampled_from([c.code for c in BY_CODE]), st.integers(0, 99999))


@given(STATUSES, ANY_CODE)
def test_classify_is_total(status: int | None, code: int | None) -> None:
    verdict = classify(status, code)
    assert isinstance(verdict.action, Action)
    assert verdict.reason
    assert (verdict.http_status, verdict.code, verdict.retry_limit) == (status, code, None)


@given(st.integers(min_value=100, max_value=599))
def test_without_a_code_the_status_decides(status: int) -> None:
    action = classify(status, None).action
    if status >= 500 or status in {408, 429}:  # the request was not processed: safe to send again
        assert action is RETRY
    elif status == 401:
        assert action is PAUSE
    else:
        assert action is FAIL


@given(ANY_CODE)
def test_classify_delivery_error_is_total(code: int | None) -> None:
    verdict = classify_delivery_error(code)
    assert isinstance(verdict.action, Action)
    assert verdict.reason
    assert (verdict.retry_limit is not None) == (verdict.action is RETRY)
    assert verdict.retry_limit is None or verdict.retry_limit >= 1
