"""Faults lose nothing and never send twice: a killed worker, an unanswered request, Redis losing its data."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from helpers import Outage, notifyq_process, people, settings_env, settle, sms_batch, wait_until
from notifyq.api.app import STATE
from notifyq.client import Client
from notifyq.queue.arq_compat import IN_PROGRESS_KEY_PREFIX, JOB_KEY_PREFIX
from notifyq.queue.depth import Depth
from notifyq.queue.jobs import BULK_QUEUE
from notifyq.queue.redis_server import redis_binary
from notifyq.simulator import SimulatorConfig
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack, free_port, local_stack
from notifyq.worker import NotifyqWorker, reconcile_once, requeue_with, sweep_interrupted


async def test_worker_killed_mid_send_does_not_send_twice(stack: LocalStack) -> None:
    # the simulator holds each request 3 s, then records the message and answers: the worker is killed
    # once the message exists, while the answer is on its way or just arrived
    stack.simulator.config.latency_s = 3.0
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifyq", "worker", env=settings_env(stack.settings)
        )
        try:
            await wait_until(lambda: len(stack.simulator.messages) == 1, "the message to exist")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        stack.simulator.config.latency_s = 0.0
        # arq frees a dead worker's job once its in-progress key expires; expire it now instead of waiting
        redis = Redis.from_url(stack.settings.redis_url or "")
        for key in await redis.keys(IN_PROGRESS_KEY_PREFIX + "*"):
            await redis.delete(key)
        await redis.aclose()
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 1}
    assert list(stack.simulator.sends_by_callback().values()) == [1]


async def test_unanswered_request_is_looked_up_not_resent(stack: LocalStack) -> None:
    stack.simulator.config.drop_after_create_rate = 1.0  # Twilio creates the message, the answer is lost
    stack.simulator.config.callbacks = False  # and no callback comes either
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(3)))
        await stack.run_burst()
        stack.simulator.config.drop_after_create_rate = 0.0
        status = await settle(stack, client, accepted["id"], timeout_s=5)
    # the messages were found in Twilio's list and adopted: one live message each, none re-sent
    assert sorted(stack.simulator.sends_by_callback().values()) == [1, 1, 1]
    assert sum(status["by_status"].values()) == 3
    assert set(status["by_status"]) <= {"queued", "sent", "delivered"}
    for delivery_id in [url.rsplit("/", 1)[-1] for url in stack.simulator.sends_by_callback()]:
        events = await stack.worker_app.store.events(delivery_id)
        assert any("adopted" in (e["reason"] or "") for e in events)


@pytest.mark.parametrize(
    ("listed", "adopted"),
    [({"sid": "SM" + "0" * 31 + "<", "status": "delivered"}, None), ({"status": "dispatching"}, "queued")],
    ids=["sid-not-a-sid", "status-not-twilios"],
)
async def test_a_listed_record_is_checked_before_it_is_adopted(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, listed: dict[str, str], adopted: str | None
) -> None:
    """Twilio's list is read as a callback is: a record whose SID is not one is not adopted (the look-up failed,
    and the delivery is not sent again), and one whose status is not Twilio's is adopted as queued."""
    stack.simulator.config.drop_after_create_rate = 1.0  # Twilio creates the message, the answer is lost
    stack.simulator.config.callbacks = False
    twilio = stack.worker_app.twilio
    real_list = twilio.list

    async def doctored(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return [record | listed for record in await real_list(*args, **kwargs)]

    monkeypatch.setattr(twilio, "list", doctored)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        await stack.run_burst()
        stack.simulator.config.drop_after_create_rate = 0.0
        store = stack.worker_app.store
        [row] = await store.list_deliveries(accepted["id"], limit=10)

        async def looked_up() -> bool:
            await stack.run_burst()
            events = await store.events(row.id)
            return any(e["kind"] == "lookup" or "adopted" in (e["reason"] or "") for e in events)

        await wait_until(looked_up, "the look-up of the unanswered create")
    after = await store.get_delivery(row.id)
    assert len(stack.simulator.messages) == 1  # never sent again
    if adopted is None:
        assert after.status == "dispatching"
        assert after.twilio_sid is None
        assert "no valid sid" in (after.error_message or "")
    else:
        assert after.status == adopted
        assert after.twilio_sid == stack.simulator.messages[0].sid


async def test_flushall_mid_batch_then_requeue_sends_each_once(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(30)))
        await stack.app[STATE].require_producer().drain()  # the jobs are in Redis now...
        redis = Redis.from_url(stack.settings.redis_url or "")
        await redis.flushall()  # ...and now they are gone
        await redis.aclose()
        result = await requeue_with(stack.worker_app.store, stack.worker_app.jobs, stack.settings)
        assert result["requeued"] == 30
        again = await requeue_with(stack.worker_app.store, stack.worker_app.jobs, stack.settings)
        assert again["requeued"] == 0  # idempotent: the jobs are there now
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 30}
    assert sorted(set(stack.simulator.sends_by_callback().values())) == [1]
    assert len(stack.simulator.sends_by_callback()) == 30


