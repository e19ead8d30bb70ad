"""Hostile input over HTTP: every malformed request answers 4xx problem+json, and nothing is stored.

Each endpoint of the producer API is tried with what a careless or hostile client sends: bodies in an
unknown charset, JSON nested far deeper than anyone writes, numbers too long to read, text that
cannot be encoded, ids and query parameters that no row could match.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import hypothesis
import pytest
import structlog
from aiohttp import web
from sqlalchemy import func, select
from yarl import URL

from helpers import people, sms_batch
from intake.helpers import BATCH_REQUESTS, JSON_VALUES
from notifyq.api.app import STATE
from notifyq.client import ApiError, Client
from notifyq.producer import Producer
from notifyq.store.schema import batches, deliveries
from notifyq.testing import API_TOKEN, LocalStack

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
DEEP = 100_000


async def _request(
    stack: LocalStack, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    """Status, content type and body (parsed when it is JSON) of one request; ``path`` is sent as written."""
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, URL(stack.api_url + path, encoded=True), data=body, headers={**AUTH, **(headers or {})}) as r,
    ):
        text = await r.text()
        parsed = json.loads(text) if r.content_type.endswith("json") else text
        return r.status, r.content_type, parsed


async def _raw(stack: LocalStack, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes no HTTP client would (a header that is not UTF-8); the status and the body."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        head + b"Host: x\r\nConnection: close\r\n" + f"Authorization: Bearer {API_TOKEN}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )  # fmt: skip
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def _stored(stack: LocalStack) -> tuple[int, int]:
    store = stack.app[STATE].require_producer().store
    async with store.engine.connect() as conn:
        counts = [(await conn.execute(select(func.count()).select_from(t))).scalar_one() for t in (batches, deliveries)]
    return counts[0], counts[1]


def _is_problem(status: int, content_type: str, body: Any, expected: int) -> bool:
    return status == expected and content_type == "application/problem+json" and body["status"] == expected


async def _submitted(stack: LocalStack) -> str:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        return str((await client.submit(sms_batch(people(2))))["id"])


# -- charset


@pytest.mark.parametrize("charset", ["bogus", "latin-1", "utf-16", "rot13"])
async def test_a_body_in_a_charset_other_than_utf8_is_415(stack: LocalStack, charset: str) -> None:
    await _submitted(stack)
    headers = {"Content-Type": f"application/json; charset={charset}"}
    body = json.dumps(sms_batch(people(2, start=3000))).encode()
    answer = await _request(stack, "POST", "/v1/batches", body, headers)
    assert _is_problem(*answer, 415), answer
    assert "UTF-8" in answer[2]["detail"]
    answer = await _request(stack, "POST", "/v1/replays", b"{}", headers)
    assert _is_problem(*answer, 415), answer
    assert await _stored(stack) == (1, 2)


async def test_utf8_may_be_named_as_the_charset(stack: LocalStack) -> None:
    body = json.dumps(sms_batch(people(2))).encode()
    for charset in ("utf-8", "UTF-8", "utf8"):
        status, _, answer = await _request(
            stack, "POST", "/v1/batches", body, {"Content-Type": f"application/json; charset={charset}"}
        )
        assert status in {200, 202}, answer


# -- JSON nobody can read


@pytest.mark.parametrize(
    "text",
    [
        '{"channel": "sms", "recipients": [' + "[" * DEEP + "]" * DEEP + "]}",  # in the streamed recipients
        '{"channel": "sms", "metadata": ' + "[" * DEEP + "]" * DEEP + ', "recipients": ["+14155550100"]}',
        '{"recipients": ["+14155550100"], "metadata": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
        "[" * DEEP + "]" * DEEP,
        '{"channel": "sms", "recipients": ["+14155550100", ' + "1" * 5000 + "]}",
        '{"validity_s": ' + "1" * 5000 + ', "recipients": ["+14155550100"]}',
        '{"recipients": ["+14155550100"], "timeout": ' + "9" * 5000 + "}",
    ],
    ids=["deep-recipient", "deep-before", "deep-after", "deep-top", "long-recipient", "long-before", "long-after"],
)
async def test_json_nested_too_deeply_or_with_too_long_a_number_is_400(stack: LocalStack, text: str) -> None:
    answer = await _request(stack, "POST", "/v1/batches", text.encode(), {"Content-Type": "application/json"})
    assert _is_problem(*answer, 400), answer
    assert answer[2]["title"] == "Malformed JSON"
    assert "set_int_max_str_digits" not in answer[2]["detail"]  # nothing about Python's internals
    assert await _stored(stack) == (0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP + "]" * DEEP,
        '{"statuses": ["failed"], "x": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"error_codes": [' + "1" * 5000 + "]}",
    ],
    ids=["deep-top", "deep-member", "long-number"],
)
async def test_replay_with_json_nobody_can_read_is_400(stack: LocalStack, text: str) -> None:
    answer = await _request(stack, "POST", "/v1/replays", text.encode(), {"Content-Type": "application/json"})
    assert _is_problem(*answer, 400), answer
    assert answer[2]["title"] == "Malformed JSON"


# -- text that cannot be encoded


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"body": "Hi {name} \\ud800"}, "body"),
        ({"recipients": [{"to": "+14155550100", "vars": {"name": "\\udfff", "code": "1"}}]}, "recipients[0].vars"),
        ({"idempotency_key": "k\\ud800"}, "idempotency_key"),
        ({"metadata": {"a": ["\\ud800"]}}, "metadata"),
    ],
)
async def test_a_lone_surrogate_is_422_naming_the_field(stack: LocalStack, fields: dict[str, Any], field: str) -> None:
    # json.dumps writes "\\ud800" as the six characters \ud800: the escape a JSON client sends
    text = json.dumps(sms_batch(people(2)) | fields).replace("\\\\u", "\\u")
    assert "\\ud" in text
    answer = await _request(stack, "POST", "/v1/batches", text.encode(), {"Content-Type": "application/json"})
    assert _is_problem(*answer, 422), answer
    assert [e["field"] for e in answer[2]["errors"]] == [field]
    assert "lone surrogate" in answer[2]["errors"][0]["reason"]
    assert await _stored(stack) == (0, 0)


async def test_an_idempotency_key_header_that_is_not_utf8_is_422(stack: LocalStack) -> None:
    body = json.dumps(sms_batch(people(2))).encode()
    status, answer = await _raw(
        stack, b"POST /v1/batches HTTP/1.1\r\nContent-Type: application/json\r\nIdempotency-Key: a\xffb\r\n", body
    )
    assert status == 422, answer
    assert [e["field"] for e in json.loads(answer)["errors"]] == ["Idempotency-Key"]
    assert await _stored(stack) == (0, 0)


async def test_a_whitespace_body_or_one_with_nul_is_422(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        for body, reason in (("  \n ", "is only whitespace"), ("Hi\x00{name}{code}", "control character U+0000")):
            with pytest.raises(ApiError) as info:
                await client.submit(sms_batch(people(2), body=body))
            assert info.value.status == 422
            assert [(e["field"], reason in e["reason"]) for e in info.value.problem["errors"]] == [("body", True)]
    assert await _stored(stack) == (0, 0)


# -- idempotency keys


async def test_the_same_idempotency_key_with_another_request_is_409(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        first = await client.submit(sms_batch(people(3)), idempotency_key="welcome")
        same = await client.submit(sms_batch(people(3)), idempotency_key="welcome")
        assert (same["id"], same["created"]) == (first["id"], False)
        for changed in (
            sms_batch(people(4)),
            sms_batch(people(3), body="Bye {name} {code}"),
            sms_batch(people(3), priority="urgent"),
        ):
            with pytest.raises(ApiError) as info:
                await client.submit(changed, idempotency_key="welcome")
            assert info.value.status == 409
            assert info.value.problem["title"] == "Idempotency key reused"
            assert info.value.problem["batch_id"] == first["id"]
            assert "different request" in info.value.problem["detail"]
    # the same request written differently (key order, spacing, a number's formatting) is the same request
    text = json.dumps(dict(reversed(sms_batch(people(3)).items())), indent=2)
    text = text.replace('"+14155552000"', '"+1 415 555 2000"')
    status, _, again = await _request(
        stack, "POST", "/v1/batches", text.encode(), {"Content-Type": "application/json", "Idempotency-Key": "welcome"}
    )
    assert (status, again["id"]) == (200, first["id"])
    assert await _stored(stack) == (1, 3)


async def test_an_idempotency_key_in_the_header_and_another_in_the_body_is_422(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        with pytest.raises(ApiError) as info:
            await client.submit(sms_batch(people(2), idempotency_key="body-key"), idempotency_key="header-key")
        assert info.value.status == 422
        assert [e["field"] for e in info.value.problem["errors"]] == ["Idempotency-Key"]
        same = await client.submit(sms_batch(people(2), idempotency_key="k"), idempotency_key="k")
        assert same["idempotency_key"] == "k"


# -- ids, query parameters and replay bodies


@pytest.mark.parametrize("bad", ["%00", "%ED%A0%80", "%FF", "x" * 24, "0" * 300])
async def test_an_id_that_no_row_could_have_is_404_on_every_endpoint(stack: LocalStack, bad: str) -> None:
    for method, path in (
        ("GET", f"/v1/batches/{bad}"),
        ("GET", f"/v1/batches/{bad}/deliveries"),
        ("POST", f"/v1/batches/{bad}/cancel"),
        ("GET", f"/v1/replays/{bad}"),
        ("GET", f"/v1/deliveries/{bad}"),
    ):
        answer = await _request(stack, method, path)
        assert _is_problem(*answer, 404), (method, path, answer)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=%00", "status"),
        ("status=%ED%A0%80", "status"),
        ("status=nope", "status"),
        ("after=%FF", "after"),
        ("after=" + "1" * 5000, "after"),
        ("limit=" + "1" * 5000, "limit"),
        ("limit=0", "limit"),
        ("limit=1e3", "limit"),
    ],
)
async def test_a_bad_query_parameter_is_400_naming_it(stack: LocalStack, query: str, name: str) -> None:
    batch_id = await _submitted(stack)
    answer = await _request(stack, "GET", f"/v1/batches/{batch_id}/deliveries?{query}")
    assert _is_problem(*answer, 400), answer
    assert answer[2]["detail"].startswith(name)


async def test_good_query_parameters_still_page_through_deliveries(stack: LocalStack) -> None:
    batch_id = await _submitted(stack)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        page = await client.deliveries(batch_id, status="pending", limit=1)
        rest = await client.deliveries(batch_id, status="pending", after=page["next"], limit=1000)
    assert len(page["items"]) == len(rest["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": ["failed"]}, "status"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"confirm": 1}, "confirm"),
        ({"error_codes": [True]}, "error_codes"),
        ({"error_codes": [10**20]}, "error_codes"),
        ({"statuses": "failed"}, "statuses"),
        ({"statuses": ["delivered"]}, "statuses"),
        ({"batch_ids": [7]}, "batch_ids"),
        ({"account": ""}, "account"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-07T03:00:00Z", "until": "2026-12-07T02:00:00Z"}, "until"),
    ],
)
async def test_a_bad_replay_body_is_422_naming_the_field(stack: LocalStack, body: dict[str, Any], field: str) -> None:
    answer = await _request(
        stack, "POST", "/v1/replays", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert _is_problem(*answer, 422), answer
    assert [e["field"] for e in answer[2]["errors"]] == [field]


async def test_a_replay_body_that_is_not_an_object_is_400(stack: LocalStack) -> None:
    answer = await _request(stack, "POST", "/v1/replays", b"[]", {"Content-Type": "application/json"})
    assert _is_problem(*answer, 400), answer


@hypothesis.settings(
    max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(
    BATCH_REQUESTS,
    hypothesis.strategies.integers(min_value=0, max_value=200),
    hypothesis.strategies.text(max_size=3),
    hypothesis.strategies.sampled_from(["", "; charset=utf-8", "; charset=latin-1", "; charset=nope"]),
)
async def test_any_json_text_never_gets_a_5xx(
    stack: LocalStack, fields: dict[str, Any], cut: int, noise: str, charset: str
) -> None:
    text = json.dumps(fields).replace("\\\\u", "\\u")  # let escapes through: lone surrogates reach the API
    headers = {"Content-Type": "application/json" + charset}
    for body in (text, text[:cut] + noise + text[cut:]):
        for path in ("/v1/batches", "/v1/replays"):
            status, content_type, answer = await _request(stack, "POST", path, body.encode(), headers)
            assert status < 500, (path, body, answer)
            if status >= 400:
                assert content_type == "application/problem+json", answer


# objects with the batch's field names and others, each holding any JSON value
_FIELD_NAMES = hypothesis.strategies.sampled_from(
    ["channel", "from", "body", "recipients", "to", "vars", "account", "send_at", "metadata", "", "__proto__"]
)
_ANY_JSON = (
    JSON_VALUES
    | hypothesis.strategies.dictionaries(_FIELD_NAMES | hypothesis.strategies.text(max_size=4), JSON_VALUES, max_size=6)
    | hypothesis.strategies.lists(BATCH_REQUESTS, min_size=1, max_size=2)
)


@hypothesis.settings(
    max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(_ANY_JSON)
async def test_any_json_value_is_accepted_or_a_4xx_problem(stack: LocalStack, value: Any) -> None:
    body = json.dumps(value).encode()  # NaN and Infinity included: not JSON, so a 400
    status, content_type, answer = await _request(
        stack, "POST", "/v1/batches", body, {"Content-Type": "application/json"}
    )
    assert status in (200, 202) or 400 <= status < 500, (status, body, answer)
    if status >= 400:
        assert content_type == "application/problem+json", answer


# -- faults: a 500 is still problem+json and says nothing of the code


async def test_an_unexpected_error_is_a_500_problem_without_a_traceback(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = await _submitted(stack)

    async def broken(_self: Producer, _batch_id: str) -> dict[str, Any]:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(Producer, "batch_status", broken)
    with structlog.testing.capture_logs() as logs:
        status, content_type, body = await _request(stack, "GET", f"/v1/batches/{batch_id}")
    assert (status, content_type, body["title"]) == (500, "application/problem+json", "Internal server error")
    assert "internal detail" not in json.dumps(body)
    assert "Traceback" not in json.dumps(body)
    assert [(e["event"], e["path"]) for e in logs if e["log_level"] == "error"] == [
        ("unhandled error", f"/v1/batches/{batch_id}")
    ]


# -- the Python client


async def test_the_client_sends_ids_as_one_path_segment(stack: LocalStack) -> None:
    batch_id = await _submitted(stack)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        for bad in (f"{batch_id}/cancel", f"../batches/{batch_id}", f"{batch_id}?x=1"):
            with pytest.raises(ApiError) as info:
                await client.batch(bad)
            assert info.value.status == 404, bad
        assert (await client.batch(batch_id))["total"] == 2


async def test_the_client_reports_an_error_that_is_not_json_as_an_api_error() -> None:
    async def proxy_error(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy_error)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with Client(f"http://127.0.0.1:{port}", token="t") as client:
            with pytest.raises(ApiError) as info:
                await client.batch("06h50m2omtvs4pqm5cc4sua7")
    finally:
        await runner.cleanup()
    assert info.value.status == 502
    assert info.value.problem["detail"] == "<html>Bad Gateway</html>"
