"""One typed settings object for every notifyq process.

Read from the environment with the ``NOTIFYQ_`` prefix; nested groups use ``__``
(``NOTIFYQ_WORKER__MAX_JOBS=500``). Twilio accounts are a JSON object in
``NOTIFYQ_TWILIO__ACCOUNTS``. Only the composition roots (``create_app``,
``create_worker`` and the CLI) build a ``Settings``; nothing else reads the environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Self
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from notifyq.redact import mask_url
from notifyq.sentinel_url import SCHEME as SENTINEL_SCHEME
from notifyq.sentinel_url import SentinelUrl

AccountSid = Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
ApiKeySid = Annotated[str, Field(pattern=r"^SK[0-9a-fA-F]{32}$")]


class TwilioAccount(BaseModel):
    """Credentials and limits of one Twilio account we send from.

    Requests authenticate with the API key when one is set (Twilio's advice for production),
    else with the Auth Token. The Auth Token is always needed: Twilio signs callbacks with it.
    """

    # a validation error shows where and why, never the input: the input holds the secrets
    model_config = ConfigDict(hide_input_in_errors=True)

    account_sid: AccountSid
    auth_token: SecretStr
    api_key_sid: ApiKeySid | None = None
    api_key_secret: SecretStr | None = None
    max_in_flight: int = Field(default=50, ge=1, description="REST requests in flight at once")
    calls_per_second: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _key_pair(self) -> Self:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        return self

    def basic_auth(self) -> tuple[str, str]:
        """The (username, password) pair for HTTP Basic auth."""
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret.get_secret_value()
        return self.account_sid, self.auth_token.get_secret_value()


class ConnectSettings(BaseModel):
    """Twilio Connect: our Connect App, whose owner's credentials reach the accounts customers authorise."""

    owner_account: str | None = Field(
        default=None, description="the configured account (by name) that owns our Connect App"
    )
    connect_app_sid: str | None = Field(
        default=None, pattern=r"^CN[0-9a-fA-F]{32}$", description="our Connect App; other apps' callbacks are refused"
    )
    redirect_page: str | None = Field(
        default=None, description="where the Authorize URL sends the customer's browser next (with result=...)"
    )
    deauthorize_method: str = Field(
        default="POST", pattern="^(GET|POST)$", description="the Connect App's DeauthorizeCallbackMethod"
    )


class TwilioSettings(BaseModel):
    """Where and how we talk to Twilio."""

    model_config = ConfigDict(hide_input_in_errors=True)  # its accounts hold secrets

    base_url: str = "https://api.twilio.com"
    accounts: dict[str, TwilioAccount] = Field(default_factory=dict)
    default_account: str | None = None
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 15.0
    connector_requests_per_minute: float = Field(
        default=120.0, gt=0, description="per account: the `notifyq twilio` commands' REST requests, retries included"
    )
    connector_burst: int = Field(
        default=10, ge=1, description="... of which an idle account may make this many at once"
    )
    application_name: str = Field(
        default="notifyq",
        min_length=1,
        max_length=64,
        description="the TwiML Application `notifyq twilio provision` keeps",
    )
    connect: ConnectSettings = Field(default_factory=ConnectSettings)
    accounts_refresh_s: float = Field(
        default=5.0, gt=0, description="how long a process trusts what it read of the account registry"
    )

    def account(self, name: str | None) -> TwilioAccount:
        """The account called ``name``, or the default one."""
        key = name or self.default_account or next(iter(self.accounts), None)
        if key is None or key not in self.accounts:
            raise KeyError(name or "<default>")
        return self.accounts[key]

    def account_by_sid(self, account_sid: str) -> tuple[str, TwilioAccount] | None:
        """The configured account whose SID is ``account_sid``."""
        for name, acct in self.accounts.items():
            if acct.account_sid == account_sid:
                return name, acct
        return None


class ApiSettings(BaseModel):
    """The producer API and the callback receiver."""

    model_config = ConfigDict(hide_input_in_errors=True)  # its tokens are secrets

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: list[SecretStr] = Field(
        default_factory=list, description="plain bearer tokens with every scope (the registry's: notifyq tokens)"
    )
    operator_tokens: list[SecretStr] = Field(
        default_factory=list, description="plain bearer tokens for operators: accounts, the ops pages, reading"
    )
    session_key: SecretStr | None = Field(
        default=None, description="signs the ops pages' session cookies; the same on every API replica"
    )
    max_recipients: int = 1_000_000
    max_body_bytes: int = 256 * 1024 * 1024
    callback_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="the largest body read on /twilio/* (Twilio's forms are a few KB); larger ones get 413 unread",
    )
    applier_stuck_s: float = Field(
        default=60.0, gt=0, description="/healthz fails once the API's callback applier has failed this long"
    )


