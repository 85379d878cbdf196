"""The whole ledger copied from one database to another, verbatim: every table, every
row, the ids kept. It is how a programme that outgrew the embedded defaults moves its
SQLite ledger to PostgreSQL (or back), redemptions, reversals and profiles included."""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, Table, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_service.adapters.sql.engine import migrate
from points_service.adapters.sql.tables import balances, ledger_entries, metadata

CHUNK = 5000  # rows per INSERT


class TargetNotEmpty(ValueError):
    def __init__(self, table: str) -> None:
        super().__init__(f"the target database already holds rows in `{table}`")
        self.table = table


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


@dataclass(frozen=True, slots=True)
class Checksums:
    """What must be equal on both sides once the copy is done."""

    rows: tuple[tuple[str, int], ...]
    balance: int
    entry_points: int


async def checksums(conn: AsyncConnection) -> Checksums:
    rows = []
    for table in metadata.sorted_tables:
        rows.append(
            (
                table.name,
                int((await conn.execute(select(func.count()).select_from(table))).scalar_one()),
            )
        )
    balance = (
        await conn.execute(select(func.coalesce(func.sum(balances.c.balance), 0)))
    ).scalar_one()
    points = (
        await conn.execute(select(func.coalesce(func.sum(ledger_entries.c.points), 0)))
    ).scalar_one()
    return Checksums(tuple(rows), int(balance), int(points))


async def _first_nonempty(conn: AsyncConnection) -> str | None:
    for table in metadata.sorted_tables:
        if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first():
            return table.name
    return None


async def _continue_sequences(conn: AsyncConnection, table: Table) -> None:
    """PostgreSQL: the table's id sequence goes on after the copied ids."""
    for column in table.primary_key.columns:
        if column.autoincrement is True and isinstance(column.type, Integer):
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            await conn.execute(
                select(func.setval(sequence, func.coalesce(func.max(column), 0) + 1, False))
            )


async def copy_ledger(
    source: AsyncEngine,
    target: AsyncEngine,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[list[Copied], Checksums]:
    """Migrate the target to the latest schema, refuse it if it holds anything, copy
    every table in one target transaction, and compare the checksums of both sides."""
    await migrate(source)
    await migrate(target)
    copied = []
    async with target.connect() as conn:
        taken = await _first_nonempty(conn)
    if taken is not None:
        raise TargetNotEmpty(taken)
    async with source.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            rows = 0
            result = await src.stream(select(table))
            async for chunk in result.partitions(CHUNK):
                await dst.execute(insert(table), [dict(row._mapping) for row in chunk])
                rows += len(chunk)
                if progress is not None:
                    progress(table.name, rows)
            copied.append(Copied(table.name, rows))
            if target.dialect.name == "postgresql":
                await _continue_sequences(dst, table)
        expected = await checksums(src)
        found = await checksums(dst)
        if found != expected:  # the transaction rolls back: nothing half-copied stays
            raise RuntimeError(f"the copy differs from its source: {found} != {expected}")
    return copied, found
