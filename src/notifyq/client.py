"""A small async HTTP client for remote producers (``notifyq.Client``).

async with Client("http://notifyq.internal:8080", token="...") as nq:
    batch = await nq.submit({"channel": "sms", "from": "+15005550006", "body": "Hi {name}",
                             "recipients": [{"to": "+14155550100", "vars": {"name": "Ann"}}]},
                            idempotency_key="welcome-2026-11-22")
    print(await nq.batch(batch["id"]))
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from notifyq.errors import NotifyqError


class ApiError(NotifyqError):
    """The API answered with a problem; ``problem`` is its problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


class Client:
    """Talks to a notifyq API over HTTP."""

    def __init__(self, base_url: str, *, token: str, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=timeout_s)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._session.close()

    async def submit(self, batch: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST a batch; returns the accepted batch (the same one again for a repeated idempotency key)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call("POST", "/v1/batches", json=batch, headers=headers)

    async def preview(self, batch: dict[str, Any]) -> dict[str, Any]:
        """What a batch would send and cost (``POST /v1/batches?dry_run=true``); nothing is stored or sent."""
        return await self._call("POST", "/v1/batches", json=batch, params={"dry_run": "true"})

    async def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch's counts by status and error code."""
        return await self._call("GET", f"/v1/batches/{_segment(batch_id)}")

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """A delivery with its event history."""
        return await self._call("GET", f"/v1/deliveries/{_segment(delivery_id)}")

    async def deliveries(
        self, batch_id: str, *, status: str | None = None, after: str = "", limit: int = 100
    ) -> dict[str, Any]:
        """A page of a batch's deliveries (``{"items": [...], "next": id or None}``)."""
        params: dict[str, str] = {"limit": str(limit), "after": after}
        if status:
            params["status"] = status
        return await self._call("GET", f"/v1/batches/{_segment(batch_id)}/deliveries", params=params)

    async def replay(
        self,
        *,
        batch_ids: list[str] | None = None,
        statuses: list[str] | None = None,
        error_codes: list[int] | None = None,
        account: str | None = None,
        sender: str | None = None,
        since: str | None = None,
        until: str | None = None,
        again: bool = False,
        dry_run: bool = False,
        confirm: bool = False,
        operator: str | None = None,
    ) -> dict[str, Any]:
        """Send failed deliveries again as new batches (``POST /v1/replays``); the answer counts what was skipped.

        ``since``/``until`` are ISO 8601 times. A replay over the server's threshold needs ``confirm=True``
        (else ApiError 409).
        """
        given = {
            "batch_ids": batch_ids,
            "statuses": statuses,
            "error_codes": error_codes,
            "account": account,
            "sender": sender,
            "since": since,
            "until": until,
            "operator": operator,
        }
        body: dict[str, Any] = {k: v for k, v in given.items() if v} | {
            "again": again,
            "dry_run": dry_run,
            "confirm": confirm,
        }
        return await self._call("POST", "/v1/replays", json=body)

    async def replay_record(self, replay_id: str) -> dict[str, Any]:
        """A replay's record: who ran it, when, the filter, what it matched, skipped and created."""
        return await self._call("GET", f"/v1/replays/{_segment(replay_id)}")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel a batch's unsent deliveries."""
        return await self._call("POST", f"/v1/batches/{_segment(batch_id)}/cancel")

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self._session.request(method, self.base_url + path, **kwargs) as resp:
            text = await resp.text(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:  # not JSON: a proxy's error page, say
                body = {"title": resp.reason or "", "detail": text}
            if resp.status >= 400 or not isinstance(body, dict):
                raise ApiError(resp.status, body if isinstance(body, dict) else {"detail": text})
            return body


def _segment(ident: str) -> str:
    """An id as one path segment: a ``/``, ``?`` or ``..`` in it cannot reach another resource."""
    return quote(ident, safe="")
