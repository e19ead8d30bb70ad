"""X-Twilio-Signature, checked against the example in Twilio's security docs and its port quirk."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as hs

from notifyq.provider.signature import compute_signature, is_valid_signature

# the worked example from Twilio's webhook-security documentation
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
EXPECTED = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_matches_twilios_documented_example() -> None:
    assert compute_signature(TOKEN, URL, PARAMS) == EXPECTED
    assert is_valid_signature(TOKEN, URL, PARAMS, EXPECTED)


def test_accepts_the_url_signed_with_or_without_the_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    sig_with_port = compute_signature(TOKEN, with_port, PARAMS)
    assert is_valid_signature(TOKEN, URL, PARAMS, sig_with_port)
    assert is_valid_signature(TOKEN, with_port, PARAMS, EXPECTED)


def test_rejects_wrong_token_missing_signature_and_changed_params() -> None:
    assert not is_valid_signature("other", URL, PARAMS, EXPECTED)
    assert not is_valid_signature(TOKEN, URL, PARAMS, None)
    assert not is_valid_signature(TOKEN, URL, PARAMS, "")
    assert not is_valid_signature(TOKEN, URL, {**PARAMS, "Digits": "4321"}, EXPECTED)
    assert not is_valid_signature(TOKEN, URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED)


def test_repeated_parameters_are_sorted_by_value() -> None:
    items = [("MediaUrl", "b"), ("MediaUrl", "a"), ("To", "+1")]
    assert compute_signature(TOKEN, URL, items) == compute_signature(TOKEN, URL, list(reversed(items)))


@given(hs.dictionaries(hs.text(min_size=1, max_size=8), hs.text(max_size=20), max_size=6))
def test_any_parameter_set_round_trips(params: dict[str, str]) -> None:
    sig = compute_signature(TOKEN, URL, params)
    assert is_valid_signature(TOKEN, URL, params, sig)
