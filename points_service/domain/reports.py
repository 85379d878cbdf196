"""The monthly progress report of a region (or an institution), and its children ranked."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal

import msgspec

from points_service.domain.rules import RuleProblem, RuleSetInvalid

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


PER_10K: Final = "registrations_per_10k"


def per_10k(figures: Figures, population: int | None) -> float | None:
    if not population:
        return None
    return round(figures.registrations * 10_000 / population, 4)


@dataclass(frozen=True, slots=True)
class ChildRow:
    region: str
    figures: Figures
    population: int | None = None
    registrations_per_10k: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)  # measure -> competition rank


def rank_children(
    children: dict[str, Figures], population: Mapping[str, int] | None = None
) -> list[ChildRow]:
    """Each child with its standard competition rank on every measure (most first), and
    on registrations per 10,000 residents where its population is known."""
    people = population or {}
    rows = [
        ChildRow(code, figures, people.get(code), per_10k(figures, people.get(code)))
        for code, figures in sorted(children.items())
    ]
    for measure in MEASURES:
        values = sorted((row.figures.get(measure) for row in rows), reverse=True)
        for row in rows:
            row.ranks[measure] = values.index(row.figures.get(measure)) + 1
    known = sorted(
        (r.registrations_per_10k for r in rows if r.registrations_per_10k is not None), reverse=True
    )
    for row in rows:
        if row.registrations_per_10k is not None:
            row.ranks[PER_10K] = known.index(row.registrations_per_10k) + 1
    return rows


@dataclass(frozen=True, slots=True)
class Progress:
    """Year to date, against the programme's yearly targets."""

    registrations: int  # registered from 1 January to the month's end
    shares: int
    informants_at_share_target: int  # informants with at least `shares_per_informant`
    targets: Mapping[str, int]


class _TargetFile(msgspec.Struct, forbid_unknown_fields=True):
    targets: dict[
        Literal["registrations", "shares", "shares_per_informant"],
        Annotated[int, msgspec.Meta(gt=0)],
    ]


def load_targets(name: str, data: bytes) -> dict[str, int]:
    """`targets.toml`: `[targets]` registrations, shares, shares_per_informant."""
    try:
        raw = msgspec.toml.decode(data, type=_TargetFile)
    except msgspec.DecodeError as exc:
        raise RuleSetInvalid([RuleProblem(name, None, "targets", str(exc))]) from exc
    return {str(k): v for k, v in raw.targets.items()}


def load_population(name: str, data: bytes) -> dict[str, int]:
    """`population.toml`: `[population]` region code -> residents."""
    try:
        raw = msgspec.toml.decode(data, type=_PopulationFile)
    except msgspec.DecodeError as exc:
        raise RuleSetInvalid([RuleProblem(name, None, "population", str(exc))]) from exc
    return dict(raw.population)


class _PopulationFile(msgspec.Struct, forbid_unknown_fields=True):
    population: dict[
        Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")], Annotated[int, msgspec.Meta(gt=0)]
    ]
