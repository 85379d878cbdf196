"""The monthly progress report per region or institution (科协 staff): registrations,
activity, sharing, dormant and reactivated informants, and the region's children ranked
on each measure. Computed from the ledger's daily rollups and the profiles."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from points_service.domain.boards import parse_scope
from points_service.domain.periods import Period, parse_period, period_of
from points_service.domain.reports import (
    ChildRow,
    Figures,
    Progress,
    per_10k,
    rank_children,
    region_level,
)
from points_service.services.errors import InvalidInput
from points_service.services.leaderboards import Leaderboards, PeriodView


class ReportFigures(Protocol):
    async def figures(
        self, where: tuple[str, str], first: date, last: date, start: datetime, end: datetime
    ) -> Figures: ...

    async def figures_of(
        self, codes: Sequence[str], first: date, last: date, start: datetime, end: datetime
    ) -> dict[str, Figures]: ...

    async def children(self, code: str) -> list[str]: ...

    async def day_totals(self, day: date) -> dict[str, int]: ...

    async def year_to_date(
        self,
        where: tuple[str, str],
        first: date,
        last: date,
        start: datetime,
        end: datetime,
        per_informant: int,
    ) -> tuple[int, int, int]: ...


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: PeriodView
    kind: str  # region | institution
    code: str
    level: str  # province | city | county | institution
    figures: Figures
    children: list[ChildRow]
    population: int | None = None
    registrations_per_10k: float | None = None
    progress: Progress | None = None  # year to date, when targets are set


class Reports:
    def __init__(
        self,
        figures: ReportFigures,
        boards: Leaderboards,
        clock: Callable[[], datetime],
        population: Mapping[str, int] | None = None,
        targets: Mapping[str, int] | None = None,
    ) -> None:
        self._targets = dict(targets or {})
        self._population = dict(population or {})
        self._figures = figures
        self._boards = boards  # for the programme calendar
        self._clock = clock

    async def today(self) -> dict[str, int]:
        """The whole programme on the current programme day (the operators' gauges)."""
        return await self._figures.day_totals(date.fromordinal(self._boards.today()))

    async def monthly(
        self, month: str | None, region: str | None, institution: str | None
    ) -> MonthlyReport:
        period = self._month(month)
        if (region is None) == (institution is None):
            raise InvalidInput("region", "give a region code or an institution, not both")
        view = self._boards.period_view(period)
        start, end = view.start, view.end
        assert start is not None, "a month is bounded"
        assert end is not None, "a month is bounded"
        first, last = date.fromordinal(period.first_day), date.fromordinal(period.last_day)
        if institution is not None:
            where = ("institution", institution)
            figures = await self._figures.figures(where, first, last, start, end)
            return MonthlyReport(view, "institution", institution, "institution", figures, [])
        assert region is not None
        level = region_level(region)
        try:
            parse_scope(f"{level}:{region}")  # the code's own shape
        except ValueError:
            raise InvalidInput(
                "region", "a region code: six digits (640000, 640100, 640104)"
            ) from None
        figures = await self._figures.figures(("region", region), first, last, start, end)
        children = await self._figures.figures_of(
            await self._figures.children(region), first, last, start, end
        )
        people = self._population.get(region)
        return MonthlyReport(
            view,
            "region",
            region,
            level,
            figures,
            rank_children(children, self._population),
            people,
            per_10k(figures, people),
            await self._progress(("region", region), period, end),
        )

    async def trend(
        self, month: str | None, region: str | None, institution: str | None
    ) -> list[tuple[PeriodView, Figures]]:
        """The figures of each month of the year up to `month` (the current one if none):
        one query over the daily rollups per month, as the monthly report makes."""
        report_month = self._month(month)
        where = ("institution", institution) if institution else ("region", region or "")
        year = date.fromordinal(report_month.first_day).year
        last = date.fromordinal(report_month.first_day).month
        found = []
        for n in range(1, last + 1):
            period = parse_period(f"month:{year}-{n:02d}")
            view = self._boards.period_view(period)
            assert view.start is not None, "a month is bounded"
            assert view.end is not None, "a month is bounded"
            figures = await self._figures.figures(
                where,
                date.fromordinal(period.first_day),
                date.fromordinal(period.last_day),
                view.start,
                view.end,
            )
            found.append((view, figures))
        return found

    def _month(self, month: str | None) -> Period:
        try:
            return (
                parse_period(f"month:{month}")
                if month
                else period_of("month", self._boards.today())
            )
        except ValueError:
            raise InvalidInput("month", "a month as YYYY-MM, e.g. 2026-11") from None

    async def _progress(
        self, where: tuple[str, str], month: Period, end: datetime
    ) -> Progress | None:
        if not self._targets:
            return None
        year = period_of("year", month.first_day)
        start = self._boards.period_view(year).start
        assert start is not None, "a year is bounded"
        registered, shares, reached = await self._figures.year_to_date(
            where,
            date.fromordinal(year.first_day),
            date.fromordinal(month.last_day),
            start,
            end,
            self._targets.get("shares_per_informant", 310),
        )
        return Progress(registered, shares, reached, dict(self._targets))
