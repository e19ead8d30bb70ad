"""``/docs``: the OpenAPI document as one HTML page, rendered here, with its stylesheet served beside it.

The page is server-rendered from the same document ``/openapi.json`` serves, and needs no script:
every operation with its parameters, request body, examples and responses, then every schema. Its
only asset is ``/docs/docs.css``; the Content-Security-Policy allows nothing from elsewhere. The
browsable bundles on PyPI ship a Swagger UI too old for OpenAPI 3.1, and a page of our own is
smaller than any of them.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any, Final

from aiohttp import web

from notifyq.api.spec import Schema

PAGE: Final = web.AppKey("notifyq_docs_page", bytes)
CSP: Final = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
_CSS: Final = b"""\
body { font: 15px/1.5 system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
section.op { border: 1px solid #ddd; border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0; }
.method { font: bold 13px monospace; padding: .1rem .4rem; border-radius: 4px; color: #fff; background: #456; }
.GET { background: #2a7a3b; } .POST { background: #2857a4; }
code, pre { font: 13px/1.4 ui-monospace, monospace; } pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; }
.status { font-weight: bold; } nav a { margin-right: 1rem; }
"""
ASSETS: Final[dict[str, tuple[bytes, str]]] = {"docs.css": (_CSS, "text/css")}
_CODE: Final = re.compile(r"`([^`]+)`")


def _prose(text: str) -> str:
    """Text from the document as HTML: escaped, with `code` spans set as code."""
    return _CODE.sub(r"<code>\1</code>", escape(text))


def _json(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _schema_link(schema: Schema) -> str:
    target = schema.get("$ref", "")
    if target.startswith("#/components/schemas/"):
        name = escape(target.rsplit("/", 1)[1])
        return f'<a href="#schema-{name}">{name}</a>'
    return _json(schema)


def _content(content: Schema) -> str:
    parts = []
    for media, body in content.items():
        parts.append(f"<p>&nbsp;&nbsp;<code>{escape(media)}</code> {_schema_link(body.get('schema', {}))}</p>")
        if "example" in body:
            parts.append("<details><summary>Example</summary>" + _json(body["example"]) + "</details>")
        for name, example in body.get("examples", {}).items():
            summary = escape(example.get("summary", name))
            parts.append(f"<details><summary>Example: {summary}</summary>{_json(example['value'])}</details>")
    return "".join(parts)


def _operation(method: str, path: str, op: Schema) -> str:
    out = [
        (
            f'<section class="op" id="{escape(op["operationId"])}"><h3><span class="method {method.upper()}">'
            f"{method.upper()}</span> <code>{escape(path)}</code></h3><p>{escape(op['summary'])}</p>"
        )
    ]
    if op.get("description"):
        out.append(f"<p>{_prose(op['description'])}</p>")
    auth = ", ".join(name for req in op.get("security", []) for name in req) or "none"
    out.append(f"<p>Auth: <code>{escape(auth)}</code></p>")
    if op.get("parameters"):
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td><td>{escape(json.dumps(p.get('schema', {})))}</td>"
            f"<td>{_prose(p.get('description', ''))}</td></tr>"
            for p in op["parameters"]
        )
        out.append(
            f"<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th></th></tr>{rows}</table>"
        )
    if "requestBody" in op:
        out.append("<h4>Request body</h4>" + _content(op["requestBody"].get("content", {})))
    out.append("<h4>Responses</h4>")
    for status, response in op["responses"].items():
        out.append(f'<p><span class="status">{escape(status)}</span> {_prose(response["description"])}</p>')
        out.append(_content(response.get("content", {})))
    out.append("</section>")
    return "".join(out)


def _index(document: Schema) -> str:
    """One line per operation, linking to it."""
    rows = "".join(
        f'<tr><td><span class="method {method.upper()}">{method.upper()}</span></td>'
        f'<td><a href="#{escape(op["operationId"])}"><code>{escape(path)}</code></a></td>'
        f"<td>{_prose(op['summary'])}</td></tr>"
        for path, item in document["paths"].items()
        for method, op in item.items()
    )
    return f"<table>{rows}</table>"


def render(document: Schema) -> str:
    """The page for ``document``."""
    info = document["info"]
    body = [
        f"<h1>{escape(info['title'])} {escape(info['version'])}</h1>",
        '<nav><a href="/openapi.json">openapi.json</a>'
        + "".join(f'<a href="#tag-{escape(t["name"])}">{escape(t["name"])}</a>' for t in document["tags"])
        + '<a href="#schemas">Schemas</a></nav>',
        "".join(f"<p>{_prose(p)}</p>" for p in info["description"].split("\n\n")),
        _index(document),
    ]
    for tag in document["tags"]:
        body.append(f'<h2 id="tag-{escape(tag["name"])}">{escape(tag["name"])}</h2><p>{_prose(tag["description"])}</p>')
        for path, item in document["paths"].items():
            body.extend(_operation(method, path, op) for method, op in item.items() if tag["name"] in op["tags"])
    body.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in document["components"]["schemas"].items():
        body.append(f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>{_json(schema)}')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(info['title'])} API</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/docs/docs.css"></head><body>' + "".join(body) + "</body></html>"
    )


def add_routes(app: web.Application, document: Schema) -> None:
    """Serve the page at ``/docs`` and its assets at ``/docs/{asset}``; the page is rendered once, here."""
    app[PAGE] = render(document).encode()
    app.router.add_get("/docs", _page)
    app.router.add_get("/docs/{asset}", _asset)


async def _page(request: web.Request) -> web.StreamResponse:
    response = web.Response(body=request.app[PAGE], content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    return response


async def _asset(request: web.Request) -> web.StreamResponse:
    found = ASSETS.get(request.match_info["asset"])
    if found is None:
        raise web.HTTPNotFound(reason="Not found", text="no such file")
    body, content_type = found
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "max-age=3600"})
