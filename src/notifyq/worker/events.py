"""One event of a delivery's history (``delivery_events``), as the worker and the reconciler write it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# attempt: a create and its answer; state: a move the worker made (expired, handed back...);
# lookup: a look-up in Twilio's list that failed; reconcile: a fetch the reconciler made
EventKind = Literal["attempt", "state", "lookup", "reconcile"]


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """What happened to a delivery at ``at`` (epoch seconds), and why."""

    kind: EventKind
    at: float
    reason: str | None = None
    status: str | None = None
    error_code: int | None = None
    http_status: int | None = None
    duration_ms: float | None = None
    applied: bool | None = None  # a status it carries was applied to the delivery
    data: dict[str, Any] | None = None  # for an attempt, the request's parameters

    def row(self, delivery_id: str | None = None) -> dict[str, Any]:
        """The event as the store takes it; a field left None is not set, so the store's value for it holds.

        (``Store.record_outcome`` sets the event's status and error code to the ones it records.)
        """
        fields = (
            ("delivery_id", delivery_id),
            ("at", self.at),
            ("kind", self.kind),
            ("reason", self.reason),
            ("status", self.status),
            ("error_code", self.error_code),
            ("http_status", self.http_status),
            ("duration_ms", self.duration_ms),
            ("applied", self.applied),
            ("data", self.data),
        )
        return {name: value for name, value in fields if value is not None}
