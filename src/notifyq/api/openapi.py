"""The OpenAPI 3.1 document the API serves at ``/openapi.json``, built from the routes' own definitions.

The batch request's schema comes from intake's constants (:mod:`notifyq.intake.schema`), with this
deployment's limit of recipients and its account names; each route's description is its entry in
``api/operations.py``. Documenting a new route is one step: add its :class:`~notifyq.api.spec.Operation`
there (``docs/api.md``, "Adding a route").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from aiohttp import web

from notifyq import __version__
from notifyq.api.account_spec import account_schemas
from notifyq.api.callbacks import SIGNATURE_HEADER
from notifyq.api.operations import OPERATIONS
from notifyq.api.ops_session import COOKIE
from notifyq.api.ops_spec import ops_schemas
from notifyq.api.preview_spec import preview_schemas
from notifyq.api.replay_spec import replay_schemas
from notifyq.api.spec import BEARER, OPS_SESSION, TWILIO_SIGNATURE, Operation, Schema, components
from notifyq.intake.schema import batch_request_schema
from notifyq.settings import Settings

OPENAPI_VERSION: Final = "3.1.0"
DOCUMENT: Final = web.AppKey("notifyq_openapi", bytes)

_DESCRIPTION: Final = """\
notifyq sends bulk SMS, MMS and voice calls through Twilio. A producer submits a batch (one body, many
recipients); each recipient becomes a durable delivery that is sent at most once, paced per sender and
account, and brought to a final status by Twilio's signed status callbacks.

Every error is an RFC 9457 problem (`application/problem+json`). The `/twilio/...` routes are called by
Twilio, signed with the account's Auth Token; producers never call them.

A registry token answers 403 for a route outside its scopes (the problem names the `scope`), and 429 with
`Retry-After` past its rate; a batch past one of its recipient quotas is refused 403 (`quota`, `limit`,
`left`), and so is one from an account the token may not use.
"""


def document(settings: Settings, operations: Iterable[Operation] = OPERATIONS) -> Schema:
    """The OpenAPI document of an app built with ``settings``."""
    paths: dict[str, Schema] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = op.as_openapi()
    schemas = components() | replay_schemas() | ops_schemas() | account_schemas() | preview_schemas()
    schemas["BatchRequest"] = batch_request_schema(
        max_recipients=settings.api.max_recipients, accounts=list(settings.twilio.accounts)
    )
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "notifyq",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "Producer API", "description": "Submit batches and follow them. Bearer token."},
            {
                "name": "Accounts",
                "description": "The Twilio accounts batches send from: an operator's token (the accounts scope).",
            },
            {
                "name": "Twilio callbacks",
                "description": "Called by Twilio, signed with X-Twilio-Signature; Connect's Authorize URL, by "
                "the customer's browser Twilio sends there.",
            },
            {
                "name": "Operations",
                "description": "Health, metrics and this document (no auth); the ops page's JSON (an operator).",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of NOTIFYQ_API__TOKENS (every scope) or NOTIFYQ_API__OPERATOR_TOKENS, "
                    "or a registry token (nq_..., `notifyq tokens`) with its scopes, rate and quotas.",
                },
                TWILIO_SIGNATURE: {
                    "type": "apiKey",
                    "in": "header",
                    "name": SIGNATURE_HEADER,
                    "description": "HMAC-SHA1 with the Auth Token of the account the form's AccountSid names, "
                    "over NOTIFYQ_PUBLIC_BASE_URL plus the path and query, then the sorted form parameters.",
                },
                OPS_SESSION: {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": COOKIE,
                    "description": "The ops page's session: set by signing in at /ops/signin with one of "
                    "NOTIFYQ_API__TOKENS (the form, for a browser); a script sends the token as a bearer token.",
                },
            },
        },
    }


def add_routes(app: web.Application, settings: Settings) -> Schema:
    """Serve the document at ``/openapi.json``, built once, here; the document."""
    built = document(settings)
    app[DOCUMENT] = json.dumps(built, separators=(",", ":")).encode()
    app.router.add_get("/openapi.json", _openapi)
    return built


async def _openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")
