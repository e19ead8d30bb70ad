"""The callback receiver's form parsing: what aiohttp's request.post() gave, without the MultiDict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as hs
from pydantic import SecretStr

from notifyq.api.callbacks import form_items, verified_form
from notifyq.provider.form import TooManyFields, parse_form
from notifyq.provider.signature import compute_signature
from notifyq.settings import Settings, TwilioAccount, TwilioSettings

ACCOUNT_SID = "AC" + "0" * 32
OTHER_SID = "AC" + "1" * 32
TOKEN = "token"
BASE = "https://notifyq.example.com"


def test_repeated_names_keep_every_value_in_order() -> None:
    assert parse_form(b"MediaUrl=b&To=%2B1&MediaUrl=a", None) == [("MediaUrl", "b"), ("To", "+1"), ("MediaUrl", "a")]


def test_blank_values_plus_and_percent_escapes() -> None:
    body = b"a=&b&c=x+y&d=%2B15005550006&e=100%25"
    assert parse_form(body, None) == [("a", ""), ("b", ""), ("c", "x y"), ("d", "+15005550006"), ("e", "100%")]


def test_non_ascii_in_utf8_and_in_the_declared_charset() -> None:
    assert parse_form("Body=%C3%A9t%C3%A9+%E2%9C%93&Raw=ü".encode(), None) == [("Body", "été ✓"), ("Raw", "ü")]
    assert parse_form(b"Body=%E9t%E9&Raw=\xfc", "latin-1") == [("Body", "été"), ("Raw", "ü")]


def test_empty_and_blank_bodies_have_no_fields() -> None:
    assert parse_form(b"", None) == []
    assert parse_form(b"  \r\n", None) == []
    assert parse_form(b"", None, max_fields=1) == []


def test_trailing_whitespace_is_ignored_as_aiohttp_did() -> None:
    assert parse_form(b"a=1&b=2\r\n", None) == [("a", "1"), ("b", "2")]


def test_more_fields_than_allowed_is_refused() -> None:
    assert len(parse_form(b"a=1&b=2&c=3", None, max_fields=3)) == 3
    with pytest.raises(TooManyFields):
        parse_form(b"a=1&b=2&c=3", None, max_fields=2)


def test_a_body_that_is_not_text_in_its_charset_is_refused() -> None:
    with pytest.raises(ValueError, match="decode"):
        parse_form(b"Body=\xe9", None)
    with pytest.raises(ValueError, match="charset"):
        parse_form(b"Body=x", "no-such-charset")


@given(hs.lists(hs.tuples(hs.text(max_size=8), hs.text(max_size=12)), max_size=8))
def test_round_trips_and_matches_parse_qsl(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    parsed = parse_form(body, None)
    assert parsed == parse_qsl(body.decode(), keep_blank_values=True)
    assert parsed == pairs


# charsets a form may declare: common ones, codecs that are no text encoding, and names that are none
CHARSETS = (
    hs.sampled_from(["utf-8", "latin-1", "utf-16", "utf-32", "cp1252", "shift_jis", "idna", "punycode"])
    | hs.sampled_from(["rot13", "base64", "hex", "zlib", "undefined", "mbcs", "UTF8", "utf_8_sig"])
    | hs.text(max_size=12)
    | hs.none()
)
FORM_BYTES = hs.binary(max_size=64) | hs.lists(
    hs.sampled_from([b"a", b"=", b"&", b"+", b"%", b"%2", b"%e9", b"%ff", b"%00", b"\xe9", b"\x00", b" ", b";"]),
    max_size=24,
).map(b"".join)


@given(FORM_BYTES, CHARSETS, hs.integers(min_value=0, max_value=4))
def test_any_bytes_in_any_charset_are_fields_or_a_value_error(body: bytes, charset: str | None, cap: int) -> None:
    """The receiver answers a ValueError with a 4xx; anything else escaping would be a 500."""
    try:
        fields = parse_form(body, charset, max_fields=cap)
    except ValueError:
        return
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in fields)
    assert cap == 0 or len(fields) <= cap


# -- through aiohttp: the form a real request yields, and the responses for bodies that are not one


def _settings() -> Settings:
    account = TwilioAccount(account_sid=ACCOUNT_SID, auth_token=SecretStr(TOKEN))
    return Settings(public_base_url=BASE, twilio=TwilioSettings(accounts={"main": account}))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    settings = _settings()

    async def items(request: web.Request) -> web.StreamResponse:
        got = await form_items(request)
        return got if isinstance(got, web.Response) else web.json_response(got)

    async def verified(request: web.Request) -> web.StreamResponse:
        got = await verified_form(settings, request)
        return got if isinstance(got, web.Response) else web.json_response(got)

    async def bounded(request: web.Request) -> web.StreamResponse:
        got = await form_items(request, 1024)
        return got if isinstance(got, web.Response) else web.json_response(got)

    app = web.Application(client_max_size=8192)
    app.router.add_post("/items", items)
    app.router.add_post("/bounded", bounded)
    app.router.add_post("/twilio/verified", verified)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_an_urlencoded_body_through_aiohttp(client: TestClient[web.Request, web.Application]) -> None:
    body = "To=%2B1&MediaUrl=b&MediaUrl=a&Body=" + quote("été ✓")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.post("/items", data=body, headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == [["To", "+1"], ["MediaUrl", "b"], ["MediaUrl", "a"], ["Body", "été ✓"]]


async def test_a_declared_charset_is_used(client: TestClient[web.Request, web.Application]) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"}
    async with client.post("/items", data=b"Body=%E9&Raw=\xfc", headers=headers) as resp:
        assert await resp.json() == [["Body", "é"], ["Raw", "ü"]]


async def test_empty_body_and_other_content_types(client: TestClient[web.Request, web.Application]) -> None:
    async with client.post("/items", data=b"", headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert await resp.json() == []
    async with client.post("/items", data=b'{"a": 1}', headers={"Content-Type": "application/json"}) as resp:
        assert await resp.json() == []
    async with client.post("/items", data=aiohttp.FormData({"a": "1", "b": "é"}, default_to_multipart=True)) as resp:
        assert await resp.json() == [["a", "1"], ["b", "é"]]  # multipart still goes through request.post()


async def test_oversized_and_unreadable_bodies(client: TestClient[web.Request, web.Application]) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.post("/items", data=b"a=" + b"x" * 10_000, headers=form) as resp:
        assert resp.status == 413  # over client_max_size (the app's middleware makes it problem+json)
    async with client.post("/items", data=b"&".join([b"a=1"] * 1001), headers=form) as resp:
        assert resp.status == 413
        assert "form fields" in (await resp.json())["detail"]
    async with client.post("/items", data=b"Body=\xe9", headers=form) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_a_repeated_account_sid_is_checked_by_its_first_value(
    client: TestClient[web.Request, web.Application],
) -> None:
    pairs = [("AccountSid", ACCOUNT_SID), ("MessageStatus", "sent"), ("AccountSid", OTHER_SID)]
    signature = compute_signature(TOKEN, BASE + "/twilio/verified", pairs)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    async with client.post("/twilio/verified", data=urlencode(pairs), headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"AccountSid": OTHER_SID, "MessageStatus": "sent"}  # dict(): the last value
    swapped = [pairs[2], pairs[1], pairs[0]]  # the first names an account we do not have
    signature = compute_signature(TOKEN, BASE + "/twilio/verified", swapped)
    headers["X-Twilio-Signature"] = signature
    async with client.post("/twilio/verified", data=urlencode(swapped), headers=headers) as resp:
        assert resp.status == 403


async def test_the_url_is_checked_as_sent_with_its_query(client: TestClient[web.Request, web.Application]) -> None:
    body = urlencode([("AccountSid", ACCOUNT_SID)])
    # a bare trailing "?" is kept as sent (aiohttp's client would drop it: write the request by hand)
    for target in ("/twilio/verified?x=1&y=%20", "/twilio/verified?"):
        signature = compute_signature(TOKEN, BASE + target, [("AccountSid", ACCOUNT_SID)])
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Twilio-Signature: {signature}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body.encode())
        status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"200", target


async def test_a_bound_below_the_apps_holds_for_every_kind_of_body(
    client: TestClient[web.Request, web.Application],
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.post("/bounded", data=b"a=" + b"x" * 1000, headers=form) as resp:
        assert resp.status == 200
    async with client.post("/bounded", data=b"a=" + b"x" * 2000, headers=form) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/problem+json"
    multipart = aiohttp.FormData({"a": "x" * 2000}, default_to_multipart=True)
    async with client.post("/bounded", data=multipart) as resp:
        assert resp.status == 413  # request.post() alone would read it up to the app's 8192
        assert resp.content_type == "application/problem+json"
