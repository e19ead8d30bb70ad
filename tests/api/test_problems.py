"""aiohttp's own HTTP errors as problem+json: the body is ours, the headers that go with the status stay."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from notifyq.api.problems import PROBLEM_JSON, problem_from
from notifyq.testing import API_TOKEN, LocalStack


@pytest.mark.parametrize(
    ("error", "header", "value"),
    [
        (web.HTTPMethodNotAllowed("PUT", ["GET", "POST"]), "Allow", "GET,POST"),
        (web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"}), "WWW-Authenticate", "Bearer"),
        (web.HTTPServiceUnavailable(headers={"Retry-After": "5"}), "Retry-After", "5"),
    ],
    ids=["allow", "www-authenticate", "retry-after"],
)
def test_a_problem_keeps_the_header_its_status_needs(error: web.HTTPException, header: str, value: str) -> None:
    response = problem_from(error)
    assert response is not None
    assert (response.status, response.content_type) == (error.status, PROBLEM_JSON)
    assert response.headers[header] == value


def test_a_problem_does_not_keep_the_errors_own_content_type() -> None:
    response = problem_from(web.HTTPNotFound(reason="no such file"))
    assert response is not None
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)


async def test_a_method_a_route_does_not_take_is_405_naming_those_it_does(stack: LocalStack) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_TOKEN}"}) as session,
        session.put(stack.api_url + "/v1/batches") as r,
    ):
        assert (r.status, r.content_type) == (405, PROBLEM_JSON)
        assert set(r.headers["Allow"].split(",")) == {"POST"}
        assert (await r.json())["title"] == "Method Not Allowed"
