"""The ops session cookie: signed under the server's session key, expiring, never the token itself."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from notifyq.api.ops_session import SESSION_S, OperatorAuth, session_key

NOW = 1_800_000_000.0
KEY = session_key(None, ["operator-token-1"])


def test_a_cookie_holds_no_token_and_is_valid_until_it_expires() -> None:
    auth = OperatorAuth(KEY, secure=False)
    value = auth.issue("env", now=NOW)
    assert "operator-token-1" not in value
    assert auth.session(value, now=NOW) == "env"
    assert auth.session(value, now=NOW + SESSION_S - 1) == "env"
    assert auth.session(value, now=NOW + SESSION_S) is None


def test_a_cookie_names_the_token_it_was_issued_for() -> None:
    auth = OperatorAuth(KEY, secure=False)
    assert auth.session(auth.issue("0123456789ab", now=NOW), now=NOW) == "0123456789ab"


def test_two_sign_ins_get_different_cookies() -> None:
    auth = OperatorAuth(KEY, secure=False)
    assert auth.issue("env", now=NOW) != auth.issue("env", now=NOW)


def test_a_changed_expiry_who_or_mac_is_refused() -> None:
    auth = OperatorAuth(KEY, secure=False)
    expiry, who, nonce, mac = auth.issue("0123456789ab", now=NOW).split(".")
    later = str(int(expiry) + 3600)
    assert auth.session(f"{later}.{who}.{nonce}.{mac}", now=NOW) is None
    assert auth.session(f"{expiry}.env.{nonce}.{mac}", now=NOW) is None
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert auth.session(f"{expiry}.{who}.{nonce}.{flipped}", now=NOW) is None
    for junk in ("", ".", "..", "...", "x.y.z.w", f"{expiry}...{mac}", f"{expiry}.{who}..{mac}"):
        assert auth.session(junk, now=NOW) is None, junk


def test_changing_the_environment_tokens_ends_every_session_derived_from_them() -> None:
    value = OperatorAuth(session_key(None, ["a-token", "b-token"]), secure=False).issue("env", now=NOW)
    same = OperatorAuth(session_key(None, ["b-token", "a-token"]), secure=False)  # order does not matter
    assert same.session(value, now=NOW) == "env"
    assert OperatorAuth(session_key(None, ["b-token"]), secure=False).session(value, now=NOW) is None


def test_a_configured_key_signs_whatever_the_tokens_and_changing_it_ends_every_session() -> None:
    value = OperatorAuth(session_key("server-key-1", ["a-token"]), secure=False).issue("env", now=NOW)
    assert OperatorAuth(session_key("server-key-1", []), secure=False).session(value, now=NOW) == "env"
    assert OperatorAuth(session_key("server-key-2", ["a-token"]), secure=False).session(value, now=NOW) is None


def test_without_a_key_or_tokens_each_process_has_a_random_key_of_its_own() -> None:
    assert session_key(None, []) != session_key(None, [])
    value = OperatorAuth(session_key(None, []), secure=False).issue("env", now=NOW)
    assert OperatorAuth(session_key(None, []), secure=False).session(value, now=NOW) is None


def test_the_cookie_is_secure_over_https_and_always_httponly_strict() -> None:
    for secure, expected in ((True, True), (False, False)):
        response = web.Response()
        OperatorAuth(KEY, secure=secure).sign_in(make_mocked_request("POST", "/ops/signin"), response, "env")
        morsel = response.cookies["notifyq_ops"]
        assert bool(morsel["secure"]) is expected
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/ops"
        assert "operator-token-1" not in morsel.value
