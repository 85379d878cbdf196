"""Leaderboard periods: a programme day belongs to one day, ISO week, month and year, and
to `all`. Keys are those of the API (`day:2026-11-28`, `week:2026-W48`, `month:2026-11`,
`year:2026`, `all`); bounds are programme days, so a period's start and end in real time
come from the programme calendar (Asia/Shanghai: a day starts at 16:00 UTC).
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal, get_args

PeriodKind = Literal["day", "week", "month", "year", "all"]
PERIOD_KINDS: Final[tuple[str, ...]] = get_args(PeriodKind)

# `all` has no end; its "first day" is the first ordinal, so ranges stay plain integers.
_FIRST: Final = date.min.toordinal()
_LAST: Final = date.max.toordinal()

_PATTERNS: Final = {
    "day": re.compile(r"^day:(\d{4})-(\d{2})-(\d{2})$"),
    "week": re.compile(r"^week:(\d{4})-W(\d{2})$"),
    "month": re.compile(r"^month:(\d{4})-(\d{2})$"),
    "year": re.compile(r"^year:(\d{4})$"),
}


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    key: str
    first_day: int  # ordinal of its first programme day
    last_day: int  # ordinal of its last programme day (inclusive)

    @property
    def bounded(self) -> bool:
        return self.kind != "all"

    def contains(self, day: int) -> bool:
        return self.first_day <= day <= self.last_day

    def next(self) -> "Period":
        """The period of the same kind that follows this one (`all` has none: itself)."""
        return self if not self.bounded else period_of(self.kind, self.last_day + 1)


ALL: Final = Period("all", "all", _FIRST, _LAST)


def period_of(kind: str, day: int) -> Period:
    """The period of `kind` that holds the programme day `day` (an ordinal)."""
    d = date.fromordinal(day)
    if kind == "day":
        return Period("day", f"day:{d.isoformat()}", day, day)
    if kind == "week":
        year, week, weekday = d.isocalendar()
        first = day - weekday + 1
        return Period("week", f"week:{year}-W{week:02d}", first, first + 6)
    if kind == "month":
        first_date = d.replace(day=1)
        next_month = (first_date + timedelta(days=32)).replace(day=1)
        return Period(
            "month",
            f"month:{d.year}-{d.month:02d}",
            first_date.toordinal(),
            next_month.toordinal() - 1,
        )
    if kind == "year":
        return Period(
            "year",
            f"year:{d.year}",
            date(d.year, 1, 1).toordinal(),
            date(d.year, 12, 31).toordinal(),
        )
    if kind == "all":
        return ALL
    raise ValueError(f"unknown period kind {kind!r}; expected one of {PERIOD_KINDS}")


def periods_of(day: int, kinds: tuple[str, ...] = PERIOD_KINDS) -> list[Period]:
    return [period_of(kind, day) for kind in kinds]


def parse_period(key: str) -> Period:
    """A period from its API key; ValueError names what is wrong."""
    if key == "all":
        return ALL
    kind = key.partition(":")[0]
    pattern = _PATTERNS.get(kind)
    match = pattern.match(key) if pattern else None
    if match is None:
        raise ValueError(
            f"{key!r} is not a period; expected all, day:YYYY-MM-DD, week:YYYY-Www, "
            "month:YYYY-MM or year:YYYY"
        )
    parts = [int(x) for x in match.groups()]
    try:
        if kind == "day":
            first = date(parts[0], parts[1], parts[2])
        elif kind == "week":
            first = date.fromisocalendar(parts[0], parts[1], 1)
        elif kind == "month":
            first = date(parts[0], parts[1], 1)
        else:
            first = date(parts[0], 1, 1)
    except ValueError as exc:
        raise ValueError(f"{key!r} is not a period: {exc}") from None
    return period_of(kind, first.toordinal())
