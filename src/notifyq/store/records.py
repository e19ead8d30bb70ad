"""Typed rows the store hands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifyq.statuses import Channel


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A stored batch; ``content`` holds what is the same for every recipient."""

    id: str
    created_at: float
    idempotency_key: str | None
    channel: Channel
    account: str
    account_sid: str
    sender: str | None
    messaging_service_sid: str | None
    priority: str
    content: dict[str, Any]
    send_at: float | None
    valid_until: float
    total: int
    duplicates_dropped: int
    meta: dict[str, Any] | None
    canceled_at: float | None
    enqueued_at: float | None
    request_hash: str | None  # what a repeat of its idempotency key must match (notifyq.intake.digest)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A stored delivery: the truth about one recipient."""

    id: str
    batch_id: str
    seq: int
    channel: Channel
    to_number: str
    variables: dict[str, str] | None
    status: str
    status_rank: int
    call_seq: int | None
    twilio_sid: str | None
    error_code: int | None
    error_message: str | None
    attempts: int
    segments: int | None
    created_at: float
    updated_at: float
    dispatched_at: float | None
    final_at: float | None
    valid_until: float


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery a worker has claimed for one create attempt."""

    id: str
    batch_id: str
    channel: Channel
    to_number: str
    variables: dict[str, str] | None
    attempts: int
    valid_until: float
    dispatched_at: float


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status Twilio reported (callback or fetch) for one delivery."""

    delivery_id: str
    sid: str
    status: str
    source: str  # callback | reconcile
    at: float
    sequence: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    invalid: str | None = None  # why it cannot be applied (a SID or status that is not one): kept as an event only


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of a status report."""

    applied: bool
    reason: str
    status: str | None  # the stored status afterwards (None: no such delivery)


@dataclass(frozen=True, slots=True)
class ReconcileBacklog:
    """How far behind the reconciler is."""

    stale: int  # deliveries Twilio holds whose status is past its deadline, waiting for a fetch
    oldest_stale_s: float  # how long the oldest of them has gone without news (0 when there is none)
    unanswered: int  # attempts left dispatching without a SID past the deadline (re-queued if they have no job)


@dataclass(frozen=True, slots=True)
class FailureExample:
    """One failed or undelivered delivery shown as an example of its error code (the number unmasked)."""

    delivery_id: str
    batch_id: str
    to_number: str
    status: str
    error_message: str | None
    at: float  # when it became final


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failed and undelivered deliveries with one error code (None: none was reported)."""

    error_code: int | None
    count: int
    batch_count: int  # batches with at least one of them
    batch_ids: tuple[str, ...]  # those with the most, most first (bounded)
    examples: tuple[FailureExample, ...]  # the latest few
