"""``/ops``: the live ops page, its JSON, the deliveries behind a failure code, and operator sign-in.

============================ =======================================================================
``GET /ops``                 the page (server-rendered; ``ops.js`` refreshes its panel in place)
``GET /ops/panel``           the panel alone, what the script fetches
``GET /ops/data``            every figure the page shows, one JSON object (``ops_data.gather_ops``)
``GET /ops/deliveries``      failed deliveries with one error code, masked: HTML, or JSON when asked
``GET|POST /ops/signin``     the sign-in form; a token in, a session cookie out (``ops_session``)
``POST /ops/signout``        the cookie cleared
``GET /ops/static/{name}``   the script and stylesheet, served from the package (no CDN)
============================ =======================================================================

Read-only: nothing here changes a delivery, a batch or the pacer. Every route but the sign-in form and
the static files wants a token with the ``ops`` scope, or a session signed in with one (``api.auth``
checks, by ``api.scopes``' table): a browser without a session is sent to the form, any other client
gets a 401 problem.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from importlib import resources
from typing import Any, Final, Protocol
from urllib.parse import urlencode

from aiohttp import web
from redis.exceptions import RedisError

from notifyq import ids
from notifyq.api import ops_view
from notifyq.api.auth import Resolver
from notifyq.api.ops_data import OpsSources, delivery_view, gather_ops
from notifyq.api.ops_session import same_origin
from notifyq.api.problems import problem
from notifyq.producer import Producer
from notifyq.queue.inbox import CallbackInbox
from notifyq.settings import Settings
from notifyq.store import Store
from notifyq.tokens import Scope

REFRESH_S: Final = 2.0
# every open page of one replica shares a reading this young: the cost follows replicas, not viewers
SHARED_FOR_S: Final = 1.0
PAGE_SIZE: Final = 50
MAX_PAGE: Final = 500
ERROR_CODE_DIGITS: Final = 9  # within the INTEGER column the codes are kept in, on every engine
ERROR_CODE_PATTERN: Final = rf"^(none|[0-9]{{1,{ERROR_CODE_DIGITS}}})$"
NUMBER_PATTERN: Final = r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"
BEFORE_PATTERN: Final = rf"^{NUMBER_PATTERN}:"  # the previous page's last time and id
_NUMBER: Final = re.compile(NUMBER_PATTERN)


def _whole(text: str, digits: int = 6) -> int:
    """ASCII digits only: ``int`` alone also takes signs, spaces, underscores and other scripts' digits."""
    if not (0 < len(text) <= digits and text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _before(text: str) -> tuple[float, str]:
    """A page's ``before``: the previous page's last time and id, ``at:id``."""
    at, colon, after_id = text.partition(":")
    if not colon:
        raise ValueError(text)
    return _finite(at), after_id


def _batch(text: str) -> str:
    if not ids.is_id(text):
        raise ValueError(text)
    return text


def _once(names: list[str]) -> None:
    """Each parameter at most once: a repeated one has no single value to read."""
    if len(names) != len(set(names)):
        raise ValueError(names)


def _only(allowed: str, text: str) -> None:
    if text != allowed:
        raise ValueError(text)


def _finite(text: str) -> float:
    """A number as JSON writes it: ``float`` alone also takes nan, inf, spaces and underscores."""
    if _NUMBER.fullmatch(text) is None or not math.isfinite(value := float(text)):
        raise ValueError(text)
    return value


STATIC: Final = {"ops.js": "text/javascript", "ops.css": "text/css", "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # the form posts carry their Origin; other sites learn nothing
    "Cache-Control": "no-store",
}


class ApiParts(Protocol):
    """What the routes need of the API's state (``api.app.ApiState``)."""

    settings: Settings
    resolver: Resolver

    def require_producer(self) -> Producer: ...  # noqa: D102
    def require_store(self) -> Store: ...  # noqa: D102
    def require_inbox(self) -> CallbackInbox: ...  # noqa: D102


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _see_other(location: str) -> web.Response:
    # a plain response, not a raised HTTPSeeOther: the cookie set on it must go out with it
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _safe_next(path: str) -> str:
    """Where to go after signing in: a path of these pages only (never another site)."""
    return path if path.startswith("/ops") and not path.startswith("//") and "\\" not in path else "/ops"


class OpsRoutes:
    """The handlers, over the API's state and its resolver (which holds the session cookie's ``OperatorAuth``)."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts
        self.resolver = parts.resolver
        self.auth = parts.resolver.sessions

        self._reading: tuple[float, dict[str, Any]] | None = None
        self._reading_lock = asyncio.Lock()

    def _sources(self) -> OpsSources:
        p = self.parts
        return OpsSources(p.require_producer().jobs, p.require_inbox(), p.require_store(), p.settings)

    async def _data(self) -> dict[str, Any]:
        async with self._reading_lock:  # viewers that ask together wait for one reading
            now = time.monotonic()
            if self._reading is not None and now - self._reading[0] < SHARED_FOR_S:
                return self._reading[1]
            try:
                data = await gather_ops(self._sources())
            except (RedisError, OSError) as exc:
                raise web.HTTPServiceUnavailable(reason=f"Redis unavailable: {exc}") from exc
            self._reading = (now, data)
            return data

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The whole page."""
        signed_in = "Authorization" not in request.headers
        return _html(ops_view.page(await self._data(), refresh_s=REFRESH_S, signed_in=signed_in))

    async def panel(self, _request: web.Request) -> web.StreamResponse:
        """The live part alone."""
        return _html(ops_view.panel(await self._data()))

    async def data(self, _request: web.Request) -> web.StreamResponse:
        """Every figure, as JSON."""
        return web.json_response(await self._data(), headers={"Cache-Control": "no-store"})

    async def deliveries(self, request: web.Request) -> web.StreamResponse:
        """Failed deliveries with one error code (``none``: without one), latest first, a page at a time."""
        q = request.query
        code_text = q.get("error_code", "")
        try:
            code = None if code_text == "none" else _whole(code_text, digits=ERROR_CODE_DIGITS)
            since = _finite(q["since"]) if "since" in q else None
            limit = min(_whole(q.get("limit", str(PAGE_SIZE)), digits=100), MAX_PAGE)
            before = _before(q["before"]) if "before" in q else None
            _only("json", q.get("format", "json"))
            batch = _batch(q["batch"]) if "batch" in q else None
            _once([name for name, _ in q.items()])
        except ValueError:
            return problem(
                400,
                "Bad query",
                "each parameter once: error_code a Twilio error code or none; since a Unix time; limit a count; "
                "batch a batch id; before at:id; format json",
            )
        if limit < 1:
            return problem(400, "Bad query", "limit must be at least 1")
        found = await self.parts.require_store().failed_deliveries(
            error_code=code, batch_id=batch, since=since, before=before, limit=limit
        )
        rows = [delivery_view(d) for d in found]
        next_url = None
        if len(found) == limit:
            tail = found[-1]
            next_url = "/ops/deliveries?" + urlencode({**q, "before": f"{tail.updated_at!r}:{tail.id}"})
        if q.get("format") == "json" or not _wants_html(request):
            return web.json_response(
                {"error_code": code, "deliveries": rows, "next": next_url}, headers={"Cache-Control": "no-store"}
            )
        title = f"Failed deliveries, error code {code_text}"
        signed_in = "Authorization" not in request.headers
        return _html(ops_view.deliveries_page(title, rows, next_url=next_url, signed_in=signed_in))

    async def signin_form(self, request: web.Request) -> web.StreamResponse:
        """The form (straight to the page for someone already signed in)."""
        next_path = _safe_next(request.query.get("next", "/ops"))
        signed_in = await self.resolver.of_request(request, cookie=True)
        if signed_in is not None and Scope.OPS in signed_in.scopes:
            raise web.HTTPSeeOther(next_path)
        return _html(ops_view.signin_page(next_path=next_path))

    async def signin(self, request: web.Request) -> web.StreamResponse:
        """A token in, a session cookie out; a wrong token gets the form again with 401."""
        if not same_origin(request, self.parts.settings.public_base_url):
            return problem(403, "Forbidden", "a sign-in from another site's page")
        form = await request.post()
        token, next_path = form.get("token"), _safe_next(str(form.get("next", "/ops")))
        principal = await self.resolver.bearer(token) if isinstance(token, str) and token else None
        if principal is None or Scope.OPS not in principal.scopes:
            return _html(ops_view.signin_page(next_path=next_path, error="That token is not valid."), status=401)
        response = _see_other(next_path)
        self.auth.sign_in(request, response, principal.id)
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        """Clear the cookie and go back to the form."""
        if not same_origin(request, self.parts.settings.public_base_url):
            return problem(403, "Forbidden", "a sign-out from another site's page")
        response = _see_other("/ops/signin")
        self.auth.sign_out(request, response)
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The script or stylesheet, from the package."""
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound(reason="no such file")
        body = resources.files("notifyq.api").joinpath("ops_static", name).read_bytes()
        return web.Response(
            body=body,
            content_type=STATIC[name],
            charset="utf-8",
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )


def add_routes(app: web.Application, parts: ApiParts) -> None:
    """Serve the ops pages from ``app``."""
    r = OpsRoutes(parts)
    app.router.add_get("/ops", r.page)
    app.router.add_get("/ops/panel", r.panel)
    app.router.add_get("/ops/data", r.data)
    app.router.add_get("/ops/deliveries", r.deliveries)
    app.router.add_get("/ops/signin", r.signin_form)
    app.router.add_post("/ops/signin", r.signin)
    app.router.add_post("/ops/signout", r.signout)
    app.router.add_get("/ops/static/{name}", r.static)
