"""Callbacks signed by Twilio's own validator (twilio-python's ``RequestValidator``, a dev dependency only).

Twilio signs the URL it called, which is notifyq's public URL, not the one the API process sees
behind a proxy. Each documented proxy layout is a ``public_base_url``: a path prefix the proxy strips,
a port of its own, https terminated at the proxy. In each, a callback Twilio signed is accepted, and
any change to the URL, a parameter, or the header is refused 403 with nothing kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from twilio.request_validator import RequestValidator, add_port

from notifyq.client import Client
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack

VALIDATOR = RequestValidator(AUTH_TOKEN)
SID = "SM" + "5" * 32

# public base URL as Twilio knows it -> how the proxy hands the request on (the API sees only the path)
LAYOUTS = {
    "direct": None,  # the API's own address
    "path-prefix": "https://hooks.example.com/notifyq",
    "own-port": "https://hooks.example.com:8443",
    "https-terminated": "https://hooks.example.com",
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Signatures are checked before anything reaches the store: these run on SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"


@pytest.fixture(params=list(LAYOUTS), ids=list(LAYOUTS))
def layout(request: pytest.FixtureRequest, stack: LocalStack) -> Iterator[str]:
    public = LAYOUTS[request.param] or stack.api_url
    before = stack.settings.public_base_url
    stack.settings.public_base_url = public
    yield public
    stack.settings.public_base_url = before


async def _pending(stack: LocalStack) -> str:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(
            {"channel": "sms", "from": "+15005550006", "body": "x", "recipients": ["+14155550199"]}
        )
    [row] = await stack.worker_app.store.list_deliveries(accepted["id"], limit=2)
    return row.id


def _form(status: str = "sent") -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": SID,
        "MessageStatus": status,
        "To": "+14155550199",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
    }


async def _post(stack: LocalStack, path: str, headers: dict[str, str], **body: object) -> int:
    async with aiohttp.ClientSession() as s, s.post(stack.api_url + path, headers=headers, **body) as resp:  # type: ignore[arg-type]
        return resp.status


async def _kept(stack: LocalStack, delivery_id: str) -> tuple[str, list[object]]:
    await stack.inbox.drain()
    row = await stack.worker_app.store.get_delivery(delivery_id)
    return row.status, await stack.worker_app.store.events(delivery_id)


def _path(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.removeprefix("/notifyq")  # the path-prefix proxy strips its prefix
    return urlunsplit(("", "", path, parts.query, ""))


async def test_a_callback_signed_by_twilios_validator_is_accepted(stack: LocalStack, layout: str) -> None:
    delivery_id = await _pending(stack)
    url = f"{layout}/twilio/message-status/{delivery_id}"
    form = _form()
    signature = VALIDATOR.compute_signature(url, form)
    assert await _post(stack, _path(url), {"X-Twilio-Signature": signature}, data=form) == 200
    status, _ = await _kept(stack, delivery_id)
    assert status == "sent"


async def test_a_signature_over_the_url_with_its_default_port_is_accepted(stack: LocalStack, layout: str) -> None:
    """Twilio signs the URL with or without the scheme's port: its validator accepts both, and so does notifyq."""
    delivery_id = await _pending(stack)
    url = f"{layout}/twilio/message-status/{delivery_id}"
    form = _form()
    signature = VALIDATOR.compute_signature(add_port(urlsplit(url)), form)
    assert await _post(stack, _path(url), {"X-Twilio-Signature": signature}, data=form) == 200


TAMPERINGS = ["path", "query-added", "value", "param-added", "param-dropped", "header-changed", "other-host"]


async def test_any_change_to_a_signed_callback_is_refused(stack: LocalStack, layout: str) -> None:
    for tampering in TAMPERINGS:
        delivery_id = await _pending(stack)
        other_id = await _pending(stack)
        url = f"{layout}/twilio/message-status/{delivery_id}"
        form = _form()
        signature = VALIDATOR.compute_signature(url, form)
        path = _path(url)
        if tampering == "path":
            path = path.replace(delivery_id, other_id)
        elif tampering == "query-added":
            path += "?x=1"
        elif tampering == "value":
            form["MessageStatus"] = "delivered"
        elif tampering == "param-added":
            form["ErrorCode"] = "30003"
        elif tampering == "param-dropped":
            del form["To"]
        elif tampering == "header-changed":
            signature = signature[:-2] + ("A=" if signature[-2:] != "A=" else "B=")
        else:  # signed for another host
            host = urlsplit(url).hostname or ""
            signature = VALIDATOR.compute_signature(url.replace(host, "evil.example.com", 1), form)
        assert await _post(stack, path, {"X-Twilio-Signature": signature}, data=form) == 403, tampering
        for ident in (delivery_id, other_id):
            assert await _kept(stack, ident) == ("pending", []), tampering


def _json_url(base: str, body: bytes) -> str:
    return f"{base}?bodySHA256={hashlib.sha256(body).hexdigest()}"


async def test_a_json_callback_with_its_body_hash_in_the_url_is_accepted(stack: LocalStack, layout: str) -> None:
    """The JSON variant: the signature covers the URL, whose ``bodySHA256`` is the body's hash."""
    delivery_id = await _pending(stack)
    body = json.dumps(_form()).encode()
    url = _json_url(f"{layout}/twilio/message-status/{delivery_id}", body)
    signature = VALIDATOR.compute_signature(url, {})
    assert VALIDATOR.validate(url, body.decode(), signature)  # as Twilio's own validator reads it
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    assert await _post(stack, _path(url), headers, data=body) == 200
    status, _ = await _kept(stack, delivery_id)
    assert status == "sent"


@pytest.mark.parametrize("tampering", ["body", "hash", "no-hash", "header"])
async def test_a_json_callback_changed_anywhere_is_refused(stack: LocalStack, tampering: str) -> None:
    delivery_id = await _pending(stack)
    body = json.dumps(_form()).encode()
    base = stack.settings.callback_url("message", delivery_id)
    url = _json_url(base, body)
    signature = VALIDATOR.compute_signature(url, {})
    if tampering == "body":
        body = json.dumps(_form("delivered")).encode()
    elif tampering == "hash":
        url = _json_url(base, json.dumps(_form("delivered")).encode())
        signature = VALIDATOR.compute_signature(url, {})  # a signed URL, but for another body
    elif tampering == "no-hash":
        url, signature = base, VALIDATOR.compute_signature(base, {})
    else:
        signature = VALIDATOR.compute_signature(url + "&x=1", {})
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    assert await _post(stack, _path(url), headers, data=body) == 403
    assert await _kept(stack, delivery_id) == ("pending", [])


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b'{"a": ' * 2000 + b"1" + b"}" * 2000])
async def test_a_json_body_that_is_not_an_object_is_400(stack: LocalStack, body: bytes) -> None:
    delivery_id = await _pending(stack)
    url = _json_url(stack.settings.callback_url("message", delivery_id), body)
    headers = {"X-Twilio-Signature": VALIDATOR.compute_signature(url, {}), "Content-Type": "application/json"}
    assert await _post(stack, _path(url), headers, data=body) in (400, 413)
    assert await _kept(stack, delivery_id) == ("pending", [])
