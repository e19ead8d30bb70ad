"""The producer API: submit a batch, read its counts and deliveries, read a delivery, cancel a batch.

Every request a handler cannot use is refused here with a 4xx problem: a body that is not UTF-8 JSON
(415, 400), a field that breaks a rule (422), a query parameter or id no row could match (400, 404).
"""

from __future__ import annotations

import codecs
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from notifyq import statuses as st
from notifyq.api.auth import principal_of
from notifyq.api.limits import Taken, TokenLimiter
from notifyq.api.metrics import API_METRICS
from notifyq.api.problems import problem
from notifyq.errors import Forbidden, Problem, ValidationFailed
from notifyq.ids import is_id
from notifyq.intake import MALFORMED_JSON, RecipientsNotLast, decode_json, load_request, shown, text_problem
from notifyq.producer import Producer, Submitted

log = structlog.get_logger("notifyq.api")
PRODUCER = web.AppKey[Callable[[], Producer]]("notifyq_producer")
LIMITER = web.AppKey[Callable[[], TokenLimiter]]("notifyq_token_limiter")
KEY_HEADER: Final = "Idempotency-Key"
DELIVERY_STATUSES: Final = frozenset(st.MESSAGE_RANKS) | frozenset(st.CALL_RANKS)
MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 100


def _producer(request: web.Request) -> Producer:
    return request.app[PRODUCER]()


async def read_text(request: web.Request) -> str:
    """The body as text, without aiohttp's copy (``request.read()`` keeps the bytes for the request's life).

    JSON travels as UTF-8 (RFC 8259): a body named as anything else is 415, one that is not UTF-8 400.
    """
    charset = request.charset
    if charset is not None and _codec(charset) != "utf-8":
        raise web.HTTPUnsupportedMediaType(
            reason="Unsupported media type", text=f"send JSON as UTF-8 (charset=utf-8, or none), not {shown(charset)}"
        )
    limit = request.app._client_max_size  # the same limit request.read() enforces
    body = bytearray()
    async for piece in request.content.iter_any():
        body += piece
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"the body is not UTF-8: {exc.reason} at byte {exc.start}"
        raise web.HTTPBadRequest(reason="Malformed JSON", text=detail) from None
    del body
    return text


def _codec(charset: str) -> str | None:
    """The codec a charset names (``UTF8`` and ``utf_8`` are ``utf-8``), or None for no codec."""
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


