"""The monthly report's figures: GROUP BYs over the daily rollups and the profiles."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from points_service.adapters.sql.engine import for_aggregates
from points_service.adapters.sql.tables import informant_days, informants
from points_service.domain.reports import DORMANT_DAYS, Figures, region_level


def _counted_in(where: tuple[str, str]) -> ColumnElement[bool]:
    """Rollups counted in this region or institution."""
    kind, code = where
    column = "institution_id" if kind == "institution" else region_level(code)
    return informant_days.c[column] == code


def _belongs(where: tuple[str, str]) -> ColumnElement[bool]:
    """Profiles that place the informant in this region or institution now."""
    kind, code = where
    column = "institution_id" if kind == "institution" else region_level(code)
    return informants.c[column] == code


class SqlReports:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def day_totals(self, day: date) -> dict[str, int]:
        """The whole programme on one programme day: active informants (any event), and
        the day's shares, share views, posts and points. For the operators' dashboard."""
        d = informant_days.c
        query = select(
            func.count(distinct(d.informant_id)),
            func.coalesce(func.sum(d.shares), 0),
            func.coalesce(func.sum(d.share_views), 0),
            func.coalesce(func.sum(d.posts), 0),
            func.coalesce(func.sum(d.points), 0),
        ).where(d.day == day, d.events > 0)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one()
        names = ("active_informants", "shares", "share_views", "posts", "points")
        return {name: int(v) for name, v in zip(names, row, strict=True)}

    async def figures(
        self, where: tuple[str, str], first: date, last: date, start: datetime, end: datetime
    ) -> Figures:
        """`where`: ("region", code) or ("institution", id); [first, last] the month's
        programme days, [start, end) the same in real time."""
        kind, code = where
        column = "institution_id" if kind == "institution" else region_level(code)
        return (await self._figures_of(column, [code], first, last, start, end))[code]

    async def figures_of(
        self, codes: Sequence[str], first: date, last: date, start: datetime, end: datetime
    ) -> dict[str, Figures]:
        """`figures` of several regions of one level (a region's cities, say) at once."""
        if not codes:
            return {}
        return await self._figures_of(region_level(codes[0]), codes, first, last, start, end)

    async def _figures_of(
        self,
        column: str,
        codes: Sequence[str],
        first: date,
        last: date,
        start: datetime,
        end: datetime,
    ) -> dict[str, Figures]:
        """Each code's figures, every query grouped by the code's column: a region's
        cities cost what the region costs, not five times as much."""
        d, i = informant_days.c, informants.c
        # One row per code and informant active in the month (a hash aggregate): the
        # counts, the sums and who was active all come from it.
        per_informant = (
            select(
                d[column],
                d.informant_id,
                func.sum(d.shares),
                func.sum(d.share_views),
                func.sum(d.posts),
            )
            .where(d[column].in_(codes), d.day >= first, d.day <= last, d.events > 0)
            .group_by(d[column], d.informant_id)
        )
        registered = (
            select(
                i[column],
                func.count().filter(and_(i.registered_at >= start, i.registered_at < end)),
                func.count().filter(i.registered_at < end),
            )
            .where(i[column].in_(codes))
            .group_by(i[column])
        )
        active: dict[str, dict[str, tuple[int, int, int]]] = {c: {} for c in codes}
        counts: dict[str, tuple[int, int]] = {}
        async with self._engine.connect() as conn:
            await for_aggregates(conn)
            for r in await conn.execute(per_informant):
                active[r[0]][r[1]] = (int(r[2]), int(r[3]), int(r[4]))
            for r in await conn.execute(registered):
                counts[r[0]] = (int(r[1]), int(r[2]))
            dormant_end = await self._dormant_ids(conn, column, codes, end, last)
            dormant_start = await self._dormant_ids(
                conn, column, codes, start, first - timedelta(days=1)
            )
        found = {}
        for c in codes:
            here = active[c]
            new, total = counts.get(c, (0, 0))
            found[c] = Figures(
                new_registrations=new,
                registrations=total,
                active=len(here),
                sharing=sum(1 for shares, _, _ in here.values() if shares > 0),
                shares=sum(shares for shares, _, _ in here.values()),
                share_views=sum(views for _, views, _ in here.values()),
                posts=sum(posts for _, _, posts in here.values()),
                dormant=len(dormant_end.get(c, ())),
                reactivated=len(dormant_start.get(c, set()) & here.keys()),
            )
        return found

    async def _dormant_ids(
        self, conn: Any, column: str, codes: Sequence[str], moment: datetime, day: date
    ) -> dict[str, set[str]]:
        """By code: informants (placed there now) registered at least DORMANT_DAYS before
        `moment` with no counted action in the DORMANT_DAYS up to programme day `day`."""
        d, i = informant_days.c, informants.c
        since = day - timedelta(days=DORMANT_DAYS - 1)
        recent = (
            select(d.informant_id)
            .where(d.informant_id == i.informant_id, d.day >= since, d.day <= day, d.events > 0)
            .correlate(informants)
            .exists()
        )
        query = select(i[column], i.informant_id).where(
            i[column].in_(codes),
            i.status == "active",
            i.registered_at <= moment - timedelta(days=DORMANT_DAYS),
            ~recent,
        )
        found: dict[str, set[str]] = {}
        for code, informant_id in await conn.execute(query):
            found.setdefault(code, set()).add(informant_id)
        return found

    async def year_to_date(
        self,
        where: tuple[str, str],
        first: date,
        last: date,
        start: datetime,
        end: datetime,
        per_informant: int,
    ) -> tuple[int, int, int]:
        """(registrations, shares, informants with at least `per_informant` shares) from
        programme day `first` (1 January) to `last`; [start, end) the same in real time."""
        d, i = informant_days.c, informants.c
        in_year = and_(_counted_in(where), d.day >= first, d.day <= last)
        per = (
            select(d.informant_id, func.sum(d.shares).label("shares"))
            .where(in_year)
            .group_by(d.informant_id)
            .subquery()
        )
        async with self._engine.connect() as conn:
            await for_aggregates(conn)
            registered = (
                await conn.execute(
                    select(func.count()).where(
                        _belongs(where), i.registered_at >= start, i.registered_at < end
                    )
                )
            ).scalar_one()
            shares, reached = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(per.c.shares), 0),
                        func.count().filter(per.c.shares >= per_informant),
                    ).select_from(per)
                )
            ).one()
        return int(registered), int(shares), int(reached)

    async def children(self, code: str) -> list[str]:
        """The cities of a province, or the counties of a city, that informants name."""
        level = region_level(code)
        if level == "county":
            return []
        child = "city" if level == "province" else "county"
        i = informants.c
        query = (
            select(i[child])
            .distinct()
            .where(i[level] == code, i[child].is_not(None))
            .order_by(i[child])
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in await conn.execute(query)]
