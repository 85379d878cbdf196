"""How to earn: the live rule set as the app shows it, and an informant's day against it.

Pure: the rule set, the clock and the informant's day counters (what apply.lua keeps in
the day hash: `n:{rule}` events a rule counted today, `p:{rule}` points it paid today,
`a:{action}` / `ap:{action}` per action) go in; what is earned, what is left and which
campaigns run come out.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from points_service.domain.rules import Featured, Rule, RuleSet


def once_per_day(rule: Rule) -> bool:
    return rule.distinct is not None and rule.distinct.within == "day" and not rule.distinct.by


def has_window(rule: Rule) -> bool:
    return rule.starts is not None or rule.ends is not None


def _not_over(starts: datetime | None, ends: datetime | None, now: datetime) -> bool:
    return ends is None or now < ends


@dataclass(frozen=True, slots=True)
class Listed:
    """The rules and featured lists worth showing at `now`: running or still to come."""

    rules: tuple[Rule, ...]
    featured: tuple[Featured, ...]


def listed(rules: RuleSet, now: datetime) -> Listed:
    return Listed(
        tuple(r for r in rules.rules if _not_over(r.starts, r.ends, now)),
        tuple(f for f in rules.featured if _not_over(f.starts, f.ends, now)),
    )


def featured_active(f: Featured, now: datetime) -> bool:
    return f.starts <= now < f.ends


@dataclass(frozen=True, slots=True)
class RuleToday:
    rule: Rule
    count: int  # events the rule counted today (duplicates are not counted)
    points: int  # points it paid today
    points_left: int | None  # before its daily points cap; None: no cap
    count_left: int | None  # before its daily count limit (1 for once a day); None: none


@dataclass(frozen=True, slots=True)
class ActionToday:
    action: str
    count: int
    points: int
    rules: tuple[RuleToday, ...]

    @property
    def points_left(self) -> int | None:
        """What the action can still pay today: None when a rule has no cap."""
        lefts = [r.points_left for r in self.rules]
        return None if not lefts or any(x is None for x in lefts) else sum(x or 0 for x in lefts)


def rule_today(rule: Rule, day: Mapping[str, int]) -> RuleToday:
    count = day.get("n:" + rule.id, 0)
    points = day.get("p:" + rule.id, 0)
    points_left = None
    if rule.daily_points_cap is not None:
        points_left = max(0, rule.daily_points_cap - points)
    count_left = None
    if rule.daily_count_cap is not None:
        count_left = max(0, rule.daily_count_cap - count)
    if once_per_day(rule):
        count_left = 0 if count else 1
        if points_left is None:
            points_left = 0 if count else rule.points
    if count_left == 0:
        points_left = 0
    return RuleToday(rule, count, points, points_left, count_left)


def actions_today(rules: RuleSet, day: Mapping[str, int], now: datetime) -> list[ActionToday]:
    """Per action with a rule running now, in the rule files' order."""
    out: dict[str, list[RuleToday]] = {}
    for rule in rules.rules:
        if rule.active_at(now):
            out.setdefault(rule.action, []).append(rule_today(rule, day))
    return [
        ActionToday(a, day.get("a:" + a, 0), day.get("ap:" + a, 0), tuple(r))
        for a, r in out.items()
    ]


@dataclass(frozen=True, slots=True)
class NextMilestone:
    rule_id: str
    days: int  # the streak length that pays
    bonus: int
    days_left: int  # sign-in days still needed, today's included when not yet done


@dataclass(frozen=True, slots=True)
class StreakToday:
    days: int  # the current streak (0 once a day was missed)
    done_today: bool
    next: NextMilestone | None


def streak_today(
    rules: RuleSet, streak: int, streak_day: int, today: int, now: datetime
) -> StreakToday:
    current = streak if streak_day >= today - 1 else 0
    done = streak_day == today and current > 0
    upcoming: list[NextMilestone] = [
        NextMilestone(rule.id, m.days, m.bonus, m.days - current)
        for rule in rules.rules
        if rule.streak is not None and rule.active_at(now)
        for m in rule.streak.milestones
        if m.days > current
    ]
    return StreakToday(current, done, min(upcoming, key=lambda m: m.days, default=None))


@dataclass(frozen=True, slots=True)
class Campaigns:
    """What runs now: rules with a window, and featured lists."""

    rules: tuple[Rule, ...]
    featured: tuple[Featured, ...]


def campaigns_now(rules: RuleSet, now: datetime) -> Campaigns:
    return Campaigns(
        tuple(r for r in rules.rules if has_window(r) and r.active_at(now)),
        tuple(f for f in rules.featured if featured_active(f, now)),
    )
