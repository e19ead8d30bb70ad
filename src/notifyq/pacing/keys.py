"""Where pacing keeps its state in Redis: every key starts with ``notifyq:pace:``.

A schedule (``snd:<sender>``, or ``cps:<account>`` for calls) and an account (``acct:<sid>``) each own a
family of keys under their name; one script call touches a sender's and an account's keys together,
which suits one Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "notifyq:pace"
INDEX_KEY: Final = f"{PREFIX}:index"  # the schedules and accounts seen, by name: the snapshot lists them
RATES_KEY: Final = f"{PREFIX}:rates"  # operators' rate overrides, by sender
WAKE_KEY: Final = f"{PREFIX}:wake"  # how late the worker pool comes back: one estimate for every schedule


def state_key(name: str, part: str = "") -> str:
    """The hash of a schedule or account (by its name in the index), or another of its keys."""
    return f"{PREFIX}:{name}:{part}" if part else f"{PREFIX}:{name}"


def schedule_key(name: str, part: str = "") -> str:
    """A schedule's hash, or one of its other keys (``slots``, ``open``, ``line``, ``due``, ``flows``)."""
    return state_key(name, part)


def account_name(account_sid: str) -> str:
    """An account's name in the index (``acct:<sid>``)."""
    return f"acct:{account_sid}"


def account_key(account_sid: str, part: str = "") -> str:
    """An account's hash, or one of its other keys (``leases``, ``paused``, ``held``)."""
    return state_key(account_name(account_sid), part)


def job_key(job_id: str) -> str:
    """Where a job's reservation or place in line is kept between its calls."""
    return f"{PREFIX}:job:{job_id}"
