"""What tests share: bounded waits, the local stack's batches and settling, real database outages."""

from helpers.outage import Outage, PostgresOutage, SqliteLock, TcpProxy
from helpers.stack import (
    SENDER,
    NotifyqProcess,
    notifyq_process,
    people,
    run_cli,
    settings_env,
    settle,
    sms_batch,
)
from helpers.waiting import holds, holds_sync, wait_until

__all__ = [
    "SENDER",
    "NotifyqProcess",
    "Outage",
    "PostgresOutage",
    "SqliteLock",
    "TcpProxy",
    "holds",
    "holds_sync",
    "notifyq_process",
    "people",
    "run_cli",
    "settings_env",
    "settle",
    "sms_batch",
    "wait_until",
]
