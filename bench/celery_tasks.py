"""The naive baseline: one Celery task per message, the official twilio client (runs in bench/.venvs/celery).

Imported by the Celery worker (``celery -A celery_tasks worker``, cwd = bench/) and run as a script to
enqueue: ``python celery_tasks.py enqueue N``. Env: BENCH_BROKER_URL, BENCH_SIM_URL.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "simulator-token"  # noqa: S105 - the simulator's default
SENDER = "+15005550006"

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1"))
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
_client: Any = None


def _twilio() -> Any:
    global _client  # noqa: PLW0603 - one client per worker process, like a real app
    if _client is None:
        from twilio.rest import Client  # noqa: PLC0415

        _client = Client(ACCOUNT_SID, AUTH_TOKEN)
        _client.api.base_url = os.environ["BENCH_SIM_URL"]
    return _client


@app.task(name="send_sms", ignore_result=True)
def send_sms(to: str, body: str) -> str:
    return str(_twilio().messages.create(to=to, from_=SENDER, body=body).sid)


def _numbers(n: int) -> list[str]:
    out = []
    for i in range(n):
        exchange, line = divmod(i, 10_000)
        out.append(f"+1415{200 + exchange % 800}{line:04d}")
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["enqueue"]:
    with app.producer_or_acquire() as producer:
        for number in _numbers(int(sys.argv[2])):
            send_sms.apply_async((number, "Your code is 123456. Reply STOP to opt out."), producer=producer)
