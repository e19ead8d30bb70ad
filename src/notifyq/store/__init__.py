"""Durable records: batches, deliveries, their events, suppressions, inbound messages, accounts (SQLAlchemy Core).

``Store`` is the one handle the other parts use. It combines one class per table or concern, each in
a module of its own, over one ``Database`` (the engine and the process' turn to write):

============== ===============================================================================
store          ``Store``: the parts below combined, opened and migrated in one call
batches        a batch and its deliveries created in one transaction; looked up, counted, canceled
bulk_insert    the deliveries of a batch, one driver statement per insert block
deliveries     deliveries read by id, batch or status; their history (delivery_events)
sends          claims, Twilio's 201s and attempt outcomes; the send path's group-commit flush
coalesce       ``WriteCoalescer``: the claims and 201s of concurrent jobs gathered into one flush
driver_sql     statements compiled once per dialect for the send path's executemanys
reports        status reports (callbacks, fetches) applied forward-only, set-at-a-time
suppressions   numbers an account must not send to
inbound        inbound messages (STOP, START, HELP)
unanswered     create attempts Twilio never answered: found, taken over, failed, canceled
reconcile      deliveries whose status at Twilio has gone stale; the reconciler's backlog
failures       failed and undelivered deliveries grouped by error code (``notifyq failures``)
tokens         the producer token registry: hashes, scopes, limits, revocation
overview       the ops page's lists: the latest batches' progress, the deliveries behind a failure code
replays        what a replay filter matches, with what its safety defaults read; replays and their links
accounts       the account registry's rows (secrets sealed by ``notifyq.accounts``)
retention      finished batches past the retention bound, deleted whole in chunks (``notifyq purge``)
engine         the engine, SQLite's pragmas and writer thread, the process' write lock
migrate        Alembic migrations, one migrator at a time, once the database answers
faults         what a database error means: not reachable yet, an outage, or a refusal
schema         the tables
records        the typed rows the store hands out
============== ===============================================================================
"""

from __future__ import annotations

from notifyq.store.accounts import AccountRecord
from notifyq.store.bulk_insert import ROWS_PER_INSERT
from notifyq.store.coalesce import WriteCoalescer
from notifyq.store.engine import PoolSize
from notifyq.store.faults import describe, unavailable, unreachable
from notifyq.store.migrate import current_revision
from notifyq.store.overview import BatchProgress
from notifyq.store.records import (
    Applied,
    BatchRow,
    Claim,
    DeliveryRow,
    FailureExample,
    FailureGroup,
    ReconcileBacklog,
    StatusReport,
)
from notifyq.store.replays import ReplayCandidate, ReplayFilter, ReplayLink, ReplayRecord
from notifyq.store.retention import Purged
from notifyq.store.sends import accepted_send
from notifyq.store.store import Store
from notifyq.store.tokens import TokenRow

__all__ = [
    "ROWS_PER_INSERT",
    "AccountRecord",
    "Applied",
    "BatchProgress",
    "BatchRow",
    "Claim",
    "DeliveryRow",
    "FailureExample",
    "FailureGroup",
    "PoolSize",
    "Purged",
    "ReconcileBacklog",
    "ReplayCandidate",
    "ReplayFilter",
    "ReplayLink",
    "ReplayRecord",
    "StatusReport",
    "Store",
    "TokenRow",
    "WriteCoalescer",
    "accepted_send",
    "current_revision",
    "describe",
    "unavailable",
    "unreachable",
]
