"""The page query's and the replay body's schemas held to the handlers: a value just inside and just outside
each constraint, sent to the schema and to a running stack; a constraint without a case fails.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from helpers import people, sms_batch
from notifyq.api.openapi import document
from notifyq.settings import Settings
from notifyq.testing import API_TOKEN, LocalStack

AUTH: Final = {"Authorization": f"Bearer {API_TOKEN}"}
SETTINGS: Final = Settings(api={"tokens": ["t"]})


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    return Draft202012Validator(schema | {"components": doc["components"]})


_PAGE = "/v1/batches/{batch_id}/deliveries"
_REPLAY_SCHEMA = {"$ref": "#/components/schemas/ReplayRequest"}
_KEYWORDS: Final = {"minimum", "maximum", "enum", "pattern", "minItems", "maxItems", "minLength", "maxLength"}
# (query parameter, its schema's keyword, a value just inside it, one just outside it)
QUERY_EDGES: Final = [
    ("limit", "minimum", "1", "0"),
    ("limit", "maximum", "1000", "1001"),
    ("status", "enum", "failed", "faild"),
    ("after", "pattern", "0" * 24, "0" * 23),
]
_BATCH = "<a batch's id>"
# (the replay body's constraint, a dry run's body just inside it, one just outside it)
REPLAY_EDGES: Final = [
    ("additionalProperties", {}, {"status": ["failed"]}),
    ("batch_ids/items/pattern", {"batch_ids": [_BATCH]}, {"batch_ids": ["0" * 23]}),
    ("statuses/items/enum", {"statuses": ["no-answer"]}, {"statuses": ["delivered"]}),
    ("statuses/type", {"statuses": ["failed"]}, {"statuses": "failed"}),
    ("error_codes/items/minimum", {"error_codes": [1]}, {"error_codes": [0]}),
    ("error_codes/items/maximum", {"error_codes": [999_999]}, {"error_codes": [10**6]}),
    ("account/minLength", {"account": "a"}, {"account": ""}),
    ("account/maxLength", {"account": "a" * 200}, {"account": "a" * 201}),
    ("sender/minLength", {"sender": "+"}, {"sender": ""}),
    ("sender/maxLength", {"sender": "+" * 200}, {"sender": "+" * 201}),
    ("operator/minLength", {"operator": "a"}, {"operator": ""}),
    ("operator/maxLength", {"operator": "a" * 200}, {"operator": "a" * 201}),
    ("confirm/type", {"confirm": False}, {"confirm": "false"}),
    ("again/type", {"again": True}, {"again": None}),
]


def _param(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p["schema"] for p in doc["paths"][_PAGE]["get"]["parameters"] if p["name"] == name)


async def _batch(session: aiohttp.ClientSession, stack: LocalStack) -> str:
    async with session.post(stack.api_url + "/v1/batches", json=sms_batch(people(1))) as r:
        return str((await r.json())["id"])


@pytest.mark.parametrize(
    ("name", "keyword", "inside", "outside"), QUERY_EDGES, ids=[f"{e[0]}-{e[1]}" for e in QUERY_EDGES]
)
async def test_the_page_query_holds_to_its_schema_at_the_edge(
    stack: LocalStack, name: str, keyword: str, inside: str, outside: str
) -> None:
    doc = document(stack.settings)
    schema = _param(doc, name)
    assert keyword in schema
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = stack.api_url + _PAGE.format(batch_id=await _batch(session, stack))
        for value, ok in ((inside, True), (outside, False)):
            typed = int(value) if schema.get("type") == "integer" else value
            assert Draft202012Validator(schema).is_valid(typed) is ok
            async with session.get(url, params={name: value}) as r:
                assert (r.status == 200) is ok, (name, value, r.status)


@pytest.mark.parametrize(("constraint", "inside", "outside"), REPLAY_EDGES, ids=[e[0] for e in REPLAY_EDGES])
async def test_the_replay_body_holds_to_its_schema_at_the_edge(
    stack: LocalStack, constraint: str, inside: dict[str, Any], outside: dict[str, Any]
) -> None:
    doc = document(stack.settings)
    validator = _validator(doc, _REPLAY_SCHEMA)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        batch_id = await _batch(session, stack)
        for body, ok in ((inside, True), (outside, False)):
            sent = {k: [batch_id if v == _BATCH else v for v in value] if isinstance(value, list) else value
                    for k, value in body.items()} | {"dry_run": True}  # fmt: skip
            assert validator.is_valid(sent) is ok, (constraint, sent)
            async with session.post(stack.api_url + "/v1/replays", json=sent) as r:
                assert (r.status == 200) is ok, (constraint, sent, r.status)


def test_every_replay_and_page_constraint_has_an_edge() -> None:
    doc = document(SETTINGS)
    replay = doc["components"]["schemas"]["ReplayRequest"]
    found = {"additionalProperties"} | {
        f"{name}/{path}{keyword}"
        for name, member in replay["properties"].items()
        for path, node in (("", member), ("items/", member.get("items", {})))
        for keyword in _KEYWORDS & set(node)
    }
    assert found <= {e[0] for e in REPLAY_EDGES}
    page = {(p["name"], k) for p in doc["paths"][_PAGE]["get"]["parameters"] for k in _KEYWORDS & set(p["schema"])}
    assert page <= {(e[0], e[1]) for e in QUERY_EDGES}
