"""Operating the pacer: pause and resume an account, override a sender's rate, look at the state.

These write or read the keys the scripts use (``keys.py``); the scripts see a change at their next call.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from notifyq.pacing.keys import INDEX_KEY, RATES_KEY, account_key, account_name, state_key
from notifyq.pacing.senders import AccountLimits, account_limits

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from notifyq.settings import Settings

_US = 1_000_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PacingAdmin:
    """Pauses, rate overrides and the snapshot of every schedule and account; one per process is enough."""

    def __init__(
        self, redis: Redis, settings: Settings, *, limits: Callable[[str], AccountLimits] | None = None
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.limits = limits or partial(account_limits, settings)

    async def set_sender_rate(self, sender: str, mps: float) -> None:
        """Override a sender's segments per second for every worker (beats ``settings.pacing.senders``)."""
        if not mps > 0:
            raise ValueError("a sender rate is positive")
        await self.redis.hset(RATES_KEY, sender, repr(float(mps)))  # type: ignore[misc]

    async def clear_sender_rate(self, sender: str) -> None:
        """Drop an operator override; the configured rate applies again."""
        await self.redis.hdel(RATES_KEY, sender)  # type: ignore[misc]

    async def pause_account(self, account_sid: str, reason: str) -> None:
        """Stop every send from the account (20003, 30002) until ``resume_account``."""
        await self.redis.set(account_key(account_sid, "paused"), reason)

    async def resume_account(self, account_sid: str) -> None:
        """Lift a pause; waiting jobs go on at their next check."""
        await self.redis.delete(account_key(account_sid, "paused"))

    async def paused(self, account_sid: str) -> str | None:
        """Why the account is paused, or None."""
        reason = await self.redis.get(account_key(account_sid, "paused"))
        return None if reason is None else _text(reason)

    async def snapshot(self) -> dict[str, Any]:
        """Caps, leases in flight and pauses per account; rate, jobs in line and backlog per sender."""
        sec, usec = await self.redis.time()
        now_us = int(sec) * _US + int(usec)
        names = sorted(_text(n) for n in await self.redis.smembers(INDEX_KEY))  # type: ignore[misc]
        names += [account_name(a.account_sid) for a in self.settings.twilio.accounts.values()]
        accounts: dict[str, Any] = {}
        schedules: dict[str, Any] = {}
        for name in dict.fromkeys(names):
            kind, _, ident = name.partition(":")
            key = state_key(name)
            if kind == "acct":
                cap, lat = await self.redis.hmget(key, ["cap", "lat"])  # type: ignore[misc]
                max_in_flight = self.limits(ident).max_in_flight
                accounts[ident] = {
                    "cap": float(_text(cap)) if cap is not None else float(max_in_flight),
                    "max_in_flight": max_in_flight,
                    "in_flight": await self.redis.zcount(state_key(name, "leases"), now_us, "+inf"),
                    "latency_s": int(_text(lat)) / _US if lat is not None else None,
                    "paused": await self.paused(ident),
                }
            else:
                last, rate, interval = await self.redis.hmget(key, ["last", "rate", "iv"])  # type: ignore[misc]
                if rate is None:
                    await self.redis.srem(INDEX_KEY, name)  # type: ignore[misc]
                    continue
                waiting = await self.redis.zcard(state_key(name, "line"))
                booked = max(0, int(_text(last)) - now_us)
                schedules[name] = {
                    "rate": float(_text(rate)),
                    "waiting": waiting,
                    # slots booked ahead, plus the line of jobs waiting for one (a segment each)
                    "backlog_s": (booked + waiting * int(_text(interval or b"0"))) / _US,
                }
        return {"accounts": accounts, "schedules": schedules}
