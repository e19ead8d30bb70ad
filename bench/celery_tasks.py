"""The naive baseline: one Celery task per message, the official twilio client (runs in bench/.venvs/celery).

Imported by the Celery worker (``celery -A celery_tasks worker``, cwd = bench/) and run as a script by
``bench.dispatch``:

- ``python celery_tasks.py enqueue N QUEUE``: N send tasks on QUEUE;
- ``python celery_tasks.py consume QUEUE``: tell the running worker to start consuming QUEUE too.

The worker starts on the warm-up queue only, so it is warm before the clock starts: the twilio client
is imported by the main process before the pool forks, every pool process builds its client when it
starts, and each process says so by a file in BENCH_READY_DIR (``worker`` for the main process once it
consumes, ``child-PID`` for each prefork child). The real tasks wait on their own queue until
``consume``. Env: BENCH_BROKER_URL, BENCH_SIM_URL, BENCH_READY_DIR.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready
from twilio.rest import Client

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "simulator-token"  # noqa: S105 - the simulator's default
SENDER = "+15005550006"
BODY = "Your code is 123456. Reply STOP to opt out."
WARM_QUEUE = "bench.warm"

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue=WARM_QUEUE,
)
_local = threading.local()  # one client per pool process (prefork) or per thread (threads pool), like a real app


def _twilio() -> Any:
    client = getattr(_local, "client", None)
    if client is None:
        client = Client(ACCOUNT_SID, AUTH_TOKEN)
        client.api.base_url = os.environ.get("BENCH_SIM_URL", "http://127.0.0.1:9")
        _ = client.messages  # twilio loads its API modules on first use: load them now
        _local.client = client
    return client


_twilio()  # in the main process, before the prefork pool forks: the children inherit the imported modules


def _mark(name: str) -> None:
    ready = os.environ.get("BENCH_READY_DIR")
    if ready:
        Path(ready, name).touch()


@worker_process_init.connect
def _child_ready(**_: Any) -> None:
    _local.client = None  # a fresh client (and connection pool) per process, not the parent's
    _twilio()
    _mark(f"child-{os.getpid()}")


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    _mark("worker")


@app.task(name="send_sms", ignore_result=True)
def send_sms(to: str, body: str) -> str:
    return str(_twilio().messages.create(to=to, from_=SENDER, body=body).sid)


def _numbers(n: int) -> list[str]:
    """The same recipients as ``bench.common.recipients``."""
    out = []
    for i in range(n):
        exchange, line = divmod(i, 10_000)
        area = 415 + 100 * (exchange // 800)
        out.append(f"+1{area}{200 + exchange % 800}{line:04d}")
    return out


def _enqueue(n: int, queue: str) -> None:
    with app.producer_or_acquire() as producer:
        for number in _numbers(n):
            send_sms.apply_async((number, BODY), queue=queue, producer=producer)


def _consume(queue: str) -> int:
    replies = app.control.add_consumer(queue, reply=True, limit=1, timeout=10)
    print(json.dumps(replies))
    return 0 if replies and all("ok" in r for reply in replies for r in reply.values()) else 1


if __name__ == "__main__":
    command = sys.argv[1:2]
    if command == ["enqueue"]:
        _enqueue(int(sys.argv[2]), sys.argv[3])
    elif command == ["consume"]:
        sys.exit(_consume(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} enqueue N QUEUE | consume QUEUE")
