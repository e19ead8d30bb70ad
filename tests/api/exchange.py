"""Requests to a running stack, each answer checked against the OpenAPI document the stack serves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from jsonschema import Draft202012Validator

from notifyq.provider.signature import compute_signature
from notifyq.testing import API_TOKEN, AUTH_TOKEN, LocalStack

AUTH: Final = {"Authorization": f"Bearer {API_TOKEN}"}


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    return Draft202012Validator(schema | {"components": doc["components"]})


def signed(stack: LocalStack, path: str, form: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    """The X-Twilio-Signature header Twilio sends with ``form`` to ``path`` (path and query)."""
    url = stack.settings.public_base_url.rstrip("/") + path
    return {"X-Twilio-Signature": compute_signature(token, url, form)}


@dataclass
class Exchange:
    """Requests to a running stack, each answer checked against the document it serves."""

    stack: LocalStack
    session: aiohttp.ClientSession
    doc: dict[str, Any] = field(default_factory=dict)
    seen: set[tuple[str, str, int]] = field(default_factory=set)

    async def call(self, method: str, template: str, path: str | None = None, **kw: Any) -> tuple[int, Any]:
        url = self.stack.api_url + (path or template)
        async with self.session.request(method, url, **kw) as r:
            text = await r.text()
            self.check(method, template, r.status, r.content_type, text, r.headers)
            return r.status, json.loads(text) if r.content_type.endswith("json") else text

    def check(self, method: str, template: str, status: int, content_type: str, text: str, headers: Any) -> None:
        op = self.doc["paths"][template][method.lower()]
        response = op["responses"].get(str(status))
        assert response is not None, f"{method} {template} answered {status}: {text[:200]}"
        self.seen.add((method, template, status))
        for name, header in response.get("headers", {}).items():
            if header.get("required") or name == "WWW-Authenticate":
                assert name in headers, (method, template, status, name)
        content = response.get("content")
        if not content:
            assert text == "", (method, template, status)
            return
        assert content_type in content, (method, template, status, content_type)
        if content_type.endswith("json"):
            body = json.loads(text)
            errors = [e.message for e in validator(self.doc, content[content_type]["schema"]).iter_errors(body)]
            assert not errors, (method, template, status, errors, body)
