"""The ops session cookie: signed under the operators' tokens, expiring, never the token itself."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from notifyq.api.ops_session import SESSION_S, OperatorAuth

NOW = 1_800_000_000.0


def test_a_cookie_holds_no_token_and_is_valid_until_it_expires() -> None:
    auth = OperatorAuth(["operator-token-1"], secure=False)
    value = auth.issue(now=NOW)
    assert "operator-token-1" not in value
    assert auth.session_ok(value, now=NOW)
    assert auth.session_ok(value, now=NOW + SESSION_S - 1)
    assert not auth.session_ok(value, now=NOW + SESSION_S)


def test_two_sign_ins_get_different_cookies() -> None:
    auth = OperatorAuth(["operator-token-1"], secure=False)
    assert auth.issue(now=NOW) != auth.issue(now=NOW)


def test_a_changed_expiry_or_mac_is_refused() -> None:
    auth = OperatorAuth(["operator-token-1"], secure=False)
    expiry, nonce, mac = auth.issue(now=NOW).split(".")
    later = str(int(expiry) + 3600)
    assert not auth.session_ok(f"{later}.{nonce}.{mac}", now=NOW)
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert not auth.session_ok(f"{expiry}.{nonce}.{flipped}", now=NOW)
    for junk in ("", ".", "..", "x.y.z", f"{expiry}..{mac}"):
        assert not auth.session_ok(junk, now=NOW), junk


def test_removing_a_token_ends_every_session() -> None:
    value = OperatorAuth(["a-token", "b-token"], secure=False).issue(now=NOW)
    assert OperatorAuth(["b-token", "a-token"], secure=False).session_ok(value, now=NOW)  # order does not matter
    assert not OperatorAuth(["b-token"], secure=False).session_ok(value, now=NOW)


def test_without_tokens_nobody_signs_in_and_no_cookie_is_valid() -> None:
    auth = OperatorAuth([], secure=False)
    assert not auth.token_ok("")
    assert not auth.token_ok("anything")
    assert not auth.session_ok(auth.issue(now=NOW), now=NOW)


def test_only_a_configured_token_signs_in() -> None:
    auth = OperatorAuth(["a-token", "b-token"], secure=True)
    assert auth.token_ok("a-token")
    assert auth.token_ok("b-token")
    assert not auth.token_ok("a-toke")
    assert not auth.token_ok("")


def test_the_cookie_is_secure_over_https_and_always_httponly_strict() -> None:
    for secure, expected in ((True, True), (False, False)):
        response = web.Response()
        OperatorAuth(["a-token"], secure=secure).sign_in(make_mocked_request("POST", "/ops/signin"), response)
        morsel = response.cookies["notifyq_ops"]
        assert bool(morsel["secure"]) is expected
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/ops"
        assert "a-token" not in morsel.value
