"""Institutions in SQL, their member tables, and the awards' yearly totals: all
aggregated from the daily rollups, never from the event log."""

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, case, cast, distinct, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_service.adapters.sql.engine import for_aggregates
from points_service.adapters.sql.ledger import upsert_for
from points_service.adapters.sql.tables import informant_days, informants, institutions
from points_service.domain.awards import Candidate
from points_service.domain.institutions import Institution, MemberRow, MemberTotals

_FIELDS = ("name", "province", "city", "county", "contact")


class SqlInstitutions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, institution_id: str) -> Institution | None:
        query = select(*(institutions.c[f] for f in _FIELDS)).where(
            institutions.c.institution_id == institution_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Institution(**{f: getattr(row, f) for f in _FIELDS})

    async def put(self, institution_id: str, institution: Institution, at: datetime) -> bool:
        """Create or replace; True when it was created."""
        values: dict[str, Any] = {f: getattr(institution, f) for f in _FIELDS}
        async with self._engine.begin() as conn:
            existed = (
                await conn.execute(
                    select(institutions.c.institution_id).where(
                        institutions.c.institution_id == institution_id
                    )
                )
            ).first() is not None
            stmt = upsert_for(self._engine)(institutions).values(
                institution_id=institution_id, created_at=at, updated_at=at, **values
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["institution_id"], set_={**values, "updated_at": at}
                )
            )
        return not existed

    async def members(
        self,
        institution_id: str,
        first: date,
        last: date,
        sort: str,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[MemberRow], MemberTotals]:
        """Current members (their profile names the institution), with what they did for
        it in [first, last]: one GROUP BY over the rollups, never the event log."""
        d = informant_days.c
        i = informants.c
        in_period = and_(
            d.informant_id == i.informant_id,
            d.institution_id == institution_id,
            d.day >= first,
            d.day <= last,
        )
        ever = informant_days.alias("ever")
        latest = (
            select(func.max(ever.c.day))
            .where(ever.c.informant_id == i.informant_id, ever.c.events > 0)
            .correlate(informants)
            .scalar_subquery()
        )
        sums = {
            m: func.coalesce(func.sum(d[m]), 0).label(m)
            for m in ("shares", "posts", "points", "share_views")
        }
        last_activity = latest.label("last_activity")
        actions = func.coalesce(func.sum(d.events), 0).label("actions")
        per_member = (
            select(i.informant_id, i.name, *sums.values(), actions, last_activity)
            .select_from(informants.outerjoin(informant_days, in_period))
            .where(i.institution_id == institution_id)
            .group_by(i.informant_id, i.name)
        ).subquery()
        column = per_member.c[sort]
        order = column.desc() if descending else column.asc()
        if sort == "last_activity":
            order = order.nulls_last()
        page = (
            select(per_member)
            .order_by(order, per_member.c.informant_id)
            .offset(offset)
            .limit(limit)
        )
        totals = select(
            func.count(),
            func.count().filter(per_member.c.actions > 0),
            *(func.coalesce(func.sum(per_member.c[m]), 0) for m in sums),
        ).select_from(per_member)
        async with self._engine.connect() as conn:
            rows = [
                MemberRow(
                    r.informant_id, r.name, int(r.shares), int(r.posts), int(r.points),
                    int(r.share_views), _as_date(r.last_activity),
                )
                for r in await conn.execute(page)
            ]  # fmt: skip
            t = (await conn.execute(totals)).one()
        return rows, MemberTotals(*(int(v) for v in t))


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))  # SQLite hands back text from max()


YEAR_BITS = 366  # a bit a day of the longest year


class SqlAwardTotals:
    """Per-informant totals of one year, from the daily rollups, for the awards."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def candidates(self, first: date, last: date, province: str | None) -> list[Candidate]:
        async with self._engine.connect() as conn:
            await for_aggregates(conn)
            rows = list(await conn.execute(self._totals_query(conn, first, last, province)))
        return [
            Candidate(
                informant_id=r[0],
                name=r[1],
                province=r[2],
                registered_at=_aware(r[3]),
                eligible=bool(r[4]) and r[5] == "active",
                metrics=dict(
                    zip(
                        (
                            "points",
                            "shares",
                            "share_views",
                            "posts",
                            "active_days",
                            "active_months",
                        ),
                        (int(v or 0) for v in r[6:12]),
                        strict=True,
                    )
                ),
            )
            for r in rows
        ]

    @staticmethod
    def _totals_query(
        conn: AsyncConnection, first: date, last: date, province: str | None
    ) -> Select[Any]:
        """Per informant: points, shares, share views, posts, active days and months,
        with the profile fields the awards need."""
        d = informant_days.c
        i = informants.c
        if conn.dialect.name == "postgresql" and (last - first).days < YEAR_BITS:
            # Distinct days and months as bits OR-ed together and counted: one hash
            # aggregate over a sequential scan, where COUNT(DISTINCT) sorted all the rows
            # (10,000,000 rollups: 15 s -> 5 s). A year has at most 366 days.
            on = d.events > 0
            day_bit = literal_column(f"B'1'::bit({YEAR_BITS})").op(">>")(d.day - first)
            month_bit = literal_column("B'1'::bit(12)").op(">>")(
                cast(func.extract("month", d.day), Integer) - 1
            )
            days = func.bit_count(func.bit_or(case((on, day_bit))))
            months = func.bit_count(func.bit_or(case((on, month_bit))))
        else:
            days = func.count(distinct(case((d.events > 0, d.day))))
            months = func.count(distinct(func.extract("month", case((d.events > 0, d.day)))))
        where = [d.day >= first, d.day <= last]
        if province is not None:
            where.append(d.province == province)
        totals = (
            select(
                d.informant_id.label("informant_id"),
                func.sum(d.points).label("points"),
                func.sum(d.shares).label("shares"),
                func.sum(d.share_views).label("share_views"),
                func.sum(d.posts).label("posts"),
                days.label("days"),
                months.label("months"),
            )
            .where(*where)
            .group_by(d.informant_id)
            .subquery()
        )
        t = totals.c
        return select(
            t.informant_id, i.name, i.province, i.registered_at, i.certified, i.status,
            t.points, t.shares, t.share_views, t.posts, t.days, t.months,
        ).select_from(
            totals.outerjoin(informants, i.informant_id == t.informant_id)
        )  # fmt: skip

    async def informants_by_province(self) -> dict[str, int]:
        i = informants.c
        query = (
            select(i.province, func.count())
            .where(i.status == "active", i.province.is_not(None))
            .group_by(i.province)
        )
        async with self._engine.connect() as conn:
            return {r[0]: int(r[1]) for r in await conn.execute(query)}


def _aware(value: Any) -> datetime | None:
    if value is None or not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
