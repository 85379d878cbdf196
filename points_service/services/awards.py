"""Award nominations for a year and a scope, from the durable ledger (its daily rollups),
reproducible: the same ledger and award file give the same rows."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Protocol

from points_service.domain.awards import Award, Candidate, Nomination, nominate
from points_service.domain.boards import parse_scope
from points_service.services.errors import InvalidInput, NotFound


class AwardTotals(Protocol):
    async def candidates(
        self, first: date, last: date, province: str | None
    ) -> list[Candidate]: ...

    async def informants_by_province(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Nominations:
    award: Award
    year: int
    scope: str
    rows: list[Nomination]


class Awards:
    def __init__(
        self,
        awards: dict[str, Award],
        totals: AwardTotals,
        barred: Callable[[], Awaitable[set[str]]] | None = None,
    ) -> None:
        """`barred()`: informants with an abuse flag not cleared, left out."""
        self.awards = awards
        self._totals = totals
        self._barred = barred

    async def nominations(self, award_id: str, year: int, scope: str) -> Nominations:
        award = self.awards.get(award_id)
        if award is None:
            raise NotFound(f"no award {award_id!r}; the awards are {', '.join(self.awards)}")
        if not 2000 <= year <= 2200:
            raise InvalidInput("year", "a calendar year, e.g. 2026")
        try:
            kind, key = parse_scope(scope)
        except ValueError as exc:
            raise InvalidInput("scope", str(exc)) from None
        if kind not in ("all", "province"):
            raise InvalidInput("scope", "nominations are for all, or for one province")
        province = key.partition(":")[2] if kind == "province" else None
        candidates = await self._totals.candidates(date(year, 1, 1), date(year, 12, 31), province)
        if self._barred is not None:
            flagged = await self._barred()
            candidates = [
                replace(c, eligible=False) if c.informant_id in flagged else c for c in candidates
            ]
        shares = None
        if award.national_quota and province is None:
            shares = await self._totals.informants_by_province()
        return Nominations(award, year, key, nominate(award, candidates, shares))