class WorkerSettings(BaseModel):
    """arq tuning and the retry policy."""

    max_jobs: int = Field(
        default=500, ge=1, description="sends in flight at once per lane and process; latency must not cap sends"
    )
    urgent_max_jobs: int = Field(default=100, ge=1, description="the same, for the urgent lane")
    poll_delay_s: float = Field(default=0.02, gt=0, description="arq poll interval of an idle lane")
    job_timeout_s: float = 60.0
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    callback_grace_s: float = Field(default=30.0, ge=0, description="wait for a callback after an ambiguous send")
    default_validity_s: int = Field(default=36_000, ge=1, le=36_000)
    paused_recheck_s: float = Field(default=30.0, gt=0, description="how often a paused account's jobs look again")
    unavailable_retry_s: float = Field(
        default=5.0, gt=0, description="a job that found the database or Redis down comes back after this long"
    )
    stop_timeout_s: float = Field(
        default=20.0,
        ge=0,
        description="on SIGTERM, running sends get this long to be answered (keep it above request_timeout_s, "
        "and the orchestrator's grace period above it)",
    )
    metrics_port: int | None = Field(default=None, description="serve the worker's /metrics and /healthz on this port")
    metrics_host: str = Field(
        default="127.0.0.1", description="the address the worker's metrics server binds (0.0.0.0 in a container)"
    )


class ApplierSettings(BaseModel):
    """A callback applier of its own (``notifyq applier``): where it serves its /metrics and /healthz."""

    metrics_port: int | None = Field(default=None, description="serve the applier's /metrics and /healthz on this port")
    metrics_host: str = Field(
        default="127.0.0.1", description="the address the applier's metrics server binds (0.0.0.0 in a container)"
    )


