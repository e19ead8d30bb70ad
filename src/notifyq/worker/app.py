"""What every job of a worker process shares: ``WorkerApp``, built once by ``build_worker_app``."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass

from arq.connections import ArqRedis

from notifyq.pacing import Pacer
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.connect import redis_from_url
from notifyq.queue.jobs import JobQueue, deserialize, serialize
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
    pacer = Pacer(redis, settings)
    jobs = JobQueue(redis)
    metrics = WorkerMetrics()
    dispatcher = Dispatcher(settings, store, BatchCache(store, settings), pacer, twilio, jobs, metrics=metrics)
    return WorkerApp(settings, store, redis, jobs, pacer, twilio, dispatcher, metrics)
