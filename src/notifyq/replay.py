"""Replay across batches, safely: send again, as new batches, the final deliveries a filter matches.

The defaults protect people. A matched delivery is skipped for the first of these that holds, and the
answer counts each reason:

=================  ===================================================================================
suppressed         its recipient is on the account's suppression list (STOP, error 21610, an operator)
reached            its recipient has a delivered (or read, completed) delivery in a batch the filter
                   names (none named: in a batch holding a delivery it matches), or a replay of
                   this very delivery reached them
permanent_error    its error code is one the classification table fails or suppresses (21211, 21614,
                   21612, ...), and the filter's error codes do not name it
already_replayed   it was replayed before (``again`` replays it once more)
replay_in_flight   with ``again``: its latest replay is not final yet, and may still arrive
same_original      another matched delivery sends the same original again (a replay's delivery and
                   the delivery it replays, say): one new delivery per original
not_replayable     its batch was stored before notifyq kept the request a replay submits again
=================  ===================================================================================

Replays are idempotent per original delivery, not per filter: each new delivery is linked to its
original in the transaction that stores it (``store.replays``), so an overlapping filter finds it replayed.
A delivery a replay created stands for its original: replaying it again is a round of that original.
The recipients of one original batch become one new batch with that batch's request (sender, body,
account), submitted through the producer and paced like any other. A replay sending to more than
``replay.confirm_above`` recipients needs confirming.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.exc import IntegrityError

from notifyq import classify
from notifyq import statuses as st
from notifyq.errors import ConfirmationRequired, Conflict, NotFound, Problem, ValidationFailed
from notifyq.ids import is_id, new_id
from notifyq.intake.phones import mask_number
from notifyq.producer import Producer
from notifyq.store import ReplayCandidate, ReplayFilter, ReplayLink

MAX_ERROR_CODE: Final = 999_999  # Twilio's codes have 5 digits; this leaves room and keeps them small
_PERMANENT: Final = (classify.Action.FAIL, classify.Action.SUPPRESS)
NO_CODE: Final = "no Twilio error code"
UNKNOWN: Final = "not in notifyq's classification table"


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """One replay as asked: the filter, who asks, and the options."""

    filter: ReplayFilter
    ran_by: str
    again: bool = False  # replay deliveries replayed before, once more
    dry_run: bool = False  # count and show, store and send nothing
    confirmed: bool = False  # over the threshold: the operator said yes


def filter_problems(f: ReplayFilter) -> list[Problem]:
    """What is wrong with a filter (empty: nothing)."""
    problems: list[Problem] = []
    if not f.statuses:
        problems.append(Problem("statuses", "name at least one status, e.g. failed"))
    for status in f.statuses:
        if status in st.REACHED:
            problems.append(Problem("statuses", f"{status!r} reached its recipient: a replay never sends it again"))
        elif status == st.SUPPRESSED:
            problems.append(Problem("statuses", f"{status!r} recipients opted out: a replay never sends to them"))
        elif status not in st.REPLAYABLE:
            allowed = ", ".join(st.REPLAYABLE)
            problems.append(Problem("statuses", f"{status!r} is not a final status a replay sends again ({allowed})"))
    problems += [
        Problem("error_codes", f"{code!r} is not a Twilio error code")
        for code in f.error_codes
        if isinstance(code, bool) or not 0 < code <= MAX_ERROR_CODE
    ]
    if f.since is not None and f.until is not None and f.since >= f.until:
        problems.append(Problem("until", "must be later than since"))
    return problems


def skip_reason(c: ReplayCandidate, f: ReplayFilter, *, again: bool) -> str | None:
    """Why a matched delivery is not sent again (None: it is), the first of the defaults that holds."""
    if c.suppressed:
        return "suppressed"
    if c.reached:
        return "reached"
    if c.error_code is not None and c.error_code not in f.error_codes:
        known = classify.explain(c.error_code)
        if known is not None and known[0] in _PERMANENT:
            return "permanent_error"
    if c.replays and not again:
        return "already_replayed"
    if c.replay_live:
        return "replay_in_flight"
    return None


@dataclass(slots=True)
class _Plan:
    """What a filter matched, what the defaults skip, and what goes, by original batch."""

    matched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    chosen: dict[str, list[ReplayCandidate]] = field(default_factory=dict)  # original batch -> its deliveries

    @property
    def replayable(self) -> int:
        return sum(len(group) for group in self.chosen.values())


class Replayer:
    """Runs replays through a producer: the search, the defaults, the record, the new batches."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.store = producer.store
        self.settings = producer.settings.replay

    async def replay(self, request: ReplayRequest, *, enqueue: str = "wait") -> dict[str, Any]:
        """Run (or, dry, count) a replay; the answer: ``matched``, ``skipped`` by reason, ``replayed``, new batches.

        ``enqueue`` is ``Producer.submit``'s, for each new batch. ConfirmationRequired when the replay sends
        to more than ``replay.confirm_above`` recipients and is not confirmed; Conflict when another replay
        took some of the same deliveries meanwhile (the batches stored before stay, with their links).
        """
        f = request.filter
        for batch_id in f.batch_ids:
            if not is_id(batch_id):
                raise NotFound("batch", batch_id)
        if problems := filter_problems(f):
            raise ValidationFailed(problems)
        plan = await self._plan(f, again=request.again)
        answer = self._answer(request, plan)
        if request.dry_run:
            return answer
        if plan.replayable > self.settings.confirm_above and not request.confirmed:
            raise ConfirmationRequired(plan.replayable, self.settings.confirm_above)
        replay_id = new_id()
        await self.store.start_replay(
            replay_id,
            ran_by=request.ran_by,
            f=f,
            again=request.again,
            matched=plan.matched,
            skipped=answer["skipped"],
        )
        for batch_id, group in plan.chosen.items():
            answer["batch_ids"].append(await self._submit(replay_id, batch_id, group, enqueue))
            answer["replayed"] += len(group)
        await self.store.finish_replay(replay_id)
        return answer | {"id": replay_id}

    async def record(self, replay_id: str) -> dict[str, Any]:
        """A stored replay: who ran it, when, the filter, what it matched, skipped and created."""
        if not is_id(replay_id):
            raise NotFound("replay", replay_id)
        r = await self.store.get_replay(replay_id)
        return {
            "id": r.id,
            "created_at": r.created_at,
            "ran_by": r.ran_by,
            "filter": r.filter,
            "matched": r.matched,
            "skipped": r.skipped,
            "replayed": r.replayed,
            "batch_ids": list(r.batch_ids),
            "finished": r.finished_at is not None,
        }

    async def _plan(self, f: ReplayFilter, *, again: bool) -> _Plan:
        plan = _Plan()
        originals: set[str] = set()
        async for c in self.store.replay_candidates(f):
            plan.matched += 1
            reason = skip_reason(c, f, again=again)
            if reason is None and c.original_id in originals:
                reason = "same_original"
            if reason is None:
                originals.add(c.original_id)
                plan.chosen.setdefault(c.batch_id, []).append(c)
            else:
                plan.skipped[reason] += 1
        for batch_id in list(plan.chosen):
            if "request" not in (await self.store.get_batch(batch_id)).content:
                plan.skipped["not_replayable"] += len(plan.chosen.pop(batch_id))
        return plan

    def _answer(self, request: ReplayRequest, plan: _Plan) -> dict[str, Any]:
        chosen = [c for group in plan.chosen.values() for c in group]
        codes = Counter(c.error_code for c in chosen)
        return {
            "id": None,
            "dry_run": request.dry_run,
            "ran_by": request.ran_by,
            "filter": request.filter.as_dict() | {"again": request.again},
            "matched": plan.matched,
            "skipped": dict(sorted(plan.skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "skipped_total": plan.matched - len(chosen),
            "replayable": len(chosen),
            "replayed": 0,
            "needs_confirmation": len(chosen) > self.settings.confirm_above,
            "by_error_code": [
                {"error_code": code, "count": n, "meaning": _meaning(code)}
                for code, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0))
            ],
            "sample": [
                {
                    "to": mask_number(c.to_number),
                    "delivery_id": c.id,
                    "batch_id": c.batch_id,
                    "status": c.status,
                    "error_code": c.error_code,
                }
                for c in chosen[: self.settings.sample]
            ],
            "batch_ids": [],
        }

    async def _submit(self, replay_id: str, batch_id: str, group: list[ReplayCandidate], enqueue: str) -> str:
        """One original batch's deliveries as a new batch with its request, each linked to its original."""
        request = (await self.store.get_batch(batch_id)).content["request"]
        payload = {
            **request,
            "recipients": [
                {"to": c.to_number, "vars": c.variables} if c.variables else {"to": c.to_number} for c in group
            ],
            "metadata": {"replay_of": batch_id, "replay_id": replay_id},
        }
        link = ReplayLink(replay_id, {c.to_number: (c.original_id, c.replays) for c in group})
        try:
            submitted = await self.producer.submit(payload, enqueue=enqueue, replay=link)
        except IntegrityError:  # the unique (original, round): another replay took one of them first
            raise Conflict(
                f"another replay sent some of batch {batch_id}'s deliveries meanwhile; "
                f"replay {replay_id} stopped there: a dry run shows what is left"
            ) from None
        return submitted.batch.id


def _meaning(code: int | None) -> str:
    if code is None:
        return NO_CODE
    known = classify.explain(code)
    return known[1] if known is not None else UNKNOWN
