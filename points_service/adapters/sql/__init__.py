"""The SQL ledger: SQLAlchemy 2 Core tables, Alembic migrations, the group committer."""
