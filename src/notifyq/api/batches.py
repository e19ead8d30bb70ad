"""The producer API: submit a batch, read its counts, read a delivery, cancel a batch."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from notifyq.api.problems import problem
from notifyq.producer import Producer


def routes(producer: Any) -> web.RouteTableDef:
    """The /v1 routes; ``producer`` is a zero-argument callable returning the app's Producer."""
    table = web.RouteTableDef()

    def _producer() -> Producer:
        p: Producer = producer()
        return p

    @table.post("/v1/batches")
    async def submit(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return problem(415, "Unsupported media type", "send the batch as application/json")
        try:
            payload = await request.json(loads=json.loads)
        except ValueError as exc:
            return problem(400, "Malformed JSON", str(exc))
        if not isinstance(payload, dict):
            return problem(400, "Malformed batch", "the body must be a JSON object")
        key = request.headers.get("Idempotency-Key")
        if key and "idempotency_key" not in payload:
            payload["idempotency_key"] = key
        submitted = await _producer().submit(payload)
        body = submitted.as_dict() | {"links": {"self": f"/v1/batches/{submitted.batch.id}"}}
        return web.json_response(body, status=202 if submitted.created else 200)

    @table.get("/v1/batches/{batch_id}")
    async def batch_status(request: web.Request) -> web.StreamResponse:
        return web.json_response(await _producer().batch_status(request.match_info["batch_id"]))

    @table.get("/v1/batches/{batch_id}/deliveries")
    async def deliveries(request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            return problem(400, "Bad limit", "limit must be a whole number")
        if not 1 <= limit <= 1000:
            return problem(400, "Bad limit", "limit must be between 1 and 1000")
        page = await _producer().deliveries(
            request.match_info["batch_id"], status=q.get("status"), after=q.get("after", ""), limit=limit
        )
        return web.json_response(page)

    @table.post("/v1/batches/{batch_id}/cancel")
    async def cancel(request: web.Request) -> web.StreamResponse:
        n = await _producer().cancel(request.match_info["batch_id"])
        return web.json_response({"id": request.match_info["batch_id"], "canceled": n})

    @table.get("/v1/deliveries/{delivery_id}")
    async def delivery(request: web.Request) -> web.StreamResponse:
        return web.json_response(await _producer().delivery(request.match_info["delivery_id"]))

    return table
