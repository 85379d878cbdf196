"""Credits leave the unique index on (kind, ref_id): a credit is written only with its
event, in the same transaction, so the events primary key already makes it one per event.
The index stays unique for every other kind (reversals, redemptions, levels, draws).

On SQLite the table is rebuilt (a constraint written in CREATE TABLE cannot be dropped
otherwise): a copy of the ledger's entries, once.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_NOT_CREDIT = sa.text("kind <> 'credit'")


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint("uq_ledger_kind_ref", type_="unique")
    op.create_index(
        "uq_ledger_kind_ref",
        "ledger_entries",
        ["kind", "ref_id"],
        unique=True,
        sqlite_where=_NOT_CREDIT,
        postgresql_where=_NOT_CREDIT,
    )


def downgrade() -> None:
    op.drop_index("uq_ledger_kind_ref", "ledger_entries")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.create_unique_constraint("uq_ledger_kind_ref", ["kind", "ref_id"])
