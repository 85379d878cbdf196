"""Per-informant daily rollups, kept as events land: what reports, nominations and
leaderboard rebuilds aggregate instead of the event log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "informant_days",
        sa.Column("informant_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        # Where the events counted ('' for none: part of the key, so never NULL).
        sa.Column("province", sa.String(6), nullable=False),
        sa.Column("city", sa.String(6), nullable=False),
        sa.Column("county", sa.String(6), nullable=False),
        sa.Column("institution_id", sa.String(64), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("shares", sa.Integer, nullable=False),
        sa.Column("share_views", sa.Integer, nullable=False),
        sa.Column("posts", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "informant_id", "day", "province", "city", "county", "institution_id"
        ),
    )
    op.create_index("ix_informant_days_day", "informant_days", ["day"])
    # Events already recorded: on time and not reversed.
    op.execute(
        """
        INSERT INTO informant_days (informant_id, day, province, city, county,
                                    institution_id, events, points, shares, share_views,
                                    posts)
        SELECT informant_id, day, coalesce(province, ''), coalesce(city, ''),
               coalesce(county, ''), coalesce(institution_id, ''), count(*), sum(points),
               sum(shares), sum(share_views), sum(posts)
        FROM events e
        WHERE NOT late AND NOT EXISTS (
            SELECT 1 FROM ledger_entries r WHERE r.kind = 'reversal' AND r.ref_id = e.event_id
        )
        GROUP BY informant_id, day, coalesce(province, ''), coalesce(city, ''),
                 coalesce(county, ''), coalesce(institution_id, '')
        """
    )


def downgrade() -> None:
    op.drop_index("ix_informant_days_day", "informant_days")
    op.drop_table("informant_days")
