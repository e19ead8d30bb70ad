"""Cut the vendored OpenAPI subset (``openapi/twilio_api_v2010.json``) out of Twilio's whole description.

The simulator reads only the operations it serves, so the project carries only those: each path's
``x-twilio``, each kept operation's id, description, parameters, form schema, response schemas,
security and ``x-twilio``, and the component schemas they reference. Examples and response headers
are left out. Run it on a checkout of twilio/twilio-oai when the simulator serves a new operation::

    python -m notifyq.simulator.spec_subset path/to/twilio_api_v2010.json > openapi/twilio_api_v2010.json

Cutting the subset again from the subset gives the same document (a test holds the vendored file to that).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

# the operations the simulator serves, by path
OPERATIONS: Final[dict[str, tuple[str, ...]]] = {
    "/2010-04-01/Accounts.json": ("get", "post"),
    "/2010-04-01/Accounts/{Sid}.json": ("get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Applications.json": ("get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json": ("delete", "get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/AuthorizedConnectApps.json": ("get",),
    "/2010-04-01/Accounts/{AccountSid}/AuthorizedConnectApps/{ConnectAppSid}.json": ("get",),
    "/2010-04-01/Accounts/{AccountSid}/Calls.json": ("get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json": ("get",),
    "/2010-04-01/Accounts/{AccountSid}/ConnectApps.json": ("get",),
    "/2010-04-01/Accounts/{AccountSid}/ConnectApps/{Sid}.json": ("delete", "get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Messages.json": ("get", "post"),
    "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json": ("get",),
}
SOURCE: Final = "twilio/twilio-oai spec/json/twilio_api_v2010.json, commit d50069b4 (2026-04-14)"
NOTE: Final = (
    "Subset: the operations the notifyq simulator serves and the schemas they reference; examples and "
    "response headers removed (src/notifyq/simulator/spec_subset.py cuts it). Licence: see LICENSE beside this file."
)
_OPERATION_KEYS: Final = (
    "operationId",
    "description",
    "parameters",
    "requestBody",
    "responses",
    "security",
    "x-twilio",
)
_DROPPED: Final = frozenset({"example", "examples", "headers"})


def _strip(node: Any) -> Any:
    """``node`` without examples or headers; the members of a ``properties`` map are names, kept whatever they are."""
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strip(prop) for name, prop in value.items()}
        elif key not in _DROPPED:
            out[key] = _strip(value)
    return out


def _refs(node: Any) -> set[str]:
    """The component schema names ``node`` refers to."""
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
    return found.union(*(_refs(value) for value in node.values()))


def subset(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of ``doc`` the simulator serves (``doc`` may be the whole description or a subset of it)."""
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = doc["paths"][path]
        kept: dict[str, Any] = {"x-twilio": _strip(item["x-twilio"])} if "x-twilio" in item else {}
        for method in methods:
            operation = item[method]
            kept[method] = {key: _strip(operation[key]) for key in _OPERATION_KEYS if key in operation}
        paths[path] = kept
    schemas = doc["components"]["schemas"]
    wanted: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= _refs(schemas[name]) - wanted
    return {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "x-notifyq": {"source": doc.get("x-notifyq", {}).get("source", SOURCE), "note": NOTE},
        "servers": doc["servers"],
        "paths": paths,
        "components": {
            "securitySchemes": doc["components"]["securitySchemes"],
            "schemas": {name: _strip(schemas[name]) for name in sorted(wanted)},
        },
    }


def dumps(doc: dict[str, Any]) -> str:
    """The vendored file's text."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Read the description named on the command line, write the subset to stdout."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m notifyq.simulator.spec_subset TWILIO_API_V2010_JSON\n")
        return 2
    with open(argv[0], encoding="utf-8") as f:  # noqa: PTH123
        sys.stdout.write(dumps(subset(json.load(f))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
