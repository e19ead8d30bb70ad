"""Tables. Times are UTC epoch seconds (float): portable across SQLite and PostgreSQL, cheap to write."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BIGSERIAL on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite
EventId = BigInteger().with_variant(Integer(), "sqlite")

batches = Table(
    "batches",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("idempotency_key", String(200), unique=True),
    Column("channel", String(8), nullable=False),
    Column("account", String(64), nullable=False),
    Column("account_sid", String(34), nullable=False),
    Column("sender", String(64)),
    Column("messaging_service_sid", String(34)),
    Column("priority", String(8), nullable=False),
    Column("content", JSON, nullable=False),  # body template, media, call parameters: stored once per batch
    Column("send_at", Float),
    Column("valid_until", Float, nullable=False),
    Column("total", Integer, nullable=False),
    Column("duplicates_dropped", Integer, nullable=False, server_default="0"),
    Column("meta", JSON),
    Column("canceled_at", Float),
    Column("enqueued_at", Float),  # every job of the batch is in Redis
    Column("request_hash", String(64)),  # sha256 of the canonical request, when it had an idempotency key
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("batch_id", String(26), ForeignKey("batches.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("channel", String(8), nullable=False),
    Column("to_number", String(32), nullable=False),
    Column("variables", JSON),
    Column("status", String(24), nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("call_seq", Integer),
    Column("twilio_sid", String(34), unique=True),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("segments", SmallInteger),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("dispatched_at", Float),  # start of the latest create attempt
    Column("final_at", Float),
    Column("valid_until", Float, nullable=False),
    Index("ix_deliveries_batch_status", "batch_id", "status"),
    Index("ix_deliveries_status_rank_updated", "status_rank", "updated_at"),
)

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(26), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # attempt | callback | reconcile | lookup | state
    Column("status", String(24)),
    Column("error_code", Integer),
    Column("http_status", SmallInteger),
    Column("duration_ms", Float),
    Column("applied", Boolean),
    Column("reason", Text),
    Column("data", JSON),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("account_sid", String(34), primary_key=True),
    Column("number", String(32), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("source", String(32), nullable=False),  # STOP keyword, error 21610, operator
    Column("sender", String(64)),
)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("account_sid", String(34), nullable=False),
    Column("message_sid", String(34)),
    Column("from_number", String(32), nullable=False),
    Column("to_number", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("action", String(16), nullable=False),  # opt_out | opt_in | help | none
)

replays = Table(
    "replays",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("ran_by", String(200), nullable=False),  # "cli:<user>", or "api:<operator>" with the token's name and id
    Column("filter", JSON, nullable=False),  # the filter as understood, with `again`
    Column("matched", Integer, nullable=False),
    Column("skipped", JSON, nullable=False),  # reason -> count
    Column("finished_at", Float),  # every new batch is stored; unset while it runs or when it stopped half-way
)

# one row per delivery a replay created: the link to the delivery it sends again
delivery_replays = Table(
    "delivery_replays",
    metadata,
    Column("delivery_id", String(26), ForeignKey("deliveries.id"), primary_key=True),
    Column("original_id", String(26), ForeignKey("deliveries.id"), nullable=False),
    Column("replay_id", String(26), ForeignKey("replays.id"), nullable=False, index=True),
    # how many replays of the original came before: two replays racing for one original cannot both commit
    Column("round", SmallInteger, nullable=False),
    UniqueConstraint("original_id", "round", name="uq_delivery_replays_original_round"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # auth_token | api_key | connect
    Column("account_sid", String(34), nullable=False, unique=True),
    Column("api_key_sid", String(34)),
    Column("secrets", Text),  # a Fernet token (accounts/sealing.py); none for a Connect account
    Column("max_in_flight", Integer, nullable=False),
    Column("calls_per_second", Float, nullable=False),
    Column("connect_state", String(200)),  # the state Twilio handed back with the authorisation
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deauthorized_at", Float),  # the Connect grant was revoked: nothing is sent from it again
    Column("sender_groups", JSON),  # name -> {rate, senders}: senders sharing one rate (a 10DLC campaign)
)

# producer tokens: the SHA-256 of each secret, never the token (notifyq.tokens)
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),  # a list of scope names
    Column("accounts", JSON),  # a list of account names; NULL: every account
    Column("rate", Float),  # requests a second; NULL: no rate limit
    Column("burst", Integer),
    Column("daily_quota", BigInteger),  # recipients a UTC day
    Column("monthly_quota", BigInteger),  # recipients a UTC month
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)
