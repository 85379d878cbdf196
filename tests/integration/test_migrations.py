"""The migrations and tables.py describe the same schema: after `upgrade head`, Alembic's
comparison with the tables finds nothing to add, drop or change (SQLite and PostgreSQL)."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from points_service.adapters.sql.engine import create_engine, database_url, migrate
from points_service.adapters.sql.tables import metadata
from points_service.settings import Settings


async def test_the_migrations_build_the_tables_the_code_uses(isolated_settings: Settings) -> None:
    engine = create_engine(database_url(isolated_settings.database_url, isolated_settings.data_dir))
    try:

        def differences(conn: Any) -> list[Any]:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            found = compare_metadata(context, metadata)
            return [d for d in found if not (isinstance(d, tuple) and d[1] == "alembic_version")]

        # One revision short, the comparison sees what the last one adds (so it can fail).
        await migrate(engine, "0004")
        async with engine.connect() as conn:
            short = await conn.run_sync(differences)
        await migrate(engine)
        async with engine.connect() as conn:
            found = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert ("add_table", "abuse_flags") in {(d[0], d[1].name) for d in short if d[0] == "add_table"}
    assert found == [], found
