"""replays

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-07 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ran_by", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "delivery_replays",
        sa.Column("delivery_id", sa.String(length=26), nullable=False),
        sa.Column("original_id", sa.String(length=26), nullable=False),
        sa.Column("replay_id", sa.String(length=26), nullable=False),
        sa.Column("round", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"]),
        sa.ForeignKeyConstraint(["original_id"], ["deliveries.id"]),
        sa.ForeignKeyConstraint(["replay_id"], ["replays.id"]),
        sa.PrimaryKeyConstraint("delivery_id"),
        sa.UniqueConstraint("original_id", "round", name="uq_delivery_replays_original_round"),
    )
    op.create_index("ix_delivery_replays_replay_id", "delivery_replays", ["replay_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_replays_replay_id", table_name="delivery_replays")
    op.drop_table("delivery_replays")
    op.drop_table("replays")
