"""The account registry's routes (``/v1/accounts``) and Twilio Connect's two in the OpenAPI document.

The body an operator sends to add an account is :class:`~notifyq.accounts.NewAccount`'s own JSON
Schema, so the document takes what the handler takes; no answer holds a secret, and neither does any
example here. The Connect routes are Twilio's (and a customer's browser's), not a producer's.
"""

from __future__ import annotations

from typing import Any, Final

from notifyq.accounts.model import NewAccount
from notifyq.api.accounts import PAUSE_REASON_MAX
from notifyq.api.callbacks import SIGNATURE_HEADER
from notifyq.api.problems import MAX_LISTED
from notifyq.api.spec import (
    TWILIO_SIGNATURE,
    Operation,
    Schema,
    json_response,
    path_id,
    problem_response,
    ref,
    v1_operation,
)

ACCOUNTS: Final = "Accounts"
EXAMPLE_SID: Final = "AC" + "7e" * 16
ACCOUNT_EXAMPLE: Final[dict[str, Any]] = {
    "name": "tenant",
    "kind": "auth_token",
    "source": "registry",
    "account_sid": EXAMPLE_SID,
    "api_key_sid": None,
    "max_in_flight": 50,
    "calls_per_second": 1.0,
    "connect_state": None,
    "created_at": 1_765_000_000.0,
    "deauthorized_at": None,
    "status": "active",
    "sender_groups": {"campaign": {"rate": 12.0, "senders": ["+14155550100", "+14155550101"]}},
    "paused": None,
}
_REMOVED_EXAMPLE: Final = {k: v for k, v in ACCOUNT_EXAMPLE.items() if k != "paused"}
_ADD_EXAMPLES: Final[Schema] = {
    "auth_token": {
        "summary": "An account reached with its Auth Token",
        "value": {"name": "tenant", "kind": "auth_token", "account_sid": EXAMPLE_SID, "auth_token": "<its Auth Token>"},
    },
    "api_key": {
        "summary": "An account reached with an API key (the Auth Token checks its callbacks)",
        "value": {
            "name": "tenant",
            "kind": "api_key",
            "account_sid": EXAMPLE_SID,
            "auth_token": "<its Auth Token>",
            "api_key_sid": "SK" + "5e" * 16,
            "api_key_secret": "<the key's secret>",
            "max_in_flight": 20,
            "calls_per_second": 1.0,
        },
    },
}
_EPOCH_OR_NULL: Final[Schema] = {"type": ["number", "null"], "description": "Seconds since the Unix epoch."}


def _account(*, paused: bool) -> Schema:
    """The public view of an account (never a secret); with its pause, but for the one just removed."""
    out: Schema = {
        "type": "object",
        "description": "An account as the registry shows it: never a secret.",
        "required": ["name", "kind", "source", "account_sid", "status"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "kind": ref("AccountKind"),
            "source": {
                "type": "string",
                "enum": ["registry", "settings"],
                "description": "Added here, or configured in the environment (NOTIFYQ_TWILIO__ACCOUNTS).",
            },
            "account_sid": {"type": "string"},
            "api_key_sid": {"type": ["string", "null"]},
            "max_in_flight": {"type": "integer", "minimum": 1},
            "calls_per_second": {"type": "number", "exclusiveMinimum": 0},
            "connect_state": {"type": ["string", "null"], "description": "The state Connect authorised it with."},
            "created_at": _EPOCH_OR_NULL,
            "deauthorized_at": _EPOCH_OR_NULL,
            "status": {"type": "string", "enum": ["active", "deauthorized"]},
            "sender_groups": {
                "type": "object",
                "description": "Senders that share one rate (a 10DLC campaign's numbers), by group name; "
                "set with `notifyq accounts senders`.",
                "additionalProperties": {
                    "type": "object",
                    "required": ["rate", "senders"],
                    "additionalProperties": False,
                    "properties": {
                        "rate": {"type": "number", "exclusiveMinimum": 0, "description": "Segments per second."},
                        "senders": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    },
                },
            },
        },
    }
    if paused:
        out["required"].append("paused")
        out["properties"]["paused"] = {
            "type": ["string", "null"],
            "description": "Why every worker stopped sending from it; null: it sends.",
        }
    return out


