"""Anti-abuse flags with their evidence; events found by when they were received.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "abuse_flags",
        sa.Column(
            "flag_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("note", sa.String(512)),
    )
    op.create_index("ix_abuse_flags_informant", "abuse_flags", ["informant_id", "kind", "subject"])
    op.create_index("ix_abuse_flags_status", "abuse_flags", ["status", "flag_id"])
    op.create_index("ix_events_received", "events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_events_received", "events")
    op.drop_table("abuse_flags")