GROUP_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SenderGroupSettings(BaseModel):
    """Senders that share one rate, as Twilio counts them: a 10DLC campaign's numbers share its MPS."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="segments per second for all the group's senders together")
    senders: list[str] = Field(min_length=1, description="the senders (From numbers) of the group")
    account: AccountSid | None = Field(default=None, description="the AccountSid it applies to; unset: every account")


def check_sender_groups(groups: dict[str, SenderGroupSettings], senders: dict[str, float]) -> None:
    """Refuse a group name that is no name, a sender in two groups, or a grouped sender with a rate of its own."""
    owner: dict[str, str] = {}
    for name, group in groups.items():
        if not GROUP_NAME.fullmatch(name):
            raise ValueError(f"sender group name {name!r}: letters, digits, '.', '_' or '-', at most 64")
        for sender in group.senders:
            if sender in owner and owner[sender] != name:
                raise ValueError(
                    f"sender {sender!r} is in two groups, {owner[sender]!r} and {name!r}: a sender keeps one rate"
                )
            owner[sender] = name
            if sender in senders:
                raise ValueError(
                    f"sender {sender!r} is in group {name!r} and has a rate of its own in pacing.senders: "
                    "a sender keeps one rate"
                )


class PacingSettings(BaseModel):
    """Default send rates; per-sender overrides by sender string; groups of senders sharing one rate."""

    long_code_mps: float = 1.0
    toll_free_mps: float = 3.0
    short_code_mps: float = 100.0
    alphanumeric_mps: float = 10.0
    messaging_service_mps: float = 225.0
    senders: dict[str, float] = Field(default_factory=dict, description="sender -> segments per second")
    groups: dict[str, SenderGroupSettings] = Field(
        default_factory=dict,
        description="group name -> {rate, senders, account}: senders paced together on one schedule",
    )
    arrival_jitter_s: float = Field(
        default=0.03,
        ge=0,
        le=0.5,
        description="the spread of the time from a send's grant to its arrival at Twilio; every second of a "
        "sender's schedule is widened by it, so that counted where the requests arrive no second holds too many",
    )

    @model_validator(mode="after")
    def _one_rate_per_sender(self) -> Self:
        check_sender_groups(self.groups, self.senders)
        return self


def _default_stale_after() -> dict[str, float]:
    # how long Twilio may hold each non-final status before we ask it (seconds)
    return {
        "queued": 600.0,
        "accepted": 600.0,
        "scheduled": 86_400.0,
        "sending": 600.0,
        "sent": 3_600.0,
        "initiated": 600.0,
        "ringing": 600.0,
        "in-progress": 4 * 3_600.0,
    }


class ReconcileSettings(BaseModel):
    """The reconciler: fetch deliveries whose callbacks never came; re-queue unanswered attempts left without a job."""

    interval_s: float = Field(default=30.0, gt=0)
    stale_after_s: dict[str, float] = Field(default_factory=_default_stale_after)
    requests_per_minute: float = Field(
        default=60.0,
        gt=0,
        description="per account, on average; a pass may spend what the account saved up since the last one "
        "(at most one pass's share, and never more than a minute's)",
    )
    max_per_run: int = Field(default=500, ge=1, description="deliveries looked at per account and pass")
    unanswered_after_s: float = Field(
        default=600.0,
        gt=0,
        description="a delivery left dispatching without a SID, unchanged this long and without a job, is queued "
        "again (its job looks in Twilio's list before anything is sent again)",
    )
    interrupted_after_s: float = Field(
        default=300.0,
        gt=0,
        description="a batch not marked enqueued this long after it was created had its enqueue interrupted: "
        "its deliveries without a job are queued (keep it above the time the largest batch takes to submit)",
    )


class ReplaySettings(BaseModel):
    """``notifyq replay`` and ``POST /v1/replays``."""

    confirm_above: int = Field(
        default=100,
        ge=0,
        description='a replay sending to more recipients than this needs --yes (the API: "confirm": true)',
    )
    sample: int = Field(default=5, ge=0, le=50, description="recipients shown (masked) in a replay's answer")


Price = Annotated[Decimal, Field(ge=0, max_digits=12)]
_PRICE_KEY: Final = re.compile(r"[A-Z]{2}|default")


class PricingSettings(BaseModel):
    """Prices a preview quotes (``notifyq preview``, ``POST /v1/batches?dry_run=true``), by ISO 3166 country.

    Each table maps a country code (``US``, ``GB``) or ``default`` (every other country) to a price;
    a recipient whose country has neither is shown unpriced. JSON, e.g.
    ``NOTIFYQ_PRICING__SMS='{"US": "0.0083", "default": "0.05"}'``.
    """

    currency: str = Field(default="USD", pattern="^[A-Z]{3}$", description="the currency of every price")
    sms: dict[str, Price] = Field(default_factory=dict, description="country -> price per SMS segment")
    mms: dict[str, Price] = Field(default_factory=dict, description="country -> price per MMS message")
    call: dict[str, Price] = Field(default_factory=dict, description="country -> price per call")

    @field_validator("sms", "mms", "call")
    @classmethod
    def _countries(cls, table: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [key for key in table if not _PRICE_KEY.fullmatch(key)]
        if bad:
            raise ValueError(f"keys are ISO 3166 country codes (US, GB) or default, not {', '.join(map(repr, bad))}")
        return table


class DatabaseSettings(BaseModel):
    """PostgreSQL's connections per process (SQLite ignores them)."""

    pool_size: int = Field(default=10, ge=1, description="connections each process keeps open")
    max_overflow: int = Field(default=10, ge=0, description="more connections a process opens under load")
    pool_timeout_s: float = Field(
        default=30.0, gt=0, description="a query waits this long for a free connection, then fails (and is retried)"
    )