def account_schemas() -> dict[str, Schema]:
    """The registry's schemas, by name: the request is the handler's own model."""
    new = NewAccount.model_json_schema(ref_template="#/components/schemas/{model}")
    defined: dict[str, Schema] = new.pop("$defs", {})
    listed = {
        "type": "object",
        "required": ["field", "reason"],
        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}, "index": {"type": "integer"}},
    }
    return defined | {
        "NewAccount": new,
        "Account": _account(paused=True),
        "RemovedAccount": _account(paused=False) | {"description": "The account taken out of the registry."},
        "AccountList": {
            "type": "object",
            "required": ["accounts"],
            "properties": {"accounts": {"type": "array", "items": ref("Account")}},
        },
        "AccountProblem": {
            "allOf": [ref("Problem")],
            "type": "object",
            "required": ["errors"],
            "properties": {"errors": {"type": "array", "items": listed, "maxItems": MAX_LISTED}},
            "description": "Every problem found with the account, or Twilio's reason for refusing its credentials.",
        },
    }


_NAME: Final = path_id("name", "account", "") | {
    "description": "The account's name, or its AccountSid. Anything else is answered 404.",
    "example": "tenant",
}
_NOT_FOUND: Final = problem_response(404, "No such account.", "Not found", "account 'nothing' not found")
_MALFORMED: Final = problem_response(
    400, "The body is not a JSON object.", "Malformed JSON", "the body is not a JSON object"
)
_TOO_LARGE: Final = problem_response(
    413, "The body is over the configured limit.", "Request Entity Too Large",
    "Maximum request body size 1048576 exceeded, actual body size 1048577",
)  # fmt: skip
_VIEW: Final = json_response("The account.", ref("Account"), ACCOUNT_EXAMPLE)
_UNREACHABLE: Final = problem_response(
    502, "Twilio could not be reached to check the credentials; nothing is kept.", "Twilio unreachable",
    "the credentials could not be checked: Twilio could not be asked to check the credentials: Cannot connect "
    "to host api.twilio.com:443",
)  # fmt: skip


def add_account_responses() -> dict[int, Schema]:
    """POST /v1/accounts: kept (201), or why not."""
    invalid = {
        "description": "A field missing or of the wrong kind, a `connect` account where no Connect App owner is "
        "configured, or credentials Twilio refused (with its reason); nothing is kept.",
        "content": {
            "application/problem+json": {
                "schema": ref("AccountProblem"),
                "examples": {
                    "fields": {"value": {
                        "type": "about:blank", "title": "Invalid account", "status": 422,
                        "detail": "the account was not added",
                        "errors": [{"field": "account_sid", "reason": "String should match pattern "
                                    "'^AC[0-9a-fA-F]{32}$'"}],
                    }},
                    "twilio": {"value": {
                        "type": "about:blank", "title": "Invalid account", "status": 422,
                        "detail": "Twilio did not accept the credentials",
                        "errors": [{"field": "credentials", "reason": "Twilio answered 401, error 20003: "
                                    "Authenticate. Twilio does not accept the AccountSid and its Auth Token (wrong, "
                                    "revoked, or the account is suspended or closed)"}],
                    }},
                },
            }
        },
    }  # fmt: skip
    return {
        201: json_response("Checked with Twilio and kept.", ref("Account"), ACCOUNT_EXAMPLE),
        400: _MALFORMED,
        409: problem_response(
            409, "An account of that name or AccountSid is registered, or configured in the environment.",
            "Conflict", f"an account named 'tenant' or with SID {EXAMPLE_SID} is registered",
        ),
        413: _TOO_LARGE,
        422: invalid,
        502: _UNREACHABLE,
    }  # fmt: skip


def _account_request() -> Schema:
    """POST /v1/accounts's body."""
    return {
        "required": True,
        "content": {"application/json": {"schema": ref("NewAccount"), "examples": _ADD_EXAMPLES}},
    }


