"""arq's own ceiling: a worker process whose job does nothing (run by ``bench.dispatch``).

``python -m bench.arq_noop_worker REDIS_URL QUEUE MAX_JOBS POLL_DELAY_S OUT.json``: runs in burst mode
over the jobs already queued, then writes the first and last job start times to OUT.json.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import uvloop
from arq.connections import RedisSettings
from arq.worker import Worker, func

STARTS: list[float] = []


async def noop(_ctx: dict[str, Any]) -> None:
    STARTS.append(time.time())


async def main(redis_url: str, queue: str, max_jobs: int, poll_delay_s: float, out: str) -> None:
    logging.getLogger("arq").setLevel(logging.WARNING)
    worker = Worker(
        functions=[func(noop, name="noop", keep_result=0)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        burst=True,
        max_jobs=max_jobs,
        poll_delay=poll_delay_s,
        keep_result=0,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    with open(out, "w") as fh:  # noqa: ASYNC230, PTH123 - once, at the end
        json.dump({"count": len(STARTS), "first": min(STARTS, default=0), "last": max(STARTS, default=0)}, fh)


if __name__ == "__main__":
    url, queue_name, jobs, poll, out_path = sys.argv[1:6]
    uvloop.run(main(url, queue_name, int(jobs), float(poll), out_path))
