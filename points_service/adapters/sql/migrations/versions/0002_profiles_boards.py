"""Informant profiles; where each event counted (its placement); closed boards.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # Where the informant belonged when the event was credited: the boards it counted on.
    # Existing events predate profiles and counted on the `all` boards only.
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("province", sa.String(6)))
        batch.add_column(sa.Column("city", sa.String(6)))
        batch.add_column(sa.Column("county", sa.String(6)))
        batch.add_column(sa.Column("institution_id", sa.String(64)))
    op.create_index("ix_events_day", "events", ["day"])
    op.create_table(
        "informants",
        sa.Column("informant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64)),
        sa.Column("province", sa.String(6)),
        sa.Column("city", sa.String(6)),
        sa.Column("county", sa.String(6)),
        sa.Column("unit_name", sa.String(128)),
        sa.Column("type", sa.String(16)),
        sa.Column("institution_id", sa.String(64)),
        sa.Column("certified", sa.Boolean, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_informants_institution", "informants", ["institution_id"])
    op.create_index("ix_informants_county", "informants", ["county"])
    # A period's final standings, written when it closes (its end plus the grace window).
    op.create_table(
        "closed_boards",
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("period", sa.String(24), primary_key=True),
        sa.Column("members", sa.Integer, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "board_standings",
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("period", sa.String(24), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("score", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("board_standings")
    op.drop_table("closed_boards")
    op.drop_index("ix_informants_county", "informants")
    op.drop_index("ix_informants_institution", "informants")
    op.drop_table("informants")
    op.drop_index("ix_events_day", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("institution_id")
        batch.drop_column("county")
        batch.drop_column("city")
        batch.drop_column("province")