async def test_a_database_outage_mid_batch_loses_nothing_and_sends_once(
    outage: Outage, outage_stack: LocalStack
) -> None:
    """The database goes away while a worker sends a batch (PostgreSQL: every connection reset and refused;
    SQLite: the file locked), and comes back: every delivery ends final, with one create each."""
    stack = outage_stack
    assert stack.simulator is not None
    stack.simulator.config.latency_s = 0.05  # the cut finds sends in flight, claimed and not yet recorded
    env = settings_env(stack.settings) | {
        "NOTIFYQ_WORKER__UNAVAILABLE_RETRY_S": "0.2",
        "NOTIFYQ_WORKER__CALLBACK_GRACE_S": "0.3",
        "NOTIFYQ_WORKER__MAX_JOBS": "20",
    }
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(120)))  # three chunk jobs
        await stack.app[STATE].require_producer().drain()
        async with notifyq_process("worker", env=env) as worker:
            await wait_until(lambda: len(stack.simulator.messages) >= 10, "the batch under way")
            await outage.cut()
            sent_at_cut = len(stack.simulator.messages)
            try:
                await wait_until(
                    lambda: worker.said("store or Redis unavailable; job comes back later"),
                    "the worker to meet the outage",
                    timeout_s=60,
                )
            except AssertionError:
                print("DIAG sent_at_cut", sent_at_cut, "now", len(stack.simulator.messages))  # noqa: T201
                print("DIAG", "".join(worker.lines)[-8000:])  # noqa: T201
                raise
            assert worker.proc.returncode is None, worker.tail()
            await outage.restore()
            await wait_until(
                lambda: len(stack.simulator.messages) >= 120, "every message once the database is back", timeout_s=60
            )
            code = await worker.stop()
        assert code == 0, worker.tail()
        status = await settle(stack, client, accepted["id"], timeout_s=30)
        if status["by_status"] != {"delivered": 120}:
            print("DIAG dead", [(e.reason, e.tries) for e in await stack.inbox.dead.entries()])  # noqa: T201
            for r in await stack.worker_app.store.list_deliveries(accepted["id"], limit=200):
                if r.status != "delivered":
                    print("DIAG row", r.id, r.status, r.twilio_sid, r.attempts)  # noqa: T201
                    for e in await stack.worker_app.store.events(r.id):
                        print("DIAG   ev", e["kind"], e["status"], e["reason"], e["at"])  # noqa: T201
            print("DIAG stream left", await stack.inbox.backlog() if hasattr(stack.inbox, "backlog") else "?")  # noqa: T201
    assert sent_at_cut < 120  # the outage came in the middle of the batch
    assert status["by_status"] == {"delivered": 120}
    assert sorted(set(stack.simulator.sends_by_callback().values())) == [1]
    assert len(stack.simulator.sends_by_callback()) == 120


async def test_the_api_refuses_writes_with_503_while_the_database_is_down(
    outage: Outage, outage_stack: LocalStack
) -> None:
    stack = outage_stack
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await outage.cut()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{stack.api_url}/v1/batches",
                json=sms_batch(people(3)),
                headers={"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": "during-the-outage"},
            ) as resp,
        ):
            status, content_type, body = resp.status, resp.content_type, await resp.json(content_type=None)
        assert (status, content_type) == (503, "application/problem+json"), body
        assert body["status"] == 503
        await outage.restore()
        accepted = await client.submit(sms_batch(people(3)), idempotency_key="during-the-outage")
        assert accepted["created"]  # nothing of the refused request was kept
        done = await settle(stack, client, accepted["id"])
    assert done["by_status"] == {"delivered": 3}


