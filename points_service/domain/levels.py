"""Experience levels with titles, defined in `rules/levels.toml`.

Experience is the informant's earned points: what actions credited, less what reversals
took back; spending (redemptions, draws) never lowers it. A level is a pure function of
experience, so it is right again at once after a reversal or a rebuild of Redis from the
ledger; nothing stores "the current level". Reaching a level for the first time is a
ledger entry of kind `level` (one per informant and level) and is reported in the answer
of the event that reached it.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from points_service.domain.rules import RuleProblem, RuleSetInvalid, decode_document

LEVELS_FILE = "levels.toml"
Experience = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class Level(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    level: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    at: Experience  # the experience that reaches it
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    title_zh: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class LevelFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str = ""
    levels: Annotated[list[Level], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=list)


class Standing(msgspec.Struct, frozen=True, gc=False):
    """Where an experience total stands: its level, and how far the next one is."""

    experience: int
    level: Level
    next: Level | None  # None at the top level
    to_next: int | None  # experience still needed for `next`
    progress: float  # 0..1 of the way from this level to the next (1.0 at the top)


@dataclass(frozen=True, slots=True)
class Levels:
    levels: tuple[Level, ...]  # by `at`, the first at 0
    ats: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ats", tuple(x.at for x in self.levels))

    def level_of(self, experience: int) -> Level:
        return self.levels[max(0, bisect_right(self.ats, experience) - 1)]

    def standing(self, experience: int) -> Standing:
        current = self.level_of(experience)
        index = current.level - self.levels[0].level
        following = self.levels[index + 1] if index + 1 < len(self.levels) else None
        if following is None:
            return Standing(experience, current, None, None, 1.0)
        span = following.at - current.at
        done = max(0, experience - current.at)
        return Standing(
            experience, current, following, following.at - experience, round(done / span, 4)
        )

    def crossed(self, before: int, after: int) -> tuple[Level, ...]:
        """The levels an experience change from `before` to `after` reached (none when it
        went down, or stayed inside one level)."""
        if after <= before:
            return ()
        # Levels are sorted by `at`: those in (before, after] are one slice.
        return self.levels[bisect_right(self.ats, before) : bisect_right(self.ats, after)]


# With no levels file every informant is on one level, so answers keep their shape.
ONE_LEVEL = Levels((Level(level=1, at=0, title="Informant", title_zh="科普信息员"),))


def load_levels(name: str, data: bytes) -> Levels:
    """`levels.toml`: `[[levels]]` with level, at, title, title_zh. The first level is at
    0 experience; levels are numbered 1, 2, 3… in the order of strictly growing `at`."""
    parsed = decode_document(name, data, LevelFile, what="level")
    problems = []
    if not parsed.levels:
        problems.append(RuleProblem(name, None, "levels", "at least one level is needed", "level"))
    for n, level in enumerate(parsed.levels):
        where = str(level.level)
        if level.level != n + 1:
            problems.append(
                RuleProblem(
                    name, where, "level", f"levels are numbered 1, 2, 3…: expected {n + 1}", "level"
                )
            )
        if n == 0 and level.at != 0:
            problems.append(RuleProblem(name, where, "at", "the first level is at 0", "level"))
        if n > 0 and level.at <= parsed.levels[n - 1].at:
            problems.append(
                RuleProblem(
                    name,
                    where,
                    "at",
                    f"must be above the previous level's {parsed.levels[n - 1].at}",
                    "level",
                )
            )
    if problems:
        raise RuleSetInvalid(problems)
    return Levels(tuple(parsed.levels))
