"""Informant profiles in SQL, the ledger's per-day totals that boards are made of, and
the final standings of closed periods."""

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from points_service.adapters.sql.ledger import upsert_for
from points_service.adapters.sql.tables import (
    board_standings,
    closed_boards,
    informant_days,
    informants,
)
from points_service.domain.boards import Board, DayTotal, Placement
from points_service.domain.profiles import Profile

PROFILE_COLUMNS = (
    "name",
    "province",
    "city",
    "county",
    "unit_name",
    "type",
    "institution_id",
    "certified",
    "registered_at",
    "status",
)


def profile_of(row: Any) -> Profile:
    return Profile(**{c: getattr(row, c) for c in PROFILE_COLUMNS})


class SqlProfiles:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, informant_id: str) -> Profile | None:
        query = select(*(informants.c[c] for c in PROFILE_COLUMNS)).where(
            informants.c.informant_id == informant_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else profile_of(row)

    async def put(self, informant_id: str, profile: Profile, at: datetime) -> Profile | None:
        values = {c: getattr(profile, c) for c in PROFILE_COLUMNS}
        values |= {"informant_id": informant_id, "updated_at": at}
        previous_query = (
            select(*(informants.c[c] for c in PROFILE_COLUMNS))
            .where(informants.c.informant_id == informant_id)
            .with_for_update()
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(previous_query)).first()
            stmt = upsert_for(self._engine)(informants)
            await conn.execute(
                stmt.values(values).on_conflict_do_update(
                    index_elements=["informant_id"],
                    set_={k: v for k, v in values.items() if k != "informant_id"},
                )
            )
        return None if row is None else profile_of(row)

    async def find(self, text: str, limit: int) -> list[tuple[str, Profile]]:
        prefix = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        c = informants.c
        query = (
            select(c.informant_id, *(c[name] for name in PROFILE_COLUMNS))
            .where(or_(c.informant_id == text, c.name.like(prefix, escape="\\")))
            .order_by((c.informant_id == text).desc(), c.name, c.informant_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.informant_id, profile_of(row)) for row in rows]

    async def all_profiles(self) -> AsyncIterator[tuple[str, Profile]]:
        query = select(informants.c.informant_id, *(informants.c[c] for c in PROFILE_COLUMNS))
        async with self._engine.connect() as conn:
            result = await conn.stream(query)
            async for row in result:
                yield row.informant_id, profile_of(row)


class SqlLedgerTotals:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def informant_days(
        self, *, since_day: int | None = None, informant_id: str | None = None
    ) -> AsyncIterator[DayTotal]:
        """From the daily rollups (kept with every commit), not the event log."""
        d = informant_days.c
        query = select(
            d.day, d.informant_id, d.province, d.city, d.county, d.institution_id,
            d.points, d.shares, d.share_views, d.posts,
        ).order_by(d.day)  # fmt: skip
        if since_day is not None:
            query = query.where(d.day >= date.fromordinal(since_day))
        if informant_id is not None:
            query = query.where(d.informant_id == informant_id)
        else:
            query = query.where(
                ~exists().where(
                    informants.c.informant_id == d.informant_id, informants.c.status != "active"
                )
            )
        async with self._engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=5000))
            placements: dict[tuple[Any, ...], Placement] = {}
            # Whole partitions: one hop through SQLAlchemy's async bridge per 5,000 rows.
            async for rows in result.partitions():
                for row in rows:
                    values = {
                        m: int(v)
                        for m, v in zip(
                            ("points", "shares", "share_views", "posts"), row[6:10], strict=True
                        )
                        if v
                    }
                    if not values:
                        continue
                    where = tuple(v or None for v in row[2:6])
                    placement = placements.get(where)
                    if placement is None:
                        placement = placements[where] = Placement(*where)
                    yield DayTotal(row[0].toordinal(), row[1], placement, values)


class SqlStandings:
    """The final standings of closed periods: top rows and the member count per board."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def closed(self, board: Board) -> tuple[int, list[tuple[int, str, int]]] | None:
        """(members, [(rank, informant, score)] best first), or None if not closed."""
        where = (
            (closed_boards.c.metric == board.metric)
            & (closed_boards.c.scope == board.scope)
            & (closed_boards.c.period == board.period)
        )
        rows_query = (
            select(board_standings.c.rank, board_standings.c.informant_id, board_standings.c.score)
            .where(
                board_standings.c.metric == board.metric,
                board_standings.c.scope == board.scope,
                board_standings.c.period == board.period,
            )
            .order_by(board_standings.c.position)
        )
        async with self._engine.connect() as conn:
            members = (await conn.execute(select(closed_boards.c.members).where(where))).scalar()
            if members is None:
                return None
            rows = [(r[0], r[1], int(r[2])) for r in await conn.execute(rows_query)]
        return int(members), rows

    async def recorded(self) -> set[Board]:
        query = select(closed_boards.c.metric, closed_boards.c.scope, closed_boards.c.period)
        async with self._engine.connect() as conn:
            return {Board(r[0], r[1], r[2]) for r in await conn.execute(query)}

    async def record(
        self, board: Board, members: int, rows: list[tuple[int, str, int]], at: datetime
    ) -> None:
        """Write a board's final standings once (a second writer's rows are dropped)."""
        key = {"metric": board.metric, "scope": board.scope, "period": board.period}
        insert = upsert_for(self._engine)
        async with self._engine.begin() as conn:
            done = await conn.execute(
                insert(closed_boards)
                .values(**key, members=members, closed_at=at)
                .on_conflict_do_nothing(index_elements=["metric", "scope", "period"])
            )
            if done.rowcount == 0:
                return
            if rows:
                await conn.execute(
                    insert(board_standings),
                    [
                        {**key, "position": i, "rank": rank, "informant_id": who, "score": score}
                        for i, (rank, who, score) in enumerate(rows)
                    ],
                )