async def test_retryable_errors_are_retried_then_delivered(stack: LocalStack) -> None:
    stack.simulator.config.rate_5xx = 0.5
    stack.simulator.config.rate_429 = 0.2
    stack.settings.worker.max_attempts = 40  # 60 % of requests fail: give every delivery room to get through
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(20)))
        status = await settle(stack, client, accepted["id"], timeout_s=30)
    assert status["by_status"] == {"delivered": 20}
    assert len(stack.simulator.sends_by_callback()) == 20


async def test_attempts_are_bounded(stack: LocalStack) -> None:
    stack.simulator.config.rate_5xx = 1.0
    stack.settings.worker.max_attempts = 3
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(2)))
        status = await settle(stack, client, accepted["id"], timeout_s=30)
        assert status["by_status"] == {"failed": 2}
        assert sum(status["by_error_code"].values()) == 2
        page = await client.deliveries(accepted["id"], status="failed")
        assert len(page["items"]) == 2
        delivery = await client.delivery(page["items"][0]["id"])
    assert delivery["attempts"] == 3
    assert [e["kind"] for e in delivery["events"]] == ["attempt", "attempt", "attempt"]


async def test_auth_failure_pauses_the_account_until_resumed(stack: LocalStack) -> None:
    from pydantic import SecretStr  # noqa: PLC0415

    account = stack.settings.twilio.accounts["main"]
    good_token = account.auth_token
    account.auth_token = SecretStr("revoked-token")  # Twilio now answers 401 / 20003
    stack.worker_app.twilio._auth.clear()
    stack.settings.worker.paused_recheck_s = 0.2
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(5)))
        worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run(drain_s=1))
        try:
            await wait_until(lambda: stack.simulator.counters.requests >= 1, "the first request")

            async def is_paused() -> bool:
                return await stack.worker_app.pacer.admin.paused(account.account_sid) is not None

            await wait_until(is_paused, "the account to be paused")
            paused = await stack.worker_app.pacer.admin.paused(account.account_sid)
            assert paused is not None
            assert "20003" in paused
            requests = stack.simulator.counters.requests
            # the scenario: several of the paused jobs' rechecks (every paused_recheck_s) pass
            await asyncio.sleep(5 * stack.settings.worker.paused_recheck_s)
            status = await client.batch(accepted["id"])
            # nothing failed: the deliveries wait, their attempts not used up
            assert set(status["by_status"]) <= {"pending", "retrying"}
            assert stack.simulator.counters.requests == requests  # the pause stopped the flood
            account.auth_token = good_token
            stack.worker_app.twilio._auth.clear()
            await stack.worker_app.pacer.admin.resume_account(account.account_sid)
            await wait_until(
                lambda: len(stack.simulator.sends_by_callback()) == 5,
                "the five messages after the resume",
                timeout_s=20,
            )
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 5}


async def test_an_interrupted_enqueue_is_finished_by_the_sweep(stack: LocalStack) -> None:
    producer = stack.app[STATE].require_producer()
    submitted = await producer.submit(sms_batch(people(4)), enqueue="none")  # rows committed, then "crash"
    assert await stack.worker_app.jobs.depth() == {"urgent": Depth(0, 0), "bulk": Depth(0, 0)}
    assert await sweep_interrupted(stack.worker_app.store, stack.worker_app.jobs, stack.settings, grace_s=0) == 4
    assert await sweep_interrupted(stack.worker_app.store, stack.worker_app.jobs, stack.settings, grace_s=0) == 0
    async with Client(stack.api_url, token=API_TOKEN) as client:
        status = await settle(stack, client, submitted.batch.id)
    assert status["by_status"] == {"delivered": 4}


