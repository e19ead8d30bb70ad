"""Twilio's own OpenAPI description, as the simulator reads it.

The vendored subset of ``twilio_api_v2010.json`` (``openapi/``, MIT, Twilio Inc.;
``spec_subset.py`` cuts it) gives the form schema of every POST the simulator serves
(``CreateMessageRequest``, ``UpdateConnectAppRequest`` ...) with its ``x-twilio.conditional``
groups, the query parameters of every list, and the properties of every resource. ``validation``
checks requests against them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

MESSAGES_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS_PATH: Final = "/2010-04-01/Accounts/{AccountSid}/Calls.json"

Form = dict[str, str | list[str]]


@dataclass(frozen=True, slots=True)
class Param:
    """One form parameter as the spec describes it."""

    name: str
    type: str  # string, integer, number, boolean or array
    item_type: str = "string"
    fmt: str | None = None
    pattern: re.Pattern[str] | None = None
    enum: frozenset[str] | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """A POST with a form: its parameters, the required ones, and the one-of groups."""

    operation_id: str
    params: dict[str, Param]
    required: tuple[str, ...]
    conditional: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Query:
    """A list operation: its query parameters, in the spec's order."""

    operation_id: str
    params: dict[str, Param]


@dataclass(frozen=True, slots=True)
class Spec:
    """The parts of the OpenAPI document the simulator uses."""

    create_message: Operation
    create_call: Operation
    message_fields: tuple[str, ...]  # properties of api.v2010.account.message
    call_fields: tuple[str, ...]
    forms: dict[str, Operation]  # every POST with a form, by operationId
    queries: dict[str, Query]  # every list, by operationId
    fields: dict[str, tuple[str, ...]]  # the properties of every resource schema, by schema name


def snake(name: str) -> str:
    """A parameter's name as its field is named: ``VoiceCallerIdLookup`` -> ``voice_caller_id_lookup``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _deref(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        found: dict[str, Any] = schemas[schema["$ref"].rsplit("/", 1)[1]]
        return found
    return schema


def _param(name: str, schema: dict[str, Any], schemas: dict[str, Any]) -> Param:
    schema = _deref(schema, schemas)
    kind = schema.get("type", "string")
    source = _deref(schema.get("items", {}), schemas) if kind == "array" else schema
    ignore_format = source.get("x-twilio", {}).get("ignoreFormat", False)
    return Param(
        name=name,
        type=kind,
        item_type=source.get("type", "string") if kind == "array" else "string",
        fmt=None if ignore_format else source.get("format"),
        pattern=re.compile(source["pattern"]) if "pattern" in source else None,
        enum=frozenset(source["enum"]) if "enum" in source else None,
        min_length=source.get("minLength"),
        max_length=source.get("maxLength"),
        minimum=source.get("minimum"),
        maximum=source.get("maximum"),
    )


def _operation(post: dict[str, Any], schemas: dict[str, Any]) -> Operation:
    form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    params = {name: _param(name, prop, schemas) for name, prop in form["properties"].items()}
    by_snake = {snake(name): name for name in params}
    groups = post.get("x-twilio", {}).get("conditional", [])
    return Operation(
        operation_id=post["operationId"],
        params=params,
        required=tuple(form.get("required", ())),
        conditional=tuple(tuple(by_snake[s] for s in group) for group in groups),
    )


def _query(get: dict[str, Any], schemas: dict[str, Any]) -> Query:
    params = {p["name"]: _param(p["name"], p["schema"], schemas) for p in get["parameters"] if p["in"] == "query"}
    return Query(operation_id=get["operationId"], params=params)


@cache
def load_spec() -> Spec:
    """Read the vendored OpenAPI subset once."""
    text = resources.files("notifyq.simulator").joinpath("openapi/twilio_api_v2010.json").read_text("utf-8")
    doc = json.loads(text)
    schemas = doc["components"]["schemas"]
    operations = [op for item in doc["paths"].values() for method, op in item.items() if method in {"get", "post"}]
    forms = {op["operationId"]: _operation(op, schemas) for op in operations if "requestBody" in op}
    queries = {op["operationId"]: _query(op, schemas) for op in operations if op["operationId"].startswith("List")}
    fields = {name: tuple(s["properties"]) for name, s in schemas.items() if name.startswith("api.v2010.")}
    return Spec(
        create_message=forms["CreateMessage"],
        create_call=forms["CreateCall"],
        message_fields=fields["api.v2010.account.message"],
        call_fields=fields["api.v2010.account.call"],
        forms=forms,
        queries=queries,
        fields=fields,
    )
