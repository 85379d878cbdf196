"""Engines for SQLite (the embedded default) and PostgreSQL, and schema migration."""

import asyncio
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def database_url(url: str | None, data_dir: Path) -> str:
    """`DATABASE_URL` as given (postgresql:// is taken to mean asyncpg), or the SQLite file."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{data_dir / 'points.sqlite3'}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url.removeprefix(plain)
    return url


# PRAGMA takes no parameters: the statements are written out, never built from a value.
SYNCHRONOUS = {"NORMAL": "PRAGMA synchronous=NORMAL", "FULL": "PRAGMA synchronous=FULL"}


def create_engine(
    url: str, *, pool_size: int = 10, sqlite_synchronous: str = "NORMAL"
) -> AsyncEngine:
    if sqlite_synchronous not in SYNCHRONOUS:
        raise ValueError("sqlite_synchronous must be NORMAL or FULL")
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer. NORMAL: a commit survives the
            # process being killed; FULL: also power loss (one more fsync a commit).
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(SYNCHRONOUS[sqlite_synchronous])
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(files("points_service.adapters.sql") / "migrations")
    )
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    # SQLite answers "database is locked" when two workers migrate at once; the first
    # one wins and the other finds the schema at head.
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), revision))
            return
        except OperationalError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Back to `revision`: the rollback of a release (and the tests of a migration)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), revision))


async def for_aggregates(conn: AsyncConnection) -> None:
    """Settings for this transaction's year-long GROUP BYs on PostgreSQL: memory for
    hashing 100,000 informants' totals (4 MB, the default, spilled them to disk) and no
    JIT (compiling the plans took seconds of a query that runs in a few)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        await conn.execute(text("SET LOCAL jit = off"))
