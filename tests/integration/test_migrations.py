"""The migrations and tables.py describe the same schema: after `upgrade head`, Alembic's
comparison with the tables finds nothing to add, drop or change (SQLite and PostgreSQL)."""

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from points_service.adapters.sql.engine import create_engine, database_url, downgrade, migrate
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


async def test_credits_leave_the_kind_ref_index_and_the_rest_stay_unique(
    isolated_settings: Settings,
) -> None:
    """0007 on a ledger that has entries: they are all kept, with the informant index;
    two credits of one reference now fit (the events key keeps a credit one per event),
    a second redemption of one reference still does not, and the downgrade restores the
    old constraint."""
    engine = create_engine(database_url(isolated_settings.database_url, isolated_settings.data_dir))
    row = (
        "INSERT INTO ledger_entries (informant_id, kind, ref_id, points, created_at)"
        " VALUES (:informant, :kind, :ref, :points, CURRENT_TIMESTAMP)"
    )

    async def insert(kind: str, ref: str, points: int = 1) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text(row), {"informant": "i1", "kind": kind, "ref": ref, "points": points}
            )

    try:
        await migrate(engine, "0006")
        await insert("credit", "e1")
        await insert("redemption", "r1", -1)
        await insert("level", "i1:2", 0)
        with pytest.raises(IntegrityError):
            await insert("credit", "e1")
        await migrate(engine)
        async with engine.connect() as conn:
            kept = (await conn.execute(text("SELECT kind, ref_id FROM ledger_entries"))).all()
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in inspect(c).get_indexes("ledger_entries")}
            )
        assert sorted(map(tuple, kept)) == [
            ("credit", "e1"),
            ("level", "i1:2"),
            ("redemption", "r1"),
        ]
        assert {"ix_ledger_informant_id", "uq_ledger_kind_ref"} <= indexes
        await insert("credit", "e1")
        for kind, ref in (("redemption", "r1"), ("level", "i1:2")):
            with pytest.raises(IntegrityError):
                await insert(kind, ref)
        # Down again the credits must be unique once more, so the extra one goes first.
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM ledger_entries WHERE id = (SELECT max(id) FROM ledger_entries)")
            )
        await downgrade(engine, "0006")
        with pytest.raises(IntegrityError):
            await insert("credit", "e1")
    finally:
        await engine.dispose()