def _pause_request() -> Schema:
    """POST /v1/accounts/{name}/pause's body: optional."""
    reason = {
        "type": ["string", "null"],
        "maxLength": PAUSE_REASON_MAX,
        "description": "Shown with the pause; absent, null or empty: paused by an operator.",
    }
    return {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"reason": reason}},
                "example": {"reason": "the tenant asked us to stop"},
            }
        },
    }


def one_account_responses(*extra: int, removed: bool = False) -> dict[int, Schema]:
    """The answers of a route on one account: its view, 404, and the ``extra`` statuses it may answer.

    ``removed``: the 200 of a removal, whose view has no pause.
    """
    paused = ACCOUNT_EXAMPLE | {"paused": "the tenant asked us to stop"}
    more: dict[int, Schema] = {
        400: _MALFORMED,
        409: problem_response(
            409, "Configured in the environment (remove it there), or deauthorized through Connect (authorise "
            "it again).", "Conflict", "account 'main' is configured in the environment; remove it there",
        ),
        413: _TOO_LARGE,
        422: problem_response(
            422, "A reason that is not a short text.", "Invalid account", "", "AccountProblem",
            errors=[{"field": "reason", "reason": f"a text of at most {PAUSE_REASON_MAX} characters"}],
        ),
        200: json_response("The account, paused.", ref("Account"), paused),
    }  # fmt: skip
    out: dict[int, Schema] = {200: _VIEW, 404: _NOT_FOUND}
    if removed:
        out[200] = json_response("The account removed.", ref("RemovedAccount"), _REMOVED_EXAMPLE)
    return out | {status: more[status] for status in extra}


def connect_authorize_responses() -> dict[int, Schema]:
    """GET /twilio/connect/authorize: the customer's browser, sent on."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    location = {
        "Location": {
            "required": True,
            "schema": {"type": "string"},
            "example": "https://tenant.example.com/connected?result=authorized&account=connect-"
            "7e7e7e7e&state=signup-42",
        }
    }
    return {
        200: {"description": "Connected (no twilio.connect.redirect_page set): the outcome as text.", "content": text},
        302: {
            "description": "To twilio.connect.redirect_page with result=authorized (and account, state), "
            "declined or failed (and reason). Every outcome goes there when the page is set.",
            "headers": location,
            "content": text,
        },
        400: {
            "description": "Declined by the customer, or an account that could not be connected (no "
            "redirect_page is set): the outcome as text, for the customer's browser.",
            "content": text,
        },
        502: problem_response(
            502, "Twilio could not be reached to check the account.", "Twilio unreachable",
            "the authorised account could not be checked: Twilio could not be asked to check the credentials: "
            "Cannot connect to host api.twilio.com:443",
        ),
        503: problem_response(
            503, "No Connect App owner is configured.", "Connect not configured",
            "set NOTIFYQ_TWILIO__CONNECT__OWNER_ACCOUNT",
        ),
    }  # fmt: skip


def connect_deauthorize_responses() -> dict[int, Schema]:
    """The Deauthorize callback's answers."""
    return {
        200: {"description": "Done: the account is paused, its unclaimed deliveries canceled (or another "
              "Connect App's callback, ignored)."},
        400: problem_response(400, "No AccountSid, or not a readable form.", "Bad callback",
                              "a Deauthorize callback names its AccountSid"),
        403: problem_response(403, "Not signed with the Connect App owner's Auth Token; nothing is changed.",
                              "Forbidden", f"missing or invalid {SIGNATURE_HEADER}"),
        405: problem_response(405, "The other method than twilio.connect.deauthorize_method.",
                              "Method not allowed", "the Deauthorize callback is configured as POST"),
        413: problem_response(413, "Over api.callback_max_body_bytes, or too many fields.",
                              "Request Entity Too Large", "the body is larger than 65536 bytes"),
        503: problem_response(503, "No Connect App owner is configured.", "Connect not configured",
                              "set NOTIFYQ_TWILIO__CONNECT__OWNER_ACCOUNT"),
    }  # fmt: skip