class RetentionSettings(BaseModel):
    """How long finished work stays in the store (``notifyq purge``)."""

    days: float | None = Field(
        default=None,
        gt=0,
        description="`notifyq purge` deletes final deliveries, their events and finished batches older than this; "
        "unset: purge needs --older-than",
    )
    chunk_rows: int = Field(
        default=1000, ge=1, le=10_000, description="deliveries deleted per transaction: short locks, a bounded WAL"
    )


REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)
# the URL forms accepted for NOTIFYQ_DATABASE_URL, and the async driver each one means
_ASYNC_SCHEMES: Final = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
}
# libpq's sslmode (what platforms put in their URLs) is asyncpg's ssl, with the same values
_LIBPQ_TO_ASYNCPG: Final = {"sslmode": "ssl"}


def async_database_url(url: str) -> str:
    """``url`` with the driver notifyq runs on: asyncpg for PostgreSQL, aiosqlite for SQLite.

    Platforms hand out ``postgres://`` or ``postgresql://`` URLs (SQLAlchemy would pick psycopg for
    those, which notifyq does not install); both mean asyncpg here, and libpq's ``sslmode`` becomes
    asyncpg's ``ssl``. Any other driver is refused with the forms that work.
    """
    scheme, sep, rest = url.partition("://")
    driver = _ASYNC_SCHEMES.get(scheme.lower())
    if not sep or driver is None:
        raise ValueError(
            "a database URL starts with postgresql:// (or postgres://, postgresql+asyncpg://) "
            "or sqlite:/// (or sqlite+aiosqlite:///)"
        )
    if driver == "postgresql+asyncpg" and "sslmode=" in rest:
        where, _, query = rest.partition("?")
        params = [(_LIBPQ_TO_ASYNCPG.get(k, k), v) for k, v in parse_qsl(query, keep_blank_values=True)]
        rest = f"{where}?{urlencode(params)}"
    return f"{driver}://{rest}"


class Settings(BaseSettings):
    """Everything a notifyq process needs to know."""

    # hide_input_in_errors: a settings error names the field and the reason; its input may be a secret
    model_config = SettingsConfigDict(
        env_prefix="NOTIFYQ_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    redis_url: str | None = Field(
        default=None, description="unset: the embedded redis-server `notifyq api` runs for data_dir"
    )
    database_url: str | None = Field(
        default=None,
        description="unset: a SQLite file in data_dir; postgresql://, postgres:// and sqlite:// get async drivers",
    )
    data_dir: Path = Field(default=Path(".notifyq"), description="made absolute: every process sees the same one")
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="the base URL under which Twilio reaches our callbacks; signatures are checked against it",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="the Fernet key the account registry's secrets are encrypted with; unset: one kept in "
        "data_dir/secret.key",
    )
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = "info"
    api: ApiSettings = Field(default_factory=ApiSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    applier: ApplierSettings = Field(default_factory=ApplierSettings)
    pacing: PacingSettings = Field(default_factory=PacingSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"a Redis URL starts with {', '.join(REDIS_SCHEMES)}")
        if url and url.startswith(SENTINEL_SCHEME):
            SentinelUrl.parse(url)  # its ValueError says what is wrong, without the password
        return url or None

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        return async_database_url(url) if url else None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # a relative directory would mean another place to a process with another working directory
        # (redis-server runs in its own, and a worker started elsewhere would open another database)
        return path.absolute()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name in {"redis_url", "database_url"} and isinstance(value, str) else value

    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'notifyq.db'}"

    def warnings(self) -> list[str]:
        """Settings that are valid but unsafe together, each as a sentence for the worker's start-up log."""
        found = []
        longest = self.twilio.connect_timeout_s + self.twilio.request_timeout_s
        if self.worker.callback_grace_s < longest:
            found.append(
                f"worker.callback_grace_s ({self.worker.callback_grace_s:g} s) is shorter than the longest request "
                f"(twilio connect + request timeout, {longest:g} s): a create still in flight may be looked up, "
                "found missing and sent again"
            )
        return found

    def callback_url(self, kind: str, delivery_id: str) -> str:
        """The public URL Twilio calls for ``kind`` (``message`` or ``call``) status of a delivery."""
        return f"{self.public_base_url.rstrip('/')}/twilio/{kind}-status/{delivery_id}"
