"""Everything notifyq takes from arq beyond its public API, in one module.

arq's public API enqueues one job per call (``ArqRedis.enqueue_job``), reads a job back
(``arq.jobs.Job``) and runs jobs (``Worker``, ``func``, ``cron``, ``Retry``). notifyq goes past it in
three places, and each is named here:

* **Keys.** ``queue/jobs.py`` writes jobs with one script call per thousand jobs, reads them back
  (``JobQueue.has_job``), and the depth ledger reads their payloads in Lua: with arq's key names
  (``JOB_KEY_PREFIX`` ...). Scripts get them as Lua locals from ``LUA_NAMES``.
* **Payload.** A job is the msgpack map arq's worker reads (``job_payload``: fields ``t f a k et``).
* **Starting jobs.** ``LaneWorker`` is arq's ``Worker`` with its ``start_jobs`` replaced (one script
  call per group of jobs, arq's check and its in-progress mark), its job slots (``sem``,
  ``job_counter``) and job tasks (``tasks``, ``run_job``) driven as arq drives them, a hook after
  ``finish_job`` and ``finish_failed_job``, and the in-progress keys it leaves in an outage deleted.

``tests/queue/test_arq_contract.py`` checks each of these against arq itself, so an arq release that
changes one fails there. pyproject.toml pins arq to the minor version that test covers.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import structlog
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript

from notifyq.queue.connect import REDIS_LOST

log = structlog.get_logger("notifyq.worker")

JOB_KEY_PREFIX: Final[str] = job_key_prefix  # the job's payload
RESULT_KEY_PREFIX: Final[str] = result_key_prefix  # a finished job's result (notifyq keeps none)
IN_PROGRESS_KEY_PREFIX: Final[str] = in_progress_key_prefix  # set while a worker runs the job
RETRY_KEY_PREFIX: Final[str] = retry_key_prefix  # how many times the job has started
PAYLOAD_FUNCTION: Final = "f"
PAYLOAD_ARGS: Final = "a"
# pacing deferrals are arq retries too; notifyq's own attempt count (in the delivery row) limits sends
ARQ_MAX_TRIES: Final = 100_000


def _lua_string(text: str) -> str:
    if not all(c.isalnum() or c in ":-_" for c in text):
        raise ValueError(f"not a plain key name: {text!r}")
    return f"'{text}'"


# Lua locals with the names above, for the scripts that read or write arq's keys (prepended to each)
LUA_NAMES: Final = (
    "local ARQ_JOB_KEY, ARQ_RESULT_KEY, ARQ_IN_PROGRESS_KEY, ARQ_RETRY_KEY = "
    + ", ".join(map(_lua_string, (JOB_KEY_PREFIX, RESULT_KEY_PREFIX, IN_PROGRESS_KEY_PREFIX, RETRY_KEY_PREFIX)))
    + f"\nlocal ARQ_FUNCTION, ARQ_ARGS = {_lua_string(PAYLOAD_FUNCTION)}, {_lua_string(PAYLOAD_ARGS)}\n"
)


def job_payload(function: str, args: list[Any], enqueued_ms: int) -> dict[str, Any]:
    """A job as arq's worker reads it (serialised by the pool's job serializer): first try, no kwargs."""
    return {"t": 1, PAYLOAD_FUNCTION: function, PAYLOAD_ARGS: args, "k": {}, "et": enqueued_ms}


def job_args(payload: dict[str, Any]) -> list[Any]:
    """The positional arguments of a deserialised job."""
    args: list[Any] = payload[PAYLOAD_ARGS]
    return args


def drop_finished(worker: Worker) -> None:
    """Forget a worker's finished job tasks, as arq's poll does, without raising their errors.

    A job that failed for want of Redis runs again (``LaneWorker.release_orphans``); any other failure
    of arq's job task is logged here.
    """
    for job_id, task in list(worker.tasks.items()):
        if task.done():
            del worker.tasks[job_id]
            error = None if task.cancelled() else task.exception()
            if isinstance(error, REDIS_LOST):
                log.debug("job cut off by the Redis outage", job_id=job_id, error=repr(error))
            elif error is not None:  # arq's poll would have raised it, and ended the process
                log.error("job task failed", job_id=job_id, error=repr(error))


def running_jobs(worker: Worker) -> list[asyncio.Task[Any]]:
    """The job tasks of a worker that have not ended."""
    return [task for task in worker.tasks.values() if not task.done()]


# arq's check before it starts a job, for a group of jobs in one call: a job starts if it is due in the queue
# and not in progress anywhere, and is then marked in progress, as arq's WATCH transaction does for one job.
# A started job is also moved in the queue to when its in-progress key expires (parked): a poll reads only
# the due part of the queue, so jobs that are running must not fill it, and a job whose worker died
# becomes due exactly when another may take it.
# KEYS: the queue, then each job's in-progress key; ARGV: now (ms, the worker's clock, as arq compares),
# the in-progress key's life (ms), the lane's token (the mark's value: arq reads only that the key exists),
# then the job ids. Returns, per job, its score, or false (it does not start).
START_LUA: Final = """
local now, ttl, token, out = tonumber(ARGV[1]), ARGV[2], ARGV[3], {}
for i = 2, #KEYS do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i + 2])
  if score and tonumber(score) <= now and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('PSETEX', KEYS[i], ttl, token)
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ttl), ARGV[i + 2])
    out[i - 1] = score
  else
    out[i - 1] = false
  end