def connect_query(*, deauthorize: bool) -> tuple[Schema, ...]:
    """The query Twilio sends: the authorised (or revoked) AccountSid, and the rest."""
    sid = {"name": "AccountSid", "in": "query", "schema": {"type": "string"}, "example": EXAMPLE_SID}
    if deauthorize:
        return (sid | {"description": "The revoked account (a GET callback; a POST sends it in the form)."},
                {"name": "ConnectAppSid", "in": "query", "schema": {"type": "string"}})  # fmt: skip
    return (
        sid | {"description": "The subaccount made for our Connect App."},
        {"name": "state", "in": "query", "schema": {"type": "string"}, "description": "As our Authorize link gave it."},
        {"name": "error", "in": "query", "schema": {"type": "string"}, "example": "unauthorized_client",
         "description": "Instead of AccountSid: the customer declined, or Twilio failed."},
    )  # fmt: skip


def account_operations() -> list[Operation]:
    """The registry's routes: an operator's, by the accounts scope."""
    one, name, op = "/v1/accounts/{name}", (_NAME,), v1_operation
    return [
        op("GET", "/v1/accounts", "listAccounts", "Every account: the environment's and the registry's",
            tag=ACCOUNTS, responses={200: json_response("The accounts.", ref("AccountList"),
                                                        {"accounts": [ACCOUNT_EXAMPLE]})}),
        op("POST", "/v1/accounts", "addAccount", "Add an account: its credentials checked with Twilio once",
            tag=ACCOUNTS, request_body=_account_request(), responses=add_account_responses(),
            description="Twilio is asked for the account with the credentials given; an account it refuses is "
            "not kept (422, with Twilio's reason). The secrets are sealed in the database and never answered."),
        op("GET", one, "getAccount", "An account, and its pause if any", tag=ACCOUNTS, parameters=name,
            responses=one_account_responses()),
        op("DELETE", one, "removeAccount", "Take an account out of the registry", tag=ACCOUNTS, parameters=name,
            responses=one_account_responses(409, removed=True),
            description="An account configured in the environment is refused (409): remove it there."),
        op("POST", one + "/pause", "pauseAccount", "Every worker stops sending from the account", tag=ACCOUNTS,
            parameters=name, request_body=_pause_request(), responses=one_account_responses(200, 400, 413, 422)),
        op("POST", one + "/resume", "resumeAccount", "Lift a pause: an operator's, or one after 20003 or 30002",
            tag=ACCOUNTS, parameters=name, responses=one_account_responses(409),
            description="A deauthorized Connect account is refused (409): its customer authorises it again."),
    ]  # fmt: skip


def connect_operations(tag: str) -> list[Operation]:
    """Connect's Authorize URL (the customer's browser) and Deauthorize callback (Twilio), under ``tag``."""
    deauthorize = connect_deauthorize_responses()
    revoked = {
        "required": False,
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "additionalProperties": {"type": "string"},
            "properties": {"AccountSid": {"type": "string"}, "ConnectAppSid": {"type": "string"}},
        }}},
    }  # fmt: skip
    return [
        Operation(
            method="GET", path="/twilio/connect/authorize", operation_id="connectAuthorize", tag=tag,
            summary="Twilio Connect's Authorize URL: the customer's browser, after authorising our Connect App",
            description="Called by the customer's browser, sent by Twilio; not by producers. The account is "
            "checked with the Connect App owner's credentials and kept as a connect account; the browser goes "
            "on to twilio.connect.redirect_page with the outcome.",
            parameters=connect_query(deauthorize=False), responses=connect_authorize_responses(),
        ),
        *(
            Operation(
                method=method, path="/twilio/connect/deauthorize", operation_id=f"connectDeauthorize{method.title()}",
                tag=tag, security=TWILIO_SIGNATURE,
                summary=f"Twilio Connect's Deauthorize callback, when twilio.connect.deauthorize_method is {method}",
                description="Called by Twilio, not by producers; signed with the Connect App owner's Auth Token. "
                "Every worker stops sending from the account at once, its deliveries not yet claimed end "
                "canceled, and it takes no new batch. The method not configured is answered 405.",
                parameters=connect_query(deauthorize=True) if method == "GET" else (),
                request_body=revoked if method == "POST" else None,
                responses=deauthorize if method == "POST" else {s: r for s, r in deauthorize.items() if s != 413},
            )
            for method in ("GET", "POST")
        ),
    ]  # fmt: skip
