"""What every job of a worker process shares: ``WorkerApp``, built once by ``build_worker_app``."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

from arq.connections import ArqRedis

from notifyq.accounts import AccountDirectory
from notifyq.pacing import Pacer
from notifyq.pacing.senders import AccountLimits, account_groups, account_limits
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.connect import redis_from_url
from notifyq.queue.jobs import JobQueue, deserialize, serialize
from notifyq.queue.throughput import ThroughputRecorder
from notifyq.settings import Settings
from notifyq.store import PoolSize, Store
from notifyq.worker.dispatcher import Dispatcher
from notifyq.worker.metrics import WorkerMetrics
from notifyq.worker.prepared import BatchCache


@dataclass
class WorkerApp:
    """Everything a send job needs; built once per process."""

    settings: Settings
    store: Store
    redis: ArqRedis
    jobs: JobQueue
    pacer: Pacer
    twilio: TwilioClient
    dispatcher: Dispatcher
    metrics: WorkerMetrics
    accounts: AccountDirectory


def resolved_limits(accounts: AccountDirectory, account_sid: str) -> AccountLimits:
    """An account's limits as the resolver last read them (the settings' defaults for one it does not know)."""
    found = accounts.known(account_sid)
    if found is None:
        return account_limits(accounts.settings, account_sid)
    groups = account_groups(found.account_sid, found.sender_groups)
    return AccountLimits(found.twilio.max_in_flight, found.twilio.calls_per_second, groups)


async def build_worker_app(
    settings: Settings, stack: AsyncExitStack, redis_url: str, *, store: Store | None = None
) -> WorkerApp:
    """Open every resource a worker needs; ``stack`` closes them (``store`` may be shared, then not closed)."""
    logging.getLogger("arq").setLevel(logging.WARNING)  # arq logs a line per job; ours is enough
    if store is None:
        store = await Store.open(settings.sqlalchemy_url(), wait=True, pool=PoolSize(**settings.database.model_dump()))
        stack.push_async_callback(store.close)
    redis = redis_from_url(redis_url, ArqRedis, decode_responses=False)
    # arq enqueues cron jobs through the pool: it must use msgpack too, never its pickle default
    redis.job_serializer = serialize
    redis.job_deserializer = deserialize
    stack.push_async_callback(redis.aclose)
    twilio = TwilioClient(settings.twilio)
    stack.push_async_callback(twilio.close)
    accounts = AccountDirectory(settings, store)
    pacer = Pacer(redis, settings, limits=partial(resolved_limits, accounts))
    jobs = JobQueue(redis)
    throughput = ThroughputRecorder(redis)
    throughput.start()
    stack.push_async_callback(throughput.close)  # before the Redis client closes: the last second is added
    metrics = WorkerMetrics(throughput=throughput)
    batches = BatchCache(store, settings, accounts=accounts)
    dispatcher = Dispatcher(settings, store, batches, pacer, twilio, jobs, metrics=metrics)
    return WorkerApp(settings, store, redis, jobs, pacer, twilio, dispatcher, metrics, accounts)
