"""The cluster's throughput series: every worker adds into the same per-second buckets, any reader sums them."""

from __future__ import annotations

from redis.asyncio import Redis

from notifyq.queue.throughput import KEEP_S, ThroughputRecorder, bucket_key, read_series

T0 = 1_800_000_000


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


async def test_two_workers_add_into_one_series(rdb: Redis) -> None:
    clock = Clock(T0 + 0.5)
    one, two = ThroughputRecorder(rdb, clock=clock), ThroughputRecorder(rdb, clock=clock)
    one.record(accepted=True, seconds=0.1)
    two.record(accepted=True, seconds=0.3)
    two.record(accepted=False, seconds=0.2)
    two.record(accepted=False, seconds=None)  # never reached Twilio: no latency, not counted
    clock.at = T0 + 6.2
    one.record(accepted=True, seconds=0.4)
    await one.flush()
    await two.flush()
    await two.flush()  # nothing left: adds nothing

    points = await read_series(rdb, window_s=10, step_s=5, now=T0 + 10)
    assert [p.start for p in points] == [T0, T0 + 5]
    first, second = points
    assert (first.requests, first.accepted) == (3, 2)
    assert first.latency_ms == 200.0
    assert first.sends_per_s == 0.4
    assert (second.requests, second.accepted, second.latency_ms) == (1, 1, 400.0)
    assert 0 < await rdb.ttl(bucket_key(T0)) <= KEEP_S


async def test_an_idle_window_reads_as_zero_without_latency(rdb: Redis) -> None:
    points = await read_series(rdb, window_s=30, step_s=5, now=T0)
    assert len(points) == 6
    assert all(p.requests == 0 and p.sends_per_s == 0 and p.latency_ms is None for p in points)


async def test_the_current_second_is_left_out_until_it_is_over(rdb: Redis) -> None:
    recorder = ThroughputRecorder(rdb, clock=Clock(T0 + 9.5))
    recorder.record(accepted=True, seconds=0.1)
    await recorder.flush()
    assert sum(p.requests for p in await read_series(rdb, window_s=10, step_s=5, now=T0 + 9.9)) == 0
    assert sum(p.requests for p in await read_series(rdb, window_s=10, step_s=5, now=T0 + 10.0)) == 1


async def test_closing_flushes_what_is_left(rdb: Redis) -> None:
    recorder = ThroughputRecorder(rdb, clock=Clock(T0))
    recorder.start()
    recorder.record(accepted=True, seconds=0.05)
    await recorder.close()
    assert await rdb.hget(bucket_key(T0), "ok") == b"1"


async def test_counts_wait_for_a_redis_that_is_away_and_are_added_once_it_answers(rdb: Redis) -> None:
    clock = Clock(T0)
    lost = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens on port 1
    recorder = ThroughputRecorder(lost, clock=clock)
    recorder.record(accepted=True, seconds=0.1)
    await recorder.flush()  # refused: kept
    await lost.aclose()
    recorder._redis = rdb
    await recorder.flush()
    assert await rdb.hget(bucket_key(T0), "n") == b"1"
