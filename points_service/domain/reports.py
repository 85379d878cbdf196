"""The monthly progress report of a region (or an institution), and its children ranked."""

from dataclasses import dataclass, field
from typing import Final

# The measures children are ranked on, most first.
MEASURES: Final = (
    "new_registrations",
    "registrations",
    "active",
    "sharing",
    "shares",
    "share_views",
    "posts",
    "dormant",
    "reactivated",
)
DORMANT_DAYS: Final = 90


def region_level(code: str) -> str:
    """province (xx0000), city (xxxx00) or county."""
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "city"
    return "county"


@dataclass(frozen=True, slots=True)
class Figures:
    new_registrations: int  # profiles registered in the month
    registrations: int  # registered by the month's end
    active: int  # informants with a counted action in the month
    sharing: int  # informants with a counted share in the month
    shares: int
    share_views: int
    posts: int
    dormant: int  # registered >= 90 days before the month's end, no action in those 90 days
    reactivated: int  # dormant at the month's start, active in it

    def get(self, measure: str) -> int:
        value: int = getattr(self, measure)
        return value


@dataclass(frozen=True, slots=True)
class ChildRow:
    region: str
    figures: Figures
    ranks: dict[str, int] = field(default_factory=dict)  # measure -> competition rank


def rank_children(children: dict[str, Figures]) -> list[ChildRow]:
    """Each child with its standard competition rank on every measure (most first)."""
    rows = [ChildRow(code, figures) for code, figures in sorted(children.items())]
    for measure in MEASURES:
        values = sorted((row.figures.get(measure) for row in rows), reverse=True)
        for row in rows:
            row.ranks[measure] = values.index(row.figures.get(measure)) + 1
    return rows
