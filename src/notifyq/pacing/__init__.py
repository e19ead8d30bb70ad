"""Pacing shared by every worker: sender schedules, account leases and request budgets, in Redis.

Read docs/pacing.md first (the design and its terms), then: ``senders`` (which schedule and rate),
``types`` (the values), ``calls`` (the scripts' arguments), ``scripts`` and ``lua/`` (the scripts),
``pacer`` (the calls the worker makes), ``admin`` (pauses, rates, snapshot), ``budget`` (requests per
minute, for the reconciler), ``gate`` (the account's pacing for the connector's requests).
"""

from notifyq.pacing.admin import PacingAdmin
from notifyq.pacing.budget import RequestBudget
from notifyq.pacing.gate import AccountGate
from notifyq.pacing.pacer import Pacer
from notifyq.pacing.senders import SENDER_KINDS, sender_kind
from notifyq.pacing.types import LANES, LOOSE_S, Grant, PacerTuning, Reservation, Wait, still_to_book

__all__ = [
    "LANES",
    "LOOSE_S",
    "SENDER_KINDS",
    "AccountGate",
    "Grant",
    "Pacer",
    "PacerTuning",
    "PacingAdmin",
    "RequestBudget",
    "Reservation",
    "Wait",
    "sender_kind",
    "still_to_book",
]
