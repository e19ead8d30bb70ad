"""``/docs``: the page and its assets load from the API itself, and nothing on it points anywhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from notifyq.api import docs_page, openapi
from notifyq.api.operations import OPERATIONS
from notifyq.settings import Settings


class _Links(HTMLParser):
    """The URLs a page loads or links to, and the ids it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"href", "src", "action", "srcset", "poster", "data"} and value is not None:
                self.urls.append((tag, name, value))
            if name == "id" and value is not None:
                self.ids.add(value)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    docs_page.add_routes(app, openapi.add_routes(app, Settings()))
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_the_page_and_every_asset_it_loads_come_from_the_api(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/docs")
    assert (resp.status, resp.content_type, resp.charset) == (200, "text/html", "utf-8")
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    links = _Links()
    links.feed(await resp.text())
    loaded = [url for tag, _, url in links.urls if tag in {"link", "script", "img"}]
    assert loaded == ["/docs/docs.css"]
    expected_types = {"/docs/docs.css": "text/css", "/openapi.json": "application/json"}
    for _, _, url in links.urls:
        if url.startswith("#"):
            assert url[1:] in links.ids, url
            continue
        assert url in expected_types, f"{url} is not served by the API"
        asset = await client.get(url)
        assert (asset.status, asset.content_type) == (200, expected_types[url])


async def test_the_page_shows_every_operation(client: TestClient[web.Request, web.Application]) -> None:
    links = _Links()
    links.feed(await (await client.get("/docs")).text())
    assert {op.operation_id for op in OPERATIONS} <= links.ids
    assert "schema-BatchRequest" in links.ids


async def test_an_asset_that_does_not_exist_is_404(client: TestClient[web.Request, web.Application]) -> None:
    assert (await client.get("/docs/swagger-ui.js")).status == 404


def test_text_from_the_document_is_escaped() -> None:
    doc = openapi.document(Settings())
    doc["info"]["title"] = "<script>alert(1)</script>"
    page = docs_page.render(doc)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
