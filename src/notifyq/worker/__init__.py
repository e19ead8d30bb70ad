"""The worker: arq's job functions, the dispatcher that sends, and the reconciler.

A worker process is built by :func:`create_worker` (or run by :func:`run_worker`): a
:class:`NotifyqWorker` runs both lanes over one :class:`WorkerApp`. Its send jobs go through the
:class:`Dispatcher` and end as values (:class:`Done`, :class:`Deferred`, a :class:`ChunkRun`);
only the job functions turn them into arq's ``Retry``. :func:`reconcile_once` is the reconciler's
pass, :func:`requeue_with` queues again what Redis lost. Its metrics are its own
(:class:`WorkerMetrics`).
"""

from notifyq.worker.app import WorkerApp, build_worker_app
from notifyq.worker.dispatcher import Dispatcher
from notifyq.worker.main import NotifyqWorker, create_worker, run_worker
from notifyq.worker.metrics import WorkerMetrics, serve_metrics
from notifyq.worker.outcomes import ChunkRun, Deferred, Done, Outcome, Owed, Throttled
from notifyq.worker.reconcile import reconcile_once
from notifyq.worker.requeue import requeue_with, sweep_interrupted

__all__ = [
    "ChunkRun",
    "Deferred",
    "Dispatcher",
    "Done",
    "NotifyqWorker",
    "Outcome",
    "Owed",
    "Throttled",
    "WorkerApp",
    "WorkerMetrics",
    "build_worker_app",
    "create_worker",
    "reconcile_once",
    "requeue_with",
    "run_worker",
    "serve_metrics",
    "sweep_interrupted",
]
