"""What the simulator pretends to be: its accounts, and how slow, flaky and final it is.

``SimulatorConfig`` is a plain mutable dataclass on purpose: tests change rates between phases
(``sim.config.rate_429 = 0.3``) and other processes do the same through ``POST /_sim/config``,
which goes through ``ConfigPatch`` so that a bad value is refused whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

OUTCOMES = ("undelivered", "failed")
ACCOUNT_STATUSES = ("active", "suspended", "closed")
ACCOUNT_TYPES = ("Trial", "Full")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class SimAccount:
    """One simulated Twilio account: its Auth Token and API keys (SID -> secret), parent and state.

    ``status`` is Twilio's field and a fault knob at once: an account that is suspended or closed,
    or whose parent is, authenticates nobody and is reached by nobody (401, error 20003).
    """

    auth_token: str
    api_keys: dict[str, str] = field(default_factory=dict)
    # test credentials: From numbers other than +15005550006 are refused, and only Messages and
    # Calls create answer (api-facts section 7; Twilio's test-credentials page)
    test_credentials: bool = False
    owner_account_sid: str | None = None  # the parent of a subaccount; None for a main account
    friendly_name: str | None = None
    status: str = "active"
    account_type: str = "Full"
    date_created: datetime = field(default_factory=_now)
    date_updated: datetime = field(default_factory=_now)


@dataclass(slots=True)
class SimulatorConfig:
    """Accounts and fault rates. Rates are probabilities in [0, 1], drawn per request or per event."""

    accounts: dict[str, SimAccount] = field(default_factory=dict)
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    # record the message or call, then close the connection without answering (an ambiguous send)
    drop_after_create_rate: float = 0.0
    # the same for every create to these numbers, so a test can lose the answers of chosen recipients
    drop_after_create_to: list[str] = field(default_factory=list)
    # creates to these numbers are read, then the connection closes before anything is recorded: a request
    # Twilio never acted on, so no answer comes and Twilio's list shows nothing
    drop_before_create_to: list[str] = field(default_factory=list)
    # a created message or call is answered this long after it is recorded: it exists while its 201 is on its way
    answer_delay_s: float = 0.0
    max_concurrency_per_account: int | None = None
    callbacks: bool = True
    # messages and calls to these numbers send no status callbacks (as if each one were lost)
    no_callbacks_to: list[str] = field(default_factory=list)
    callback_delay_s: float = 0.05
    callback_duplicate_rate: float = 0.0
    callback_reorder_rate: float = 0.0
    callback_drop_rate: float = 0.0  # a status callback is never sent (lost on its way)
    # the next this many list requests (GET Messages.json or Calls.json) are answered 500, then the count is 0
    list_failures: int = 0
    outcome_rates: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0.0))
    # a create with a MessagingServiceSid and no SmartEncoded is smart-encoded, as with Twilio's default for
    # a Messaging Service; False simulates services whose Smart Encoding setting is off
    service_smart_encoding: bool = True
    seed: int | None = None
    callback_workers: int = 32
    callback_timeout_s: float = 15.0
    callback_retry_delay_s: float = 0.1

    def __post_init__(self) -> None:
        check(self)

    def as_dict(self) -> dict[str, Any]:
        """The tunable part as JSON (accounts left out: they hold secrets)."""
        out = asdict(self)
        del out["accounts"]
        return out


def check(cfg: SimulatorConfig) -> None:
    """Raise ValueError when a rate or a count is out of range."""
    rates = {
        "rate_429": cfg.rate_429,
        "rate_5xx": cfg.rate_5xx,
        "drop_after_create_rate": cfg.drop_after_create_rate,
        "callback_duplicate_rate": cfg.callback_duplicate_rate,
        "callback_reorder_rate": cfg.callback_reorder_rate,
        "callback_drop_rate": cfg.callback_drop_rate,
    }
    rates.update({f"outcome_rates.{k}": v for k, v in cfg.outcome_rates.items()})
    bad = [name for name, value in rates.items() if not 0.0 <= value <= 1.0]
    if bad:
        raise ValueError(f"rates must be within [0, 1]: {', '.join(bad)}")
    unknown = set(cfg.outcome_rates) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"outcome_rates keys are {OUTCOMES}, not {sorted(unknown)}")
    if cfg.rate_429 + cfg.rate_5xx > 1.0:
        raise ValueError("rate_429 + rate_5xx must not exceed 1")
    if sum(cfg.outcome_rates.values()) > 1.0:
        raise ValueError("outcome_rates must not add up to more than 1")
    delays = (cfg.latency_s, cfg.latency_jitter_s, cfg.answer_delay_s, cfg.callback_delay_s, cfg.callback_retry_delay_s)
    if min(delays) < 0:
        raise ValueError("delays must not be negative")
    if cfg.max_concurrency_per_account is not None and cfg.max_concurrency_per_account < 1:
        raise ValueError("max_concurrency_per_account must be at least 1 (or None)")
    if cfg.list_failures < 0:
        raise ValueError("list_failures must not be negative")
    if cfg.callback_workers < 1 or cfg.callback_timeout_s <= 0:
        raise ValueError("callback_workers must be >= 1 and callback_timeout_s > 0")
    for sid, account in cfg.accounts.items():
        check_account(sid, account, cfg.accounts)


def check_account(sid: str, account: SimAccount, accounts: dict[str, SimAccount]) -> None:
    """Raise ValueError when an account's status or type is not Twilio's, or its parent is not an account."""
    if account.status not in ACCOUNT_STATUSES:
        raise ValueError(f"account {sid}: status is one of {ACCOUNT_STATUSES}, not {account.status!r}")
    if account.account_type not in ACCOUNT_TYPES:
        raise ValueError(f"account {sid}: account_type is one of {ACCOUNT_TYPES}, not {account.account_type!r}")
    owner = account.owner_account_sid
    if owner is not None and (owner == sid or owner not in accounts):
        raise ValueError(f"account {sid}: owner_account_sid {owner} is not another account")


Rate = Field(default=None, ge=0.0, le=1.0)
Seconds = Field(default=None, ge=0.0)


class ConfigPatch(BaseModel):
    """The body of ``POST /_sim/config``: any subset of the tunable fields."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float | None = Seconds
    latency_jitter_s: float | None = Seconds
    rate_429: float | None = Rate
    rate_5xx: float | None = Rate
    drop_after_create_rate: float | None = Rate
    drop_after_create_to: list[str] | None = None
    drop_before_create_to: list[str] | None = None
    answer_delay_s: float | None = Seconds
    max_concurrency_per_account: int | None = Field(default=None, ge=0, description="0 removes the cap")
    callbacks: bool | None = None
    no_callbacks_to: list[str] | None = None
    callback_delay_s: float | None = Seconds
    callback_duplicate_rate: float | None = Rate
    callback_reorder_rate: float | None = Rate
    callback_drop_rate: float | None = Rate
    list_failures: int | None = Field(default=None, ge=0)
    outcome_rates: dict[str, float] | None = None
    service_smart_encoding: bool | None = None


def apply_patch(cfg: SimulatorConfig, patch: dict[str, Any]) -> None:
    """Apply a JSON patch to ``cfg`` in place, or raise ValueError and change nothing."""
    try:
        parsed = ConfigPatch.model_validate(patch)
    except ValidationError as exc:
        raise ValueError(str(exc)) from exc
    changes = parsed.model_dump(exclude_unset=True)
    if changes.get("max_concurrency_per_account") == 0:
        changes["max_concurrency_per_account"] = None
    for name in ("drop_after_create_to", "drop_before_create_to", "no_callbacks_to"):
        if name in changes and changes[name] is None:  # null clears the list
            changes[name] = []
    if "outcome_rates" in changes:
        changes["outcome_rates"] = {**cfg.outcome_rates, **(changes["outcome_rates"] or {})}
    trial = SimulatorConfig(**{**asdict(cfg), "accounts": cfg.accounts, **changes})  # checks everything
    for name in changes:
        setattr(cfg, name, getattr(trial, name))
