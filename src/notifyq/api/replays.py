"""The replay API: ``POST /v1/replays`` runs (or, dry, counts) a replay; ``GET /v1/replays/{id}`` reads its record.

A body that is not a JSON object is 400; a field of the wrong kind or value 422, every problem listed; a
replay over the threshold without ``"confirm": true`` 409 (``notifyq.replay``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from notifyq.api.auth import principal_of
from notifyq.api.batches import read_text
from notifyq.api.problems import problem
from notifyq.errors import Problem, ValidationFailed
from notifyq.intake import MALFORMED_JSON, decode_json, shown, text_problem
from notifyq.producer import Producer
from notifyq.replay import Replayer, ReplayRequest
from notifyq.store import ReplayFilter

REPLAY_PRODUCER = web.AppKey[Callable[[], Producer]]("notifyq_replay_producer")
LISTS: Final = {"batch_ids": str, "statuses": str, "error_codes": int}
TEXTS: Final = ("account", "sender", "since", "until", "operator")
FLAGS: Final = ("again", "dry_run", "confirm")
FIELDS: Final = frozenset(LISTS) | frozenset(TEXTS) | frozenset(FLAGS)
MAX_TEXT: Final = 200


async def run_replay(request: web.Request) -> web.StreamResponse:
    """POST /v1/replays {"batch_ids": [...], "statuses": [...], "error_codes": [...], "account": ..., ...}."""
    text = await read_text(request) if request.can_read_body else "{}"
    try:
        body = decode_json(text)
    except MALFORMED_JSON as exc:
        return problem(400, "Malformed JSON", str(exc))
    if not isinstance(body, dict):
        return problem(400, "Malformed replay", "the body must be a JSON object")
    replay = _request(body, _ran_by(request, body.get("operator")))
    answer = await Replayer(request.app[REPLAY_PRODUCER]()).replay(replay, enqueue="background")
    if answer["id"] is None:
        return web.json_response(answer)
    return web.json_response(answer, status=202, headers={"Location": f"/v1/replays/{answer['id']}"})


async def get_replay(request: web.Request) -> web.StreamResponse:
    """GET /v1/replays/{replay_id}."""
    return web.json_response(await Replayer(request.app[REPLAY_PRODUCER]()).record(request.match_info["replay_id"]))


def _request(body: Mapping[str, Any], ran_by: str) -> ReplayRequest:
    """The replay a body asks for; ValidationFailed with every problem in it."""
    problems = [
        Problem(str(k)[:MAX_TEXT], f"unknown field; a replay has {', '.join(sorted(FIELDS))}")
        for k in body
        if k not in FIELDS
    ]
    lists: dict[str, tuple[Any, ...]] = {}
    for name, kind in LISTS.items():
        value = body.get(name, [])
        if not isinstance(value, list) or not all(_is(v, kind) for v in value):
            problems.append(Problem(name, f"must be a list of {'numbers' if kind is int else 'strings'}"))
        else:
            lists[name] = tuple(dict.fromkeys(value))
    texts: dict[str, str | None] = {}
    for name in TEXTS:
        value = body.get(name)
        if value is not None and not (isinstance(value, str) and value and len(value) <= MAX_TEXT):
            problems.append(Problem(name, f"must be a non-empty string of at most {MAX_TEXT} characters"))
        elif isinstance(value, str) and (reason := text_problem(value)):
            problems.append(Problem(name, reason))
        else:
            texts[name] = value
    flags = {name: body.get(name, False) for name in FLAGS}
    problems += [Problem(name, "must be true or false") for name, v in flags.items() if not isinstance(v, bool)]
    moments = {name: _moment(name, texts.get(name), problems) for name in ("since", "until")}
    if problems:
        raise ValidationFailed(problems)
    statuses = {"statuses": lists["statuses"]} if lists["statuses"] else {}  # none given: the default
    f = ReplayFilter(
        **statuses,
        batch_ids=lists["batch_ids"],
        error_codes=lists["error_codes"],
        account=texts["account"],
        sender=texts["sender"],
        since=moments["since"],
        until=moments["until"],
    )
    return ReplayRequest(f, ran_by=ran_by, again=flags["again"], dry_run=flags["dry_run"], confirmed=flags["confirm"])


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def _moment(name: str, text: str | None, problems: list[Problem]) -> float | None:
    """An ISO 8601 time (UTC unless it says) as epoch seconds."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.append(Problem(name, f"must be an ISO 8601 time, e.g. 2026-12-07T03:00:00Z; not {shown(text)}"))
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def _ran_by(request: web.Request, operator: object) -> str:
    """Who runs a replay: the token's principal (its id and name), and the name the operator gives."""
    principal = principal_of(request)
    who = f"{principal.name} [{principal.id}]" if principal is not None else "no token"
    name = operator if isinstance(operator, str) and operator else "unnamed"
    return f"api:{name[: MAX_TEXT - 80]} (token {who[:60]})"


def add_routes(app: web.Application, producer: Callable[[], Producer]) -> None:
    """Mount /v1/replays; ``producer`` returns the app's Producer once it has started."""
    app[REPLAY_PRODUCER] = producer
    app.router.add_post("/v1/replays", run_replay)
    app.router.add_get("/v1/replays/{replay_id}", get_replay)
