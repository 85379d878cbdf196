"""The points lottery: draw seeds with their committed definitions, and draw outcomes.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "draw_seeds",
        sa.Column("draw", sa.String(64), primary_key=True),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("seed_sha256", sa.String(64), nullable=False),
        sa.Column("definition", sa.LargeBinary, nullable=False),
        sa.Column("definition_sha256", sa.String(64), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "draws",
        sa.Column("draw_id", sa.String(128), primary_key=True),
        sa.Column("draw", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("pick", sa.BigInteger, nullable=False),
        sa.Column("prize", sa.String(64), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("cost", sa.Integer, nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("body_hash", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("draw", "seq", name="uq_draws_draw_seq"),
    )


def downgrade() -> None:
    op.drop_table("draws")
    op.drop_table("draw_seeds")
