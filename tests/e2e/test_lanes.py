"""Pacing, retries and priorities, end to end: lanes, fair sharing, cancel, expiry, send_at, enqueue twice.

Order is read from what the simulator recorded (one ``MessageRecord`` per accepted message, with its
``date_created``); outcomes from the batch's counts. Batches are told apart by their body.

Batch sizes are chosen so that the order is observable without sending everything: the order tests
run a worker only until the batch under test is done, then stop it (what is left is simply dropped
with the test's Redis and database).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from helpers import settle, wait_until
from notifyq import statuses as st
from notifyq.client import Client
from notifyq.queue.depth import Depth
from notifyq.queue.jobs import BULK_QUEUE, JobQueue, SendJob
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack
from notifyq.worker import NotifyqWorker

SENDER = "+15005550006"


def batch(body: str, n: int, *, area: str = "415", **extra: object) -> dict[str, object]:
    """An SMS batch of ``n`` distinct recipients whose body names it (last four digits clear of magic ones)."""
    assert n <= 3000
    return {
        "channel": "sms",
        "from": SENDER,
        "body": body,
        "recipients": [f"+1{area}555{i:04d}" for i in range(n)],
        **extra,
    }


async def submit(client: Client, payload: dict[str, object]) -> dict[str, Any]:
    """Submit a batch and wait until all its jobs are in Redis (the API queues them in the background)."""
    accepted = await client.submit(payload)

    async def enqueued() -> bool:
        return (await client.batch(accepted["id"]))["enqueued_at"] is not None

    await wait_until(enqueued, f"batch {payload['body']} to be enqueued")
    return accepted


async def until_paced(stack: LocalStack, body: str, *, total: int, rate: float, seconds: float) -> float:
    """Wait until the batch ``body`` is being paced on the sender with at least ``seconds`` of sends still
    owed at ``rate``; returns how many seconds it owes then."""
    seen = {"sent": 0}

    async def paced() -> bool:
        seen["sent"] = count(stack, body)
        schedule = (await stack.worker_app.pacer.admin.snapshot())["schedules"].get(f"snd:{SENDER}", {})
        # slots booked ahead, or jobs waiting in the sender's line for one
        return bool(seen["sent"]) and schedule.get("backlog_s", 0.0) > 0

    await wait_until(paced, f"the sender to pace {body}")
    owed = (total - seen["sent"]) / rate
    assert owed >= seconds, f"only {owed:.1f} s of {body} sends were left when pacing started"
    return owed


def bodies(stack: LocalStack) -> list[str]:
    """The body of every message the simulator created, in the order it created them."""
    return [m.body for m in sorted(stack.simulator.messages, key=lambda m: m.date_created)]


def count(stack: LocalStack, body: str) -> int:
    return sum(1 for m in stack.simulator.messages if m.body == body)


def created_at(stack: LocalStack, body: str) -> list[float]:
    return sorted(m.date_created.timestamp() for m in stack.simulator.messages if m.body == body)


def callback_ids(stack: LocalStack) -> list[str]:
    """The delivery id of every message the simulator created (its StatusCallback ends with it)."""
    return [(m.status_callback or "").rsplit("/", 1)[-1] for m in stack.simulator.messages]


def in_flight(stack: LocalStack) -> int:
    return stack.simulator.in_flight.get(ACCOUNT_SID, 0)


@contextlib.asynccontextmanager
async def running_worker(stack: LocalStack) -> AsyncIterator[NotifyqWorker]:
    """A long-running worker (both lanes), built from the stack's settings as they are now.

    On the way out it stops fetching jobs and waits until no job has run for a while (arq still starts
    the ids it fetched already) before it is cancelled: a worker cancelled while starting a job leaves
    that job's in-progress key behind, and the next worker would skip the job until the key expires.
    """
    worker = NotifyqWorker(stack.worker_app)
    task = asyncio.create_task(worker.run(drain_s=2.0))
    try:
        yield worker
    finally:
        for arq_worker in worker.workers:
            arq_worker.allow_pick_jobs = False
        deadline = time.monotonic() + 10
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.1 and time.monotonic() < deadline:
            if not all(t.done() for w in worker.workers for t in w.tasks.values()):
                quiet_since = time.monotonic()
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- 1. urgent never waits behind bulk ------------------------------------------------------------


async def bulk_backlog(client: Client, batches: int = 10, size: int = 200) -> None:
    """Several bulk batches: fair sharing alone would give a newcomer only 1/(batches + 1) of the lane."""
    for k in range(batches):
        await submit(client, batch(f"bulk-{k}", size))


def bulk_sent(stack: LocalStack) -> int:
    return sum(1 for m in stack.simulator.messages if m.body.startswith("bulk-"))


def position(order: list[str], body: str, nth: int) -> int:
    """Where the ``nth`` (1-based) message of the batch ``body`` is in ``order``; past the end if it was not sent."""
    seen = 0
    for i, b in enumerate(order):
        seen += b == body
        if seen == nth:
            return i
    return len(order)


async def urgent_and_peer(stack: LocalStack, client: Client, n: int = 10) -> None:
    """An urgent batch and a bulk batch of the same size (its peer), submitted together; wait until the
    urgent one and half the peer are sent."""
    await submit(client, batch("peer", n, area="313"))
    await submit(client, batch("urgent", n, area="212", priority="urgent"))
    await wait_until(lambda: count(stack, "urgent") == n and count(stack, "peer") >= n // 2, "urgent, half the peer")


async def test_urgent_batch_queued_behind_a_bulk_backlog_is_sent_first(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 10  # sends in flight per lane
    stack.settings.worker.urgent_max_jobs = 5
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client:
        await bulk_backlog(client)
        async with running_worker(stack):
            await urgent_and_peer(stack, client)
    order = bodies(stack)
    # the urgent lane has send slots of its own: the urgent batch is done before its bulk peer, queued
    # at the same moment behind the same backlog, is half sent. Had urgent jobs gone into the bulk lane,
    # fair sharing would give both the same share; first come, first served would put both behind 2,000
    assert position(order, "urgent", 10) < position(order, "peer", 5), order


async def test_urgent_batch_submitted_during_a_bulk_run_overtakes_the_bulk_backlog(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 10
    stack.settings.worker.urgent_max_jobs = 5
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client, running_worker(stack):
        await bulk_backlog(client)
        await wait_until(lambda: bulk_sent(stack) >= 100, "the bulk run under way")
        await urgent_and_peer(stack, client)
    order = bodies(stack)
    # the bulk lane kept sending meanwhile (it has its own send slots), but the urgent messages queued
    # neither behind the 1,900 bulk sends still waiting nor behind the bulk chunks the worker had started
    assert position(order, "urgent", 10) < position(order, "peer", 5), order


async def test_urgent_batch_is_not_paced_behind_bulk_reservations_on_the_same_sender(stack: LocalStack) -> None:
    # a sender slower than the worker: the bulk batch books ~6 s of this sender's slots at once
    await stack.worker_app.pacer.admin.set_sender_rate(SENDER, 50.0)
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client, running_worker(stack):
        bulk = await submit(client, batch("bulk", 300))
        await until_paced(stack, "bulk", total=300, rate=50.0, seconds=3.0)
        owed = 300 - count(stack, "bulk")
        submitted = time.time()
        await submit(client, batch("urgent", 3, area="212", priority="urgent"))
        await wait_until(lambda: count(stack, "urgent") == 3, "the urgent messages")
        urgent_done = created_at(stack, "urgent")[-1]
        bulk_meanwhile = sum(1 for t in created_at(stack, "bulk") if submitted < t <= urgent_done)
        await client.cancel(bulk["id"])
    # the sender's rate is a hard limit, but which message gets the next slot is ours to choose: the
    # three urgent messages take the next free slots after those bulk sends booked already (the pacer's
    # 0.5 s horizon), long before the bulk sends owed when they came (urgent places in the sender's
    # waiting line sort before every bulk one): before the median of those
    assert bulk_meanwhile < owed / 2, f"{bulk_meanwhile} of the {owed} owed bulk messages went before 3 urgent ones"


# ---- 2. fairness between bulk batches -------------------------------------------------------------


async def test_small_bulk_batch_enqueued_behind_a_large_one_shares_the_lane(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 10
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client:
        large = await submit(client, batch("large", 1500))
        await submit(client, batch("small", 100, area="212"))
        async with running_worker(stack):
            await wait_until(lambda: count(stack, "small") == 100, "the small batch")
        order = bodies(stack)
        await client.cancel(large["id"])
    # one-for-one from the lane's head: the small batch, queued behind the large one, is done before
    # the large one is half sent (first come, first served would send all 1,500 first)
    assert position(order, "small", 100) < position(order, "large", 1500 // 2), order.count("large")


async def large_sends_while_a_small_batch_goes(stack: LocalStack, *, started: int, small: int) -> tuple[int, int]:
    """A 1,500-recipient batch runs; once ``started`` of it are sent, ``small`` more recipients come in
    another batch. Returns how many of the large batch were still to send when the small one came, and
    how many of those were sent until the small one was all sent."""
    async with Client(stack.api_url, token=API_TOKEN) as client, running_worker(stack):
        large = await submit(client, batch("large", 1500))
        await wait_until(lambda: count(stack, "large") >= started, f"{started} large messages")
        await submit(client, batch("small", small, area="212"))
        before = count(stack, "large")
        await wait_until(lambda: count(stack, "small") == small, "the small batch")
        during = count(stack, "large") - before
        await client.cancel(large["id"])
    return 1500 - before, during


async def test_small_bulk_batch_submitted_mid_run_finishes_long_before_the_large_one(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 10
    stack.simulator.config.callbacks = False
    left, during = await large_sends_while_a_small_batch_goes(stack, started=100, small=100)
    # about one large send per small send, plus what the worker had fetched already: the small batch is
    # done before the median of the large messages queued before it
    assert during < left / 2, f"{during} of the {left} large messages queued before the small batch went first"


async def test_small_bulk_batch_shares_the_lane_with_default_worker_settings(stack: LocalStack) -> None:
    # the worker's defaults (500 sends in flight per lane). The account's in-flight cap is raised above
    # them: when the cap binds, its waits are first come, first served (docs/pacing.md, Limits)
    stack.settings.twilio.accounts["main"].max_in_flight = 1000
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client, running_worker(stack):
        large = await submit(client, batch("large", 2000))
        await wait_until(lambda: count(stack, "large") >= 10, "the large batch under way")
        await submit(client, batch("small", 20, area="212"))
        await wait_until(lambda: count(stack, "small") == 20, "the small batch")
        order = bodies(stack)
        await client.cancel(large["id"])
    # the small batch's chunk starts when one of the large batch's running chunks ends (they hold the
    # worker's arq slots) and its sends take turns with theirs. What the worker had booked, claimed or in
    # flight already (up to 500, a quarter of the batch) and a round or two of permits may go first, and
    # how many that is depends on the machine's load; what does not is that the small batch never
    # queues behind the large one: it is done before the large one is
    done = position(order, "small", 20)
    assert done < position(order, "large", 2000), "all 2,000 large messages went before the 20 small ones"


async def test_small_bulk_batch_is_not_paced_behind_a_large_one_on_the_same_sender(stack: LocalStack) -> None:
    await stack.worker_app.pacer.admin.set_sender_rate(SENDER, 50.0)
    stack.simulator.config.callbacks = False
    async with Client(stack.api_url, token=API_TOKEN) as client, running_worker(stack):
        large = await submit(client, batch("large", 300))
        await until_paced(stack, "large", total=300, rate=50.0, seconds=3.0)
        owed = 300 - count(stack, "large")
        submitted = time.time()
        await submit(client, batch("small", 10, area="212"))
        await wait_until(lambda: count(stack, "small") == 10, "the small batch")
        small_done = created_at(stack, "small")[-1]
        large_meanwhile = sum(1 for t in created_at(stack, "large") if submitted < t <= small_done)
        await client.cancel(large["id"])
    # the lane interleaves the batches one-for-one: the small batch's share of the sender is done long
    # before the large sends booked on the sender before it; before the median of those
    assert large_meanwhile < owed / 2, f"{large_meanwhile} of {owed} owed large messages went before 10 small ones"


# ---- 3. cancel ------------------------------------------------------------------------------------


async def test_cancel_while_pending_sends_nothing(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("doomed", 50))
        assert (await client.cancel(accepted["id"]))["canceled"] == 50
        assert (await client.cancel(accepted["id"]))["canceled"] == 0  # a second cancel changes nothing
        await stack.run_burst()
        status = await client.batch(accepted["id"])
    assert status["done"], status
    assert status["by_status"] == {st.CANCELED: 50}
    assert status["canceled_at"] is not None
    assert stack.simulator.counters.requests == 0
    assert await stack.worker_app.jobs.depth() == {"urgent": Depth(0, 0), "bulk": Depth(0, 0)}


async def test_cancel_with_sends_in_flight_lets_them_finish_and_cancels_the_rest(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 5
    stack.simulator.config.latency_s = 1.0  # long enough that the five are still in flight at the cancel
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("half", 40))
        async with running_worker(stack):
            await wait_until(lambda: in_flight(stack) == 5, "five sends in flight")
            canceled = (await client.cancel(accepted["id"]))["canceled"]
            dispatching = await client.deliveries(accepted["id"], status=st.DISPATCHING)
            await wait_until(lambda: in_flight(stack) == 0, "the sends in flight answered")
        status = await settle(stack, client, accepted["id"])
        delivered = await client.deliveries(accepted["id"], status="delivered")
    in_flight_ids = {d["id"] for d in dispatching["items"]}
    assert len(in_flight_ids) == 5
    assert canceled == 35
    assert status["done"], status
    assert status["by_status"] == {"delivered": 5, st.CANCELED: 35}
    assert sum(status["by_status"].values()) == status["total"] == 40
    # exactly the five in flight were sent, once each, and recorded as delivered
    assert sorted(callback_ids(stack)) == sorted(in_flight_ids)
    assert {d["id"] for d in delivered["items"]} == in_flight_ids


async def test_cancel_stops_the_retry_of_an_in_flight_send_that_failed(stack: LocalStack) -> None:
    stack.settings.worker.max_jobs = 5
    stack.simulator.config.latency_s = 1.0
    stack.simulator.config.rate_5xx = 1.0  # the requests in flight at the cancel will come back 503
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("retried", 20))
        async with running_worker(stack):
            await wait_until(lambda: in_flight(stack) == 5, "five sends in flight")
            canceled = (await client.cancel(accepted["id"]))["canceled"]
            await wait_until(lambda: in_flight(stack) == 0, "the sends in flight answered")
            stack.simulator.config.rate_5xx = 0.0  # Twilio answers normally again
            stack.simulator.config.latency_s = 0.0

            async def final() -> bool:  # the five failed sends' retries have run, and found the batch canceled
                return bool((await client.batch(accepted["id"]))["done"])

            await wait_until(final, "every delivery to be final")
        status = await settle(stack, client, accepted["id"])
    assert canceled == 15
    # no message existed when the batch was canceled: any message created afterwards is a new send
    # of a canceled batch, not an in-flight send finishing
    assert stack.simulator.messages == [], f"{len(stack.simulator.messages)} messages sent after the cancel"
    assert status["by_status"] == {st.CANCELED: 20}, status


# ---- 4. expiry ------------------------------------------------------------------------------------


async def test_batch_that_cannot_be_sent_within_its_validity_expires(stack: LocalStack) -> None:
    stack.settings.worker.max_attempts = 1000  # the deadline, not the attempt count, must end it
    stack.simulator.config.rate_5xx = 1.0
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("late", 10, validity_s=1))
        valid_until = accepted["valid_until"]
        status = await settle(stack, client, accepted["id"], timeout_s=10)
        assert time.time() >= valid_until
        assert status["done"], status
        assert status["by_status"] == {st.EXPIRED: 10}
        # each was tried (how often within its second depends on the machine), every refused request is
        # one of its attempts, and every request was made before the deadline (an attempt event ends
        # after its request)
        page = await client.deliveries(accepted["id"])
        tried = 0
        for item in page["items"]:
            assert item["status"] == st.EXPIRED
            delivery = await client.delivery(item["id"])
            attempts = [e for e in delivery["events"] if e["kind"] == "attempt"]
            assert attempts
            assert all(e["at"] - e["duration_ms"] / 1000 < valid_until for e in attempts), attempts
            tried += len(attempts)
        assert stack.simulator.counters.http_5xx == tried
        # Twilio is fine again, but the deadline has passed: nothing more is requested
        stack.simulator.config.rate_5xx = 0.0
        requests = stack.simulator.counters.requests
        await stack.run_burst()
        assert stack.simulator.counters.requests == requests
        assert (await client.batch(accepted["id"]))["by_status"] == {st.EXPIRED: 10}
    assert stack.simulator.messages == []


# ---- 5. send_at -----------------------------------------------------------------------------------


async def test_batch_with_send_at_is_sent_after_that_time_and_not_before(stack: LocalStack) -> None:
    submitted = time.time()
    send_at = submitted + 2.0
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(send_at)) + f".{int(send_at % 1 * 1e6):06d}+00:00"
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("later", 20, send_at=iso))
        assert abs(accepted["send_at"] - send_at) < 1e-3
        await stack.run_burst()  # runs until the lanes are empty: the jobs wait in them until send_at
        status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 20}
    times = created_at(stack, "later")
    assert len(times) == 20
    assert stack.simulator.counters.requests == 20  # every request made a message: none was refused early
    assert times[0] >= accepted["send_at"]  # not before send_at
    # and then promptly: the batch waited for send_at, not for as long again after it
    assert times[-1] - accepted["send_at"] < accepted["send_at"] - submitted


# ---- 6. enqueueing twice --------------------------------------------------------------------------


async def test_enqueueing_the_same_deliveries_again_makes_no_second_job_and_no_second_send(
    stack: LocalStack, redis_url: str
) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await submit(client, batch("once", 30))
        page = await client.deliveries(accepted["id"])
        jobs = [SendJob(item["id"], accepted["id"], 1, seq) for seq, item in enumerate(page["items"])]
        assert len(jobs) == 30
        redis = Redis.from_url(redis_url)
        try:
            queue = JobQueue(redis)
            scores = dict(await redis.zrange(BULK_QUEUE, 0, -1, withscores=True))
            assert list(scores) == [f"{accepted['id']}.0".encode()]  # one chunk job for the 30
            start = await queue.lane_start("bulk")
            assert await queue.enqueue_chunks("bulk", jobs, start_ms=start) == 0  # a retried enqueue
            assert dict(await redis.zrange(BULK_QUEUE, 0, -1, withscores=True)) == scores  # same job, same place
            asked = [(j.delivery_id, j.batch_id, j.seq) for j in jobs]
            assert await queue.has_job(asked) == [True] * 30  # requeue leaves them alone
            status = await settle(stack, client, accepted["id"])
            assert status["by_status"] == {"delivered": 30}
            # the jobs are done; queueing them again (a retried enqueue, a requeue, as chunks or one
            # by one) must not send again
            requests = stack.simulator.counters.requests
            await queue.enqueue_chunks("bulk", jobs, start_ms=await queue.lane_start("bulk"))
            assert await queue.enqueue("bulk", jobs, start_ms=await queue.lane_start("bulk"), first_seq=0) == 30
            await stack.run_burst()
            assert await redis.zcard(BULK_QUEUE) == 0
        finally:
            await redis.aclose()
    assert stack.simulator.counters.requests == requests
    assert sorted(callback_ids(stack)) == sorted(j.delivery_id for j in jobs)  # one message each


async def test_small_bulk_batch_shares_an_account_whose_in_flight_cap_binds(stack: LocalStack) -> None:
    # the sender's rate does not bind; the account's 20 requests in flight do (Twilio answers in 20 ms)
    stack.settings.twilio.accounts["main"].max_in_flight = 20  # cap, below
    stack.simulator.config.latency_s = 0.02
    stack.simulator.config.callbacks = False
    cap, small = 20, 20
    _, during = await large_sends_while_a_small_batch_goes(stack, started=50, small=small)
    # waits for the account's cap are in the sender's fair line too: the small batch takes turns with
    # the large one instead of queueing behind the ~1,400 large sends that were waiting for the cap.
    # Between its turns the small batch's chunk comes back through arq and the large batch fills the
    # account meanwhile, so each small send may wait for one account-full of large ones, not more
    # (first come, first served let 530-1,420 go first)
    assert during < small * cap, (
        f"{during} of the large batch's queued messages were sent before the {small} small ones"
    )
