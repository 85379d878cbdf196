"""Alembic environment: runs migrations on the engine the caller hands in."""

from alembic import context

from points_service.adapters.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