async def test_an_interrupted_enqueue_is_finished_by_a_running_worker_without_an_operator(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.settings.reconcile.interval_s = 1.0  # the reconciler's cron: every second
    stack.settings.reconcile.interrupted_after_s = 0.5
    producer = stack.app[STATE].require_producer()
    submitted = await producer.submit(sms_batch(people(4)), enqueue="none")  # rows committed, then the API "dies"
    assert await stack.worker_app.jobs.depth() == {"urgent": Depth(0, 0), "bulk": Depth(0, 0)}
    worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run(drain_s=1))
    try:
        async with Client(stack.api_url, token=API_TOKEN) as client:

            async def finished() -> bool:
                await stack.inbox.drain()
                return bool((await client.batch(submitted.batch.id))["done"])

            await wait_until(finished, "the worker to finish the interrupted enqueue's batch")
            status = await client.batch(submitted.batch.id)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert status["by_status"] == {"delivered": 4}
    assert (await stack.worker_app.store.get_batch(submitted.batch.id)).enqueued_at is not None
    assert len(stack.simulator.messages) == 4


async def test_the_reconcilers_pass_trues_a_queue_depth_that_missed_a_sync(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(4)))
        await stack.app[STATE].require_producer().drain()
    jobs, redis = stack.worker_app.jobs, stack.worker_app.redis
    assert (await jobs.depth())["bulk"] == Depth(4, 0)
    # arq ran the chunk and dropped it; the worker was killed before it synced the depth ledger
    chunk = f"{accepted['id']}.0"
    assert await redis.zrem(BULK_QUEUE, chunk) == 1
    await redis.delete(JOB_KEY_PREFIX + chunk)
    assert (await jobs.depth())["bulk"] == Depth(4, 0)
    counts = await reconcile_once(stack.worker_app)
    assert (await jobs.depth())["bulk"] == Depth(0, 0)
    assert counts["depth_corrected"] == 1


async def test_429s_lower_the_accounts_in_flight_cap(stack: LocalStack) -> None:
    stack.simulator.config.rate_429 = 1.0  # Twilio: too many concurrent requests, every time
    sid = stack.settings.twilio.accounts["main"].account_sid
    before = (await stack.worker_app.pacer.admin.snapshot())["accounts"][sid]["cap"]
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await client.submit(sms_batch(people(10)))
        await stack.app[STATE].require_producer().drain()
        worker = asyncio.create_task(NotifyqWorker(stack.worker_app).run(drain_s=1))
        try:
            await wait_until(lambda: stack.simulator.counters.http_429 >= 5, "five 429 answers")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    after = (await stack.worker_app.pacer.admin.snapshot())["accounts"][sid]["cap"]
    # halved (once per round trip of requests, however many 429s it brought): invariant 4's adaptive decrease
    assert after <= before / 2


def _in_flight(stack: LocalStack) -> int:
    """Requests the simulator has received and not answered yet (it answers after its latency)."""
    return stack.simulator.in_flight.get(ACCOUNT_SID, 0)


