"""``Store``: every part's queries over one engine, opened and migrated in one call."""

from __future__ import annotations

from notifyq.store.accounts import AccountRecords
from notifyq.store.batches import Batches
from notifyq.store.deliveries import Deliveries
from notifyq.store.engine import PoolSize, create_engine
from notifyq.store.failures import FailureReports
from notifyq.store.inbound import InboundMessages
from notifyq.store.migrate import migrate, migrate_when_reachable
from notifyq.store.overview import Overview
from notifyq.store.reconcile import Reconciliation
from notifyq.store.replays import Replays
from notifyq.store.reports import StatusReports
from notifyq.store.retention import Retention
from notifyq.store.sends import Sends
from notifyq.store.suppressions import Suppressions
from notifyq.store.tokens import Tokens
from notifyq.store.unanswered import UnansweredAttempts


class Store(
    Sends,
    Batches,
    Deliveries,
    StatusReports,
    Suppressions,
    InboundMessages,
    UnansweredAttempts,
    Reconciliation,
    FailureReports,
    Overview,
    Replays,
    AccountRecords,
    Tokens,
    Retention,
):
    """Batches, deliveries and their events in SQLite or PostgreSQL.

    Each base holds the queries of one table or concern; all share one ``Database`` (the engine and
    the process' turn to write), so callers ask the store itself: ``store.get_delivery(...)``.
    """

    @classmethod
    async def open(cls, url: str, *, wait: bool = False, pool: PoolSize | None = None) -> Store:
        """Connect and migrate to the newest schema.

        ``wait``: for a service (API, worker, applier), keep trying while the database cannot be reached
        yet (``migrate_when_reachable``); a one-shot command fails at once. ``pool``: PostgreSQL's
        connections (``Settings.database``).
        """
        engine = create_engine(url, pool=pool)
        try:
            await (migrate_when_reachable(engine) if wait else migrate(engine))
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)
