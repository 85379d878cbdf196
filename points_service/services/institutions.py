"""Institutions (机构) and the admin's member table."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from points_service.domain.institutions import (
    MEMBER_SORTS,
    Institution,
    MemberRow,
    MemberTotals,
    check_institution,
)
from points_service.domain.periods import PERIOD_KINDS, parse_period, period_of
from points_service.domain.profiles import ProfileInvalid
from points_service.services.errors import InvalidInput, NotFound
from points_service.services.leaderboards import Leaderboards, PeriodView

MAX_MEMBERS_PAGE = 500


class InstitutionStore(Protocol):
    async def get(self, institution_id: str) -> Institution | None: ...

    async def put(self, institution_id: str, institution: Institution, at: datetime) -> bool: ...

    async def members(
        self,
        institution_id: str,
        first: date,
        last: date,
        sort: str,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[MemberRow], MemberTotals]: ...


@dataclass(frozen=True, slots=True)
class MemberTable:
    institution_id: str
    name: str
    period: PeriodView
    sort: str
    order: str
    rows: list[MemberRow]
    totals: MemberTotals
    next_cursor: str | None


class Institutions:
    def __init__(
        self, store: InstitutionStore, boards: Leaderboards, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._boards = boards  # for the programme calendar's periods
        self._clock = clock

    async def put(self, institution_id: str, institution: Institution) -> bool:
        try:
            check_institution(institution)
        except ProfileInvalid as exc:
            raise InvalidInput(exc.field, exc.message) from None
        return await self._store.put(institution_id, institution, self._clock())

    async def get(self, institution_id: str) -> Institution:
        found = await self._store.get(institution_id)
        if found is None:
            raise NotFound(f"no institution {institution_id!r}")
        return found

    async def members(
        self,
        institution_id: str,
        period: str | None,
        sort: str,
        order: str | None,
        limit: int,
        cursor: str | None,
    ) -> MemberTable:
        """Members as their profiles say now, with what they did for this institution in
        the period (no period: the current month)."""
        institution = await self.get(institution_id)
        text = period or "month"
        try:
            chosen = (
                period_of(text, self._boards.today())
                if text in PERIOD_KINDS
                else parse_period(text)
            )
        except ValueError as exc:
            raise InvalidInput("period", str(exc)) from None
        if sort not in MEMBER_SORTS:
            raise InvalidInput("sort", f"sort by one of {', '.join(MEMBER_SORTS)}")
        direction = order or ("asc" if sort == "name" else "desc")
        if direction not in ("asc", "desc"):
            raise InvalidInput("order", "order is asc or desc")
        if not 1 <= limit <= MAX_MEMBERS_PAGE:
            raise InvalidInput("limit", f"limit must be between 1 and {MAX_MEMBERS_PAGE}")
        if cursor is not None and (not cursor.isdigit() or len(cursor) > 9):
            raise InvalidInput("cursor", "not a cursor this API gave")
        offset = int(cursor or 0)
        first = date.fromordinal(chosen.first_day)
        last = date.fromordinal(chosen.last_day)
        rows, totals = await self._store.members(
            institution_id, first, last, sort, direction == "desc", offset, limit
        )
        after = offset + len(rows)
        return MemberTable(
            institution_id,
            institution.name,
            self._boards.period_view(chosen),
            sort,
            direction,
            rows,
            totals,
            str(after) if after < totals.members and rows else None,
        )
