"""Award nominations: defined in `rules/awards.toml`, computed from per-informant yearly
totals, each row with its reasons (metrics, thresholds met, the tie-break that placed it).
Pure: the SQL adapter supplies the totals, this module ranks and explains."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import msgspec

from points_service.domain.rules import RuleProblem, RuleSetInvalid, decode_document

Metric = Literal["points", "shares", "share_views", "posts", "active_days", "active_months"]
METRICS: Final[tuple[str, ...]] = get_args(Metric)
TieBreak = Literal[
    "points", "shares", "share_views", "posts", "active_days", "active_months",
    "registered_at", "informant_id",
]  # fmt: skip
AwardId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class Award(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: AwardId
    title: str
    title_zh: str
    rank_by: Metric
    tie_breaks: list[TieBreak] = msgspec.field(default_factory=list)
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    thresholds: dict[Metric, Annotated[int, msgspec.Meta(ge=0)]] = msgspec.field(
        default_factory=dict
    )
    national_quota: Annotated[int, msgspec.Meta(ge=0)] = 0


class AwardFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    awards: list[Award]


def load_awards(name: str, data: bytes) -> dict[str, Award]:
    parsed = decode_document(name, data, AwardFile, what="award")
    problems = []
    seen: set[str] = set()
    for award in parsed.awards:
        if award.id in seen:
            problems.append(RuleProblem(name, award.id, "id", "defined twice", "award"))
        seen.add(award.id)
        if len(set(award.tie_breaks)) != len(award.tie_breaks):
            problems.append(
                RuleProblem(name, award.id, "tie_breaks", "lists a value twice", "award")
            )
    if problems:
        raise RuleSetInvalid(problems)
    return {a.id: a for a in parsed.awards}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One informant's year, with what eligibility needs."""

    informant_id: str
    name: str | None
    province: str | None
    registered_at: datetime | None
    eligible: bool
    metrics: Mapping[str, int]  # every METRICS key


@dataclass(frozen=True, slots=True)
class Nomination:
    position: int
    informant_id: str
    name: str | None
    province: str | None
    metrics: Mapping[str, int]
    thresholds_met: Mapping[str, int]  # metric -> the threshold it met
    placed_by: str | None  # the tie-break that put it below the row before, if any
    reasons: list[str] = field(default_factory=list)


def _order(c: Candidate, tie_break: str) -> object:
    """What sorts first comes first: more of a metric, an earlier registration (unknown
    last), a smaller id."""
    if tie_break == "informant_id":
        return c.informant_id
    if tie_break == "registered_at":
        return c.registered_at.timestamp() if c.registered_at else float("inf")
    return -c.metrics[tie_break]


def _key(c: Candidate, award: Award) -> tuple[object, ...]:
    return (
        -c.metrics[award.rank_by],
        *(_order(c, t) for t in award.tie_breaks),
        c.informant_id,
    )


def _placed_by(before: Candidate, now: Candidate, award: Award) -> str | None:
    """The tie-break that put `now` below `before` when they are level on rank_by."""
    if before.metrics[award.rank_by] != now.metrics[award.rank_by]:
        return None
    for t in award.tie_breaks:
        if _order(before, t) != _order(now, t):
            return t
    return "informant_id"


def quota_shares(quota: int, informants_by_province: Mapping[str, int]) -> dict[str, int]:
    """`quota` places shared in proportion to each province's informants, at least one each
    (largest remainders get the places left)."""
    provinces = sorted(p for p, n in informants_by_province.items() if n > 0)
    if not provinces or quota <= 0:
        return {}
    total = sum(informants_by_province[p] for p in provinces)
    spare = max(0, quota - len(provinces))
    exact = {p: spare * informants_by_province[p] / total for p in provinces}
    shares = {p: 1 + int(exact[p]) for p in provinces}
    left = quota - sum(shares.values())
    for p in sorted(provinces, key=lambda p: (-(exact[p] - int(exact[p])), p))[: max(0, left)]:
        shares[p] += 1
    return shares


def nominate(
    award: Award,
    candidates: Sequence[Candidate],
    informants_by_province: Mapping[str, int] | None = None,
) -> list[Nomination]:
    """The award's nominations, best first, each with its reasons."""
    pool = [
        c
        for c in candidates
        if c.eligible and all(c.metrics[m] >= t for m, t in award.thresholds.items())
    ]
    pool.sort(key=lambda c: _key(c, award))
    if award.national_quota and informants_by_province is not None:
        places = quota_shares(award.national_quota, informants_by_province)
        taken: dict[str, int] = {}
        chosen = []
        for c in pool:
            province = c.province or ""
            if taken.get(province, 0) < places.get(province, 0):
                taken[province] = taken.get(province, 0) + 1
                chosen.append(c)
        pool = chosen
    if award.limit is not None:
        pool = pool[: award.limit]
    rows = []
    for n, c in enumerate(pool):
        placed = _placed_by(pool[n - 1], c, award) if n else None
        met: dict[str, int] = {str(m): t for m, t in award.thresholds.items()}
        reasons = [f"{award.rank_by} {c.metrics[award.rank_by]}"]
        reasons += [f"{m} {c.metrics[m]} >= {t}" for m, t in met.items()]
        if placed:
            reasons.append(f"level on {award.rank_by} with the row above; placed by {placed}")
        rows.append(
            Nomination(
                n + 1, c.informant_id, c.name, c.province, dict(c.metrics), met, placed, reasons
            )
        )
    return rows