class _RestartableRedis:
    """A redis-server of this test's own, with an append-only file, that can be killed and started again."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(redis_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)  # noqa: S603, ASYNC220
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    if await client.ping():
                        return
                except (RedisError, OSError):
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not answer")
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def test_a_redis_restart_mid_batch_loses_nothing_and_the_worker_carries_on(
    tmp_path: Path, database_url: str, sim_config: SimulatorConfig
) -> None:
    redis = _RestartableRedis(free_port(), tmp_path / "redis")
    await redis.start()
    try:
        async with (
            local_stack(
                data_dir=tmp_path,
                redis_url=redis.url,
                database_url=database_url,
                sim_config=sim_config,
                run_worker=False,
                pacing={"senders": {"+15005550006": 20.0}},  # 60 messages: about 3 s
            ) as stack,
            Client(stack.api_url, token=API_TOKEN) as client,
        ):
            stack.simulator.config.latency_s = 0.3
            accepted = await client.submit(sms_batch(people(60)))
            await stack.app[STATE].require_producer().drain()  # the jobs are in Redis
            env = settings_env(stack.settings) | {"NOTIFYQ_WORKER__UNAVAILABLE_RETRY_S": "0.3"}
            # an in-progress key left by a cut-off job keeps it from running again until it expires
            expiry_s = stack.settings.worker.job_timeout_s + 10
            async with notifyq_process("worker", env=env) as worker:
                # Redis goes while a chunk job runs: its requests wait in the simulator for their answers
                await wait_until(
                    lambda: len(stack.simulator.messages) >= 10 and _in_flight(stack) > 0,
                    "ten messages and a request in flight",
                )
                redis.kill()
                # Redis stays away until the worker's lanes and the running chunk job have run into the outage
                await wait_until(
                    lambda: (
                        worker.said("Redis unavailable; the lane polls again")
                        and worker.said("store or Redis unavailable; job comes back later")
                    ),
                    "the lanes and the running job to meet the outage",
                )
                assert worker.proc.returncode is None, "the worker exited when Redis went away"
                back = time.time()
                await redis.start()  # the same port and the same data (append-only file)
                # at most the key's expiry; the bound is a safety net twice that, for a loaded machine
                await wait_until(lambda: len(stack.simulator.messages) >= 60, "all 60 messages", timeout_s=2 * expiry_s)
                took = time.time() - back
                assert worker.proc.returncode is None, worker.tail()
                code = await worker.stop()
            assert code == 0, worker.tail()
            status = await settle(stack, client, accepted["id"])
    finally:
        redis.kill()
    # the worker carried on with the batch once Redis was back (it went away in the middle of it), and the
    # chunk that was running then ran again at once, not after its in-progress key expired
    assert any(m.date_created.timestamp() >= back for m in stack.simulator.messages)
    assert took < expiry_s, took
    assert status["by_status"] == {"delivered": 60}
    assert sorted(set(stack.simulator.sends_by_callback().values())) == [1]
    assert len(stack.simulator.sends_by_callback()) == 60


async def test_sigterm_lets_the_sends_in_flight_finish_then_the_worker_exits_0(stack: LocalStack) -> None:
    stack.simulator.config.latency_s = 1.5
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(3)))
        await stack.app[STATE].require_producer().drain()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifyq", "worker", env=settings_env(stack.settings), stderr=asyncio.subprocess.PIPE
        )
        try:
            await wait_until(lambda: _in_flight(stack) == 3, "the three requests waiting for their answers")
            proc.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send
            _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, stderr.decode()[-2000:]
        # the answers came while the worker drained: each SID is recorded, none left to the look-up
        rows = await stack.worker_app.store.list_deliveries(accepted["id"])
        assert len(rows) == 3
        assert all(r.twilio_sid for r in rows)
        stack.simulator.config.latency_s = 0.0
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 3}
    assert sorted(stack.simulator.sends_by_callback().values()) == [1, 1, 1]


async def test_a_send_still_unanswered_at_the_stop_timeout_is_left_to_be_settled(stack: LocalStack) -> None:
    stack.simulator.config.latency_s = 6.0
    stack.simulator.config.callbacks = False  # nothing settles it behind the worker's back
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(people(1)))
        await stack.app[STATE].require_producer().drain()
        env = settings_env(stack.settings) | {"NOTIFYQ_WORKER__STOP_TIMEOUT_S": "0.5"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifyq", "worker", env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            await wait_until(lambda: _in_flight(stack) == 1, "the request in flight")
            asked = asyncio.get_running_loop().time()  # the request is in the simulator, held for latency_s
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 20)
            exited = asyncio.get_running_loop().time()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, stderr.decode()[-2000:]
        # it gave the send its stop timeout, then did not wait for the answer: it left before the request's
        # own duration was up
        assert exited - asked < stack.simulator.config.latency_s, exited - asked
        [row] = await stack.worker_app.store.list_deliveries(accepted["id"])
        assert row.status == "dispatching"  # claimed, sent, unanswered: for its callback or Twilio's list
        assert row.twilio_sid is None
        # the simulator drops a request whose client went away before the answer: no message was made
        assert stack.simulator.messages == []
        stack.simulator.config.latency_s = 0.0
        stack.simulator.config.callbacks = True
        status = await settle(stack, client, accepted["id"], timeout_s=30)
    # not in Twilio's list after the grace period, so sent once more: one message in all, delivered
    assert status["by_status"] == {"delivered": 1}
    assert list(stack.simulator.sends_by_callback().values()) == [1]
    events = await stack.worker_app.store.events(row.id)
    assert any("not found in Twilio's list" in (e["reason"] or "") for e in events)
