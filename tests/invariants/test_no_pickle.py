"""Invariant 7: no pickle. Anyone who can write to Redis must not be able to run code in a worker.

A job that does not decode is not run, and is kept in the job dead letter with its reason.

The test writes a job as arq's own default serializer would (a pickle), for our ``send`` function,
where the workers look for jobs: its ``arq:job:<id>`` key and a place in a lane. The pickle carries an
object whose unpickling creates a marker directory, so a worker that unpickled it would show it.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

from redis.asyncio import Redis

from helpers import people, settle, sms_batch
from notifyq.client import Client
from notifyq.queue.arq_compat import JOB_KEY_PREFIX, JOBS_DEAD_STREAM
from notifyq.queue.jobs import LANES, SEND_FUNCTION
from notifyq.testing import API_TOKEN, LocalStack


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: the code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _pickled_job(batch_id: str, marker: Path) -> bytes:
    """arq's job payload (``t f a k et``) for ``send``, pickled; the extra key is unpickled with the rest."""
    job = {"t": 1, "f": SEND_FUNCTION, "a": [batch_id, 1], "k": {}, "et": int(time.time() * 1000)}
    return pickle.dumps({**job, "x": _Payload(marker)})


async def test_a_pickled_job_is_refused_and_the_worker_goes_on(stack: LocalStack, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    assert stack.settings.redis_url is not None
    assert stack.simulator is not None
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(3)))
        redis = Redis.from_url(stack.settings.redis_url)
        planted: dict[str, bytes] = {}
        try:
            # planted in both lanes, due now, before the real jobs are taken
            for lane, queue in LANES.items():
                job_id = f"planted-{lane}"
                planted[job_id] = _pickled_job(accepted["id"], marker)
                await redis.set(JOB_KEY_PREFIX + job_id, planted[job_id])
                await redis.zadd(queue, {job_id: time.time() * 1000 - 1000})
            assert pickle.loads(await redis.get(JOB_KEY_PREFIX + "planted-bulk") or b"")  # noqa: S301 - the point
            assert marker.exists(), "the planted payload runs code when unpickled"
            marker.rmdir()
            status = await settle(stack, client, accepted["id"])
            # the workers took the planted jobs off the lanes (a burst worker stops only when both are empty)
            assert [await redis.zscore(queue, f"planted-{lane}") for lane, queue in LANES.items()] == [None, None]
            # and kept each in the job dead letter, with the reason, for a human to look at
            dead = {fields[b"job_id"].decode(): fields for _id, fields in await redis.xrange(JOBS_DEAD_STREAM)}
            assert set(dead) == set(planted)
            for job_id, fields in dead.items():
                assert b"does not decode" in fields[b"reason"]
                assert int(fields[b"size"]) == len(planted[job_id])
                assert planted[job_id].startswith(fields[b"payload"])
        finally:
            await redis.aclose()
    assert not marker.exists(), "a worker unpickled a job from Redis"
    # the worker went on with the real jobs: the batch was sent, once per recipient
    assert status["by_status"] == {"delivered": 3}
    assert sorted(stack.simulator.sends_by_callback().values()) == [1, 1, 1]
