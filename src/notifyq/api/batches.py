"""The producer API: submit a batch, read its counts and deliveries, read a delivery, cancel a batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from notifyq.api.problems import problem
from notifyq.batch import RecipientsNotLast, load_request
from notifyq.errors import ValidationFailed
from notifyq.ops.metrics import API_METRICS
from notifyq.producer import Producer, Submitted

PRODUCER = web.AppKey[Callable[[], Producer]]("notifyq_producer")


def _producer(request: web.Request) -> Producer:
    return request.app[PRODUCER]()


async def _read_text(request: web.Request) -> str:
    """The body as text, without aiohttp's copy (``request.read()`` keeps the bytes for the request's life)."""
    limit = request.app._client_max_size  # the same limit request.read() enforces
    body = bytearray()
    async for piece in request.content.iter_any():
        body += piece
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    text = body.decode(request.charset or "utf-8")
    del body
    return text


async def submit(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches.

    The recipients are read from the request text one at a time as they are validated and stored
    (``load_request``); when the request has members after them, it is read whole instead.
    """
    if request.content_type != "application/json":
        return problem(415, "Unsupported media type", "send the batch as application/json")
    try:
        text = await _read_text(request)
        payload = load_request(text)
    except ValueError as exc:
        return problem(400, "Malformed JSON", str(exc))
    if not isinstance(payload, dict):
        return problem(400, "Malformed batch", "the body must be a JSON object")
    key = request.headers.get("Idempotency-Key")
    metrics = request.app[API_METRICS]
    try:
        try:
            submitted = await _submit(request, payload, key)
        except RecipientsNotLast:
            payload = json.loads(text)
            submitted = await _submit(request, payload, key)
    except json.JSONDecodeError as exc:  # met in the recipients, read as the batch is stored
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


async def batch_status(request: web.Request) -> web.StreamResponse:
    """GET /v1/batches/{batch_id}."""
    return web.json_response(await _producer(request).batch_status(request.match_info["batch_id"]))


async def batch_deliveries(request: web.Request) -> web.StreamResponse:
    """GET /v1/batches/{batch_id}/deliveries?status=&after=&limit=."""
    q = request.query
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        return problem(400, "Bad limit", "limit must be a whole number")
    if not 1 <= limit <= 1000:
        return problem(400, "Bad limit", "limit must be between 1 and 1000")
    page = await _producer(request).deliveries(
        request.match_info["batch_id"], status=q.get("status"), after=q.get("after", ""), limit=limit
    )
    return web.json_response(page)


async def cancel(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches/{batch_id}/cancel."""
    n = await _producer(request).cancel(request.match_info["batch_id"])
    return web.json_response({"id": request.match_info["batch_id"], "canceled": n})


async def replay(request: web.Request) -> web.StreamResponse:
    """POST /v1/batches/{batch_id}/replay {"status": ["failed", ...], "error_code": [30003, ...], "dry_run": false}."""
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except ValueError as exc:
        return problem(400, "Malformed JSON", str(exc))
    statuses = body.get("status", ["failed", "undelivered"]) if isinstance(body, dict) else None
    codes = body.get("error_code") if isinstance(body, dict) else None
    if not isinstance(statuses, list) or not all(isinstance(x, str) for x in statuses) or not statuses:
        return problem(400, "Bad replay", "status must be a non-empty list of final statuses")
    if codes is not None and (not isinstance(codes, list) or not all(isinstance(c, int) for c in codes)):
        return problem(400, "Bad replay", "error_code must be a list of Twilio error codes")
    result = await _producer(request).replay(
        request.match_info["batch_id"], statuses=statuses, error_codes=codes, dry_run=bool(body.get("dry_run"))
    )
    return web.json_response(result, status=202 if result["batch"] and result["batch"]["created"] else 200)


async def delivery(request: web.Request) -> web.StreamResponse:
    """GET /v1/deliveries/{delivery_id}."""
    return web.json_response(await _producer(request).delivery(request.match_info["delivery_id"]))


async def _submit(request: web.Request, payload: dict[str, Any], key: str | None) -> Submitted:
    if key and "idempotency_key" not in payload:
        payload["idempotency_key"] = key
    return await _producer(request).submit(payload, enqueue="background")


def add_routes(app: web.Application, producer: Callable[[], Producer]) -> None:
    """Mount the /v1 routes; ``producer`` returns the app's Producer once it has started."""
    app[PRODUCER] = producer
    app.router.add_post("/v1/batches", submit)
    app.router.add_get("/v1/batches/{batch_id}", batch_status)
    app.router.add_get("/v1/batches/{batch_id}/deliveries", batch_deliveries)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel)
    app.router.add_post("/v1/batches/{batch_id}/replay", replay)
    app.router.add_get("/v1/deliveries/{delivery_id}", delivery)