async def submit(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches.

    The recipients are read from the request text one at a time as they are validated and stored
    (``load_request``); when the request has members after them, it is read whole instead.
    """
    dry_run = _dry_run(request)
    if request.content_type != "application/json":
        return problem(415, "Unsupported media type", "send the batch as application/json")
    if dry_run:
        return await _preview(request)
    text = await read_text(request)
    try:
        payload = load_request(text)
    except MALFORMED_JSON as exc:
        return problem(400, "Malformed JSON", str(exc))
    if not isinstance(payload, dict):
        return problem(400, "Malformed batch", "the body must be a JSON object")
    metrics = request.app[API_METRICS]
    try:
        key = _header_key(request)
        try:
            submitted = await _submit(request, payload, key)
        except RecipientsNotLast:
            payload = decode_json(text)
            submitted = await _submit(request, payload, key)
    except MALFORMED_JSON as exc:  # met in the recipients, read as the batch is stored
        return problem(400, "Malformed JSON", str(exc))
    except ValidationFailed:
        metrics.rejected.inc()
        raise
    finally:
        del text, payload
    if submitted.created:
        metrics.batches.labels(channel=submitted.batch.channel.value).inc()
        metrics.recipients.labels(channel=submitted.batch.channel.value).inc(submitted.batch.total)
    body = submitted.as_dict() | {"links": {"self": f"/v1/batches/{submitted.batch.id}"}}
    return web.json_response(body, status=202 if submitted.created else 200)


def _dry_run(request: web.Request) -> bool:
    """The ``dry_run`` query parameter: true or false (the default); 400 for anything else."""
    value = request.query.get("dry_run", "false")
    if value not in {"true", "false"}:
        raise web.HTTPBadRequest(
            reason="Bad query parameter", text=f"dry_run must be true or false, not {shown(value)}"
        )
    return value == "true"


async def _preview(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches?dry_run=true: segments, encoding and price, refused as a submit would be; nothing stored.

    The token's accounts are checked, its quotas are not: a preview sends nothing.
    """
    text = await read_text(request)
    try:
        payload = load_request(text)
        if not isinstance(payload, dict):
            return problem(400, "Malformed batch", "the body must be a JSON object")
        try:
            answer = await _producer(request).preview(payload)
        except RecipientsNotLast:
            payload = decode_json(text)
            answer = await _producer(request).preview(payload)
    except MALFORMED_JSON as exc:
        return problem(400, "Malformed JSON", str(exc))
    finally:
        del text
    _account_allowed(request, payload)
    return web.json_response(answer)


async def batch_status(request: web.Request) -> web.StreamResponse:
    """GET /v1/batches/{batch_id}."""
    return web.json_response(await _producer(request).batch_status(request.match_info["batch_id"]))


async def batch_deliveries(request: web.Request) -> web.StreamResponse:
    """GET /v1/batches/{batch_id}/deliveries?status=&after=&limit=."""
    q = request.query
    raw_limit = q.get("limit", str(DEFAULT_PAGE))
    if not (
        len(raw_limit) <= len(str(MAX_PAGE))
        and raw_limit.isascii()
        and raw_limit.isdigit()
        and 1 <= int(raw_limit) <= MAX_PAGE
    ):
        return problem(400, "Bad query parameter", f"limit must be a whole number from 1 to {MAX_PAGE}")
    status = q.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        return problem(
            400, "Bad query parameter", f"status must be a delivery status, e.g. failed; not {shown(status)}"
        )
    after = q.get("after", "")
    if after and not is_id(after):
        return problem(400, "Bad query parameter", "after must be a delivery id: the next of the page before")
    page = await _producer(request).deliveries(
        request.match_info["batch_id"], status=status, after=after, limit=int(raw_limit)
    )
    return web.json_response(page)


async def cancel(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches/{batch_id}/cancel."""
    n = await _producer(request).cancel(request.match_info["batch_id"])
    return web.json_response({"id": request.match_info["batch_id"], "canceled": n})


async def delivery(request: web.Request) -> web.StreamResponse:
    """GET /v1/deliveries/{delivery_id}."""
    return web.json_response(await _producer(request).delivery(request.match_info["delivery_id"]))


def _header_key(request: web.Request) -> str | None:
    """The Idempotency-Key header; 422 when its bytes are not text (aiohttp keeps them as lone surrogates)."""
    key = request.headers.get(KEY_HEADER)
    if key and (reason := text_problem(key)):
        raise ValidationFailed([Problem(KEY_HEADER, reason)])
    return key or None


def _account_allowed(request: web.Request, payload: dict[str, Any]) -> None:
    """Forbidden when the request's token may not send from the account the batch names (or the default)."""
    principal = principal_of(request)
    if principal is None or principal.accounts is None:
        return
    named = payload.get("account")
    twilio = _producer(request).settings.twilio
    account = named if isinstance(named, str) else twilio.default_account or next(iter(twilio.accounts), "")
    if not principal.may_use(account):
        raise Forbidden(f"this token may not send from the account {shown(account)}")


async def _submit(request: web.Request, payload: dict[str, Any], key: str | None) -> Submitted:
    """Store the batch, if the request's token may: its accounts, then its quotas, before the commit.

    Both are checked once every recipient is read: only then is the request whole (members may follow
    the recipients). A quota's count is given back when the batch is not stored after all.
    """
    principal = principal_of(request)
    if principal is None or (principal.accounts is None and principal.limits.daily is principal.limits.monthly is None):
        return await _store(request, payload, key)
    limiter = request.app[LIMITER]()
    taken: list[Taken] = []

    async def admit(recipients: int) -> None:
        _account_allowed(request, payload)
        try:
            counted = await limiter.take(principal, recipients)
        except RedisError as exc:  # no quota can be checked: the batch is refused, not let through
            raise web.HTTPServiceUnavailable(reason="Service unavailable", text="Redis is unavailable") from exc
        if counted is not None:
            taken.append(counted)

    try:
        return await _store(request, payload, key, admit)
    except BaseException:
        for counted in taken:
            try:
                await limiter.give_back(counted)
            except RedisError as exc:  # the count stays taken: the quota errs on the side of refusing
                log.warning("a quota count could not be given back", token=principal.id, error=str(exc))
        raise


async def _store(
    request: web.Request,
    payload: dict[str, Any],
    key: str | None,
    admit: Callable[[int], Awaitable[None]] | None = None,
) -> Submitted:
    if key is not None:
        given = payload.get("idempotency_key")
        if given is None:
            payload["idempotency_key"] = key
        elif given != key:
            raise ValidationFailed(
                [Problem(KEY_HEADER, "differs from the body's idempotency_key: send one, or the same in both")]
            )
    return await _producer(request).submit(payload, enqueue="background", admit=admit)


def add_routes(app: web.Application, producer: Callable[[], Producer], limiter: Callable[[], TokenLimiter]) -> None:
    """Mount the /v1 routes; ``producer`` and ``limiter`` return the app's own once it has started."""
    app[PRODUCER] = producer
    app[LIMITER] = limiter
    app.router.add_post("/v1/batches", submit)
    app.router.add_get("/v1/batches/{batch_id}", batch_status)
    app.router.add_get("/v1/batches/{batch_id}/deliveries", batch_deliveries)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel)
    app.router.add_get("/v1/deliveries/{delivery_id}", delivery)
