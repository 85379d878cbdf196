"""The ledger: events, ledger entries, balances.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("content_id", sa.String(128)),
        sa.Column("share_id", sa.String(128)),
        sa.Column("viewer_id", sa.String(128)),
        sa.Column("attributes", sa.JSON),
        sa.Column("body_hash", sa.String(32), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("shares", sa.Integer, nullable=False),
        sa.Column("share_views", sa.Integer, nullable=False),
        sa.Column("posts", sa.Integer, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("imported", sa.Boolean, nullable=False),
        sa.Column("rule_version", sa.String(16), nullable=False),
        sa.Column("decision", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_events_informant_day", "events", ["informant_id", "day"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.String(128), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("day", sa.Date),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_version", sa.String(16)),
        sa.Column("detail", sa.String(256)),
        sa.Column("body_hash", sa.String(32)),
        sa.UniqueConstraint("kind", "ref_id", name="uq_ledger_kind_ref"),
    )
    op.create_index("ix_ledger_informant_id", "ledger_entries", ["informant_id", "id"])
    op.create_table(
        "balances",
        sa.Column("informant_id", sa.String(64), primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("earned", sa.BigInteger, nullable=False),
        sa.Column("spent", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("balances")
    op.drop_table("ledger_entries")
    op.drop_table("events")