end
return out
"""
# deletes the in-progress marks that hold this lane's token and puts their jobs back where they were due
# (a mark another worker set stays, and so does its job). KEYS: the queue, then each job's in-progress key;
# ARGV: the token, then (job id, its due score) per key. Returns how many marks it deleted.
RELEASE_LUA: Final = """
local n = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    n = n + redis.call('DEL', KEYS[i])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2 * i - 1], ARGV[2 * i - 2])
  end
end
return n
"""
# jobs whose payload did not decode (not msgpack: a pickle planted in Redis, say), kept for a human with the
# reason and the payload's first bytes, never decoded any further
JOBS_DEAD_STREAM: Final = "notifyq:jobs:dead"
JOBS_DEAD_MAX: Final = 10_000  # entries kept (approximately); the oldest go first
JOBS_DEAD_PAYLOAD_BYTES: Final = 256
START_GROUP: Final = 16  # jobs checked and started per call; between calls, other workers start theirs
ORPHAN_MARGIN_S: Final = 10.0  # an in-progress key is taken for this lane's own only this long before it expires


class LaneWorker(Worker):
    """arq's Worker: its jobs started in groups, and made to come through a Redis outage.

    - **Jobs start in groups.** arq's ``start_jobs`` checks each id its poll read with four or five
      round trips (WATCH, EXISTS and ZSCORE, then MULTI, PSETEX and EXEC, or UNWATCH), also the ids of
      jobs that are running: a chunk job stays in the queue while it runs. Here this lane's own
      running jobs are dropped from the ids at once, and the others go ``START_GROUP`` at a time to
      one script that does arq's check and marks the due, free ones in progress, atomically: one
      round trip per group. Each job is started as arq starts it (a slot, a task running
      ``run_job``, the slot given back when it ends). When every id read can start, the lane begins
      at a random one: two workers that read the same ids at once then mostly take different groups
      instead of contending for the same ones in the same order.
    - **Job slots.** A slot is taken only for a job the script started, after it answered: a start
      that loses Redis takes none (arq's own takes the slot before its calls and keeps it when one
      fails: after enough outages the lane would take no jobs at all). A running job may give its
      slot back early (``let_go``: a chunk that has booked all its sends and only waits for their
      times); it still runs, and counts against nothing more.
    - **Running jobs are parked.** The script moves a job it starts to when its in-progress key expires,
      so the due part of the queue, which a poll reads ``queue_read_limit`` ids of, holds only jobs that
      may start: running jobs would otherwise fill it and hide the due ones behind them from every
      worker. arq moves a deferred job from the score it started with: ``finish_job`` counts from the
      parked place instead, and puts a job cancelled to run again back where it was.
    - **After a job.** Once arq has finished or deferred a job (moved it in the lane), ``on_finished``
      hears its id (the lane's queue depth follows: ``queue/depth.py``).
    - **In-progress keys.** A job whose task ended on a lost Redis (at its start, or at its finish,
      when arq records the outcome) leaves its in-progress key behind, and no worker runs it again
      until the key expires (``job_timeout_s`` + 10 s). So does a start whose script ran but whose
      answer the outage cut off: the lane does not know it marked those jobs. Each mark holds the
      lane's token, so ``release_orphans`` deletes, once Redis answers, the marks of both kinds that
      are still this lane's: the jobs run again at once. (A job run twice is harmless: its claims keep
      each delivery to one send.)
    """

    def __init__(
        self, *args: Any, lane: str | None = None, on_finished: Callable[[str], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lane = lane or self.queue_name
        self.on_finished = on_finished
        self._started: dict[str, float] = {}  # job id -> when this lane started it (monotonic)
        self._placed: dict[str, tuple[int, int]] = {}  # job id -> (its score when started, where it is parked)
        self._holding: set[asyncio.Task[Any]] = set()  # the job tasks that still hold a slot
        self.orphans: dict[str, float] = {}  # jobs whose task ended on a lost Redis -> when they started
        self.unsure: dict[str, float] = {}  # jobs of a start whose answer was lost -> when it was sent
        self.token = uuid.uuid4().hex  # the value of this lane's in-progress marks
        self._start_script: AsyncScript | None = None
        self._release_script: AsyncScript | None = None

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """Run arq's finish (the job done, or deferred: moved in the lane); then ``on_finished`` hears of it."""
        placed = self._placed.get(job_id)
        if not finish and placed is not None:
            score, parked = placed
            # arq's increment counts from the score the job started with; the job sits at its parked place
            incr_score = (score + (incr_score or 0) - parked) or None
        await super().finish_job(
            job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress
        )
        self._placed.pop(job_id, None)
        if self.on_finished is not None:
            self.on_finished(job_id)

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """Run arq's finish of a job that could not run (expired, unreadable); then ``on_finished`` hears of it.

        A job whose payload does not decode with the worker's deserializer (msgpack only: nothing from
        Redis is unpickled) is first put in the job dead letter (``JOBS_DEAD_STREAM``) with its reason.
        """
        await self._bury_undecodable(job_id)
        await super().finish_failed_job(job_id, result_data)
        self._placed.pop(job_id, None)
        if self.on_finished is not None:
            self.on_finished(job_id)

    async def _bury_undecodable(self, job_id: str) -> None:
        payload = await self.pool.get(JOB_KEY_PREFIX + job_id)
        if payload is None or self.job_deserializer is None:  # notifyq's workers always set theirs (msgpack)
            return
        try:
            self.job_deserializer(payload)
        except Exception as exc:  # noqa: BLE001 - whatever the deserializer refuses it with is the reason
            reason = f"job payload does not decode ({type(exc).__name__}: {str(exc)[:200]}); not run"
        else:
            return
        fields: dict[str, str | bytes | int] = {
            "job_id": job_id,
            "lane": self.lane,
            "reason": reason,
            "at": repr(time.time()),
            "size": len(payload),
            "payload": payload[:JOBS_DEAD_PAYLOAD_BYTES],
        }
        await self.pool.xadd(JOBS_DEAD_STREAM, fields, maxlen=JOBS_DEAD_MAX, approximate=True)  # type: ignore[arg-type]
        log.error("job refused and dead-lettered", job_id=job_id, lane=self.lane, reason=reason)

    def let_go(self, job_id: str) -> bool:
        """The running job ``job_id`` gives its slot back and runs on; whether this lane runs it."""
        task = self.tasks.get(job_id)
        if task is None or task not in self._holding:
            return False
        self._slot_back(task)
        return True

    def _slot_back(self, task: asyncio.Task[Any]) -> None:
        if task in self._holding:
            self._holding.discard(task)
            self._release_sem_dec_counter_on_complete()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start the due, free jobs among ``job_ids``, a group per script call, as many as there are free slots."""
        if self.orphans or self.unsure:  # a job cut off by an outage may have ended after the last release
            await self.release_orphans()
        ids = [job_id.decode() for job_id in job_ids]
        # a job that runs again after a Retry keeps its id: its finished task may still be listed here
        ids = [job_id for job_id in ids if (task := self.tasks.get(job_id)) is None or task.done()]
        if 1 < len(ids) <= self.max_jobs - self.job_counter:
            turn = random.randrange(len(ids))
            ids = ids[turn:] + ids[:turn]
        at = 0
        while at < len(ids) and self.job_counter < self.max_jobs:  # full: as arq, leave the rest to a later poll
            group = ids[at : at + min(START_GROUP, self.max_jobs - self.job_counter)]
            at += len(group)
            await self._start_group(group)

    async def _start_group(self, job_ids: list[str]) -> None:
        if self._start_script is None:
            self._start_script = self.pool.register_script(START_LUA)
        keys = [self.queue_name, *(IN_PROGRESS_KEY_PREFIX + job_id for job_id in job_ids)]
        args: list[str | int] = [timestamp_ms(), int(self.in_progress_timeout_s * 1000), self.token, *job_ids]
        parked = int(args[0]) + int(args[1])
        sent = time.monotonic()
        try:
            scores = await self._start_script(keys=keys, args=args)
        except REDIS_LOST:  # the script may have run: any of these may hold this lane's mark, parked
            self.unsure.update(dict.fromkeys(job_ids, sent))
            raise
        now = time.monotonic()
        for job_id, score in zip(job_ids, scores, strict=True):
            if score is None:  # not due, gone from the queue, or running elsewhere
                continue
            await self.sem.acquire()  # at once: the group is no larger than the free slots
            self.job_counter += 1
            started = int(float(score))
            self._placed[job_id] = (started, parked)
            task = self.loop.create_task(self.run_job(job_id, started))
            self._holding.add(task)
            task.add_done_callback(self._slot_back)
            task.add_done_callback(functools.partial(self._ended, job_id))
            self.tasks[job_id] = task
            self._started[job_id] = now

    def _ended(self, job_id: str, task: asyncio.Task[Any]) -> None:
        started = self._started.pop(job_id, None)
        if started is not None and not task.cancelled() and isinstance(task.exception(), REDIS_LOST):
            self.orphans[job_id] = started
        elif self.tasks.get(job_id) in (None, task):  # not started again meanwhile
            self._placed.pop(job_id, None)

    async def release_orphans(self) -> None:
        """Delete the in-progress keys this lane left behind in an outage (raises if Redis is still lost)."""
        keep_s = self.in_progress_timeout_s - ORPHAN_MARGIN_S
        now = time.monotonic()
        marked = self.orphans | self.unsure
        mine = [job_id for job_id, started in marked.items() if now - started < keep_s]
        if mine:
            if self._release_script is None:
                self._release_script = self.pool.register_script(RELEASE_LUA)
            # back from its parked place to where it was due: its score when started, or now (a start whose
            # answer was lost: it was due then, so it is due now)
            now_ms = timestamp_ms()
            args: list[str | int] = [self.token]
            for job_id in mine:
                placed = self._placed.get(job_id)
                args += [job_id, placed[0] if placed is not None else now_ms]
            keys = [self.queue_name, *(IN_PROGRESS_KEY_PREFIX + job_id for job_id in mine)]
            released = await self._release_script(keys=keys, args=args)
            if released:
                log.warning("jobs cut off by the Redis outage run again", lane=self.lane, jobs=released)
        for job_id in self.orphans:
            self._placed.pop(job_id, None)
        self.orphans.clear()
        self.unsure.clear()
