"""Rule files: the data that says what earns points, decoded and validated.

A rule set is built from named TOML documents (file name -> bytes). Every problem is
reported with the file, the rule and the field, and all problems are reported at once;
a set with any problem is never built.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from points_service.domain.actions import (
    ACTIONS,
    COUNTERS,
    REQUIRED_FIELDS,
    Action,
    Counter,
    EventField,
)

T = TypeVar("T")
RuleId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
Points = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]


class Distinct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Only the first event with these field values pays, per day or for ever.

    `by = []` with `within = "day"` means once per day.
    """

    by: list[EventField] = msgspec.field(default_factory=list)
    within: Literal["day", "ever"] = "day"


class ExcludeSelf(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An event whose `field` equals its own informant pays nothing, with `reason`."""

    field: EventField
    reason: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")] = "self_action"


class Milestone(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    days: Positive
    bonus: Points


class Streak(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Consecutive programme days; a missed day restarts the streak at 1."""

    milestones: list[Milestone] = msgspec.field(default_factory=list)


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: RuleId
    action: Action
    points: Points
    title: str = ""
    title_zh: str = ""
    distinct: Distinct | None = None
    daily_points_cap: Points | None = None
    daily_count_cap: Points | None = None
    exclude_self: ExcludeSelf | None = None
    today_only: bool = False
    streak: Streak | None = None
    counts: list[Counter] = msgspec.field(default_factory=list)
    starts: AwareDateTime | None = None
    ends: AwareDateTime | None = None

    def active_at(self, moment: datetime) -> bool:
        return (self.starts is None or self.starts <= moment) and (
            self.ends is None or moment < self.ends
        )


class Featured(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Listed content that multiplies the points of the named actions inside a window."""

    name: RuleId
    title: str = ""  # labels for the app's "how to earn" (GET /v1/rules)
    title_zh: str = ""
    actions: Annotated[list[Action], msgspec.Meta(min_length=1)]
    factor: Annotated[int, msgspec.Meta(ge=1, le=100)]
    content_ids: Annotated[list[str], msgspec.Meta(min_length=1)]
    starts: AwareDateTime
    ends: AwareDateTime


class RuleFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str = ""
    rules: list[Rule] = msgspec.field(default_factory=list)
    featured: list[Featured] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RuleProblem:
    file: str
    rule: str | None
    field: str | None
    message: str
    what: str = "rule"  # what `rule` names: a rule, or a board in a board file

    def __str__(self) -> str:
        where = self.file
        if self.rule:
            where += f": {self.what} {self.rule!r}"
        if self.field:
            where += f": field `{self.field}`"
        return f"{where}: {self.message}"


class RuleSetInvalid(ValueError):
    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class FeaturedWindow:
    factor: int
    starts: datetime
    ends: datetime


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    featured: tuple[Featured, ...]
    files: tuple[str, ...]
    by_action: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    # (action, content_id) -> windows; looked up once per event.
    featured_index: Mapping[tuple[str, str], tuple[FeaturedWindow, ...]] = field(
        default_factory=dict
    )

    def factor(self, action: str, content_id: str | None, moment: datetime) -> int:
        if content_id is None or not self.featured_index:
            return 1
        windows = self.featured_index.get((action, content_id))
        if not windows:
            return 1
        return max((w.factor for w in windows if w.starts <= moment < w.ends), default=1)


_PATH = re.compile(r"\$\.(\w+)\[(\d+)\]((?:\.\w+|\[\d+\])*)")


def locate_problem(exc: msgspec.ValidationError, raw: Any) -> tuple[str | None, str | None, str]:
    """Turn msgspec's `... - at `$.rules[2].points`` into (rule id, field, message)."""
    text = str(exc)
    message, _, path = text.partition(" - at ")
    match = _PATH.search(path)
    if not match:
        return None, path.strip("`$.") or None, message
    section, index, rest = match.group(1), int(match.group(2)), match.group(3)
    rule: str | None = f"{section}[{index}]"
    entries = raw.get(section) if isinstance(raw, dict) else None
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        name = next(
            (entries[index][k] for k in ("id", "name", "metric") if k in entries[index]), None
        )
        if isinstance(name, str):
            rule = name
    return rule, rest.lstrip(".") or None, message


def decode_document(name: str, data: bytes, kind: type[T], what: str = "rule") -> T:
    """Decode one TOML file into `kind`; raises RuleSetInvalid naming the file, the entry
    (a rule, a board) and the field."""
    try:
        raw = msgspec.toml.decode(data)
    except msgspec.DecodeError as exc:
        raise RuleSetInvalid([RuleProblem(name, None, None, f"not TOML: {exc}", what)]) from exc
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        entry, fld, message = locate_problem(exc, raw)
        raise RuleSetInvalid([RuleProblem(name, entry, fld, message, what)]) from exc


def parse_rule_file(name: str, data: bytes) -> RuleFile:
    return decode_document(name, data, RuleFile)


def _check_rule(name: str, rule: Rule) -> list[RuleProblem]:
    problems: list[RuleProblem] = []

    def problem(fld: str, message: str) -> None:
        problems.append(RuleProblem(name, rule.id, fld, message))

    carried = REQUIRED_FIELDS[rule.action]
    if rule.distinct:
        for f in rule.distinct.by:
            if f not in carried:
                problem("distinct.by", f"`{f}` is not carried by action `{rule.action}`")
    if rule.exclude_self and rule.exclude_self.field not in carried:
        problem(
            "exclude_self.field",
            f"`{rule.exclude_self.field}` is not carried by action `{rule.action}`",
        )
    if rule.starts and rule.ends and rule.starts >= rule.ends:
        problem("ends", "`ends` must be after `starts`")
    if rule.streak:
        if not (rule.distinct and not rule.distinct.by and rule.distinct.within == "day"):
            problem("streak", 'a streak needs `distinct = { by = [], within = "day" }`')
        days = [m.days for m in rule.streak.milestones]
        if len(days) != len(set(days)):
            problem("streak.milestones", "two milestones name the same number of days")
    if len(rule.counts) != len(set(rule.counts)):
        problem("counts", "a counter is named twice")
    return problems


def build_rule_set(documents: Mapping[str, bytes]) -> RuleSet:  # noqa: PLR0912 - one pass reports every problem
    """Validate every document together and build the set, or raise with every problem."""
    problems: list[RuleProblem] = []
    parsed: list[tuple[str, RuleFile]] = []
    for name in sorted(documents):
        try:
            parsed.append((name, parse_rule_file(name, documents[name])))
        except RuleSetInvalid as exc:
            problems.extend(exc.problems)
    if not documents:
        problems.append(RuleProblem("<rules>", None, None, "no rule files"))

    rule_home: dict[str, str] = {}
    counter_home: dict[str, str] = {}
    streak_home: dict[str, str] = {}
    featured_home: dict[str, str] = {}
    rules: list[Rule] = []
    featured: list[Featured] = []
    for name, doc in parsed:
        for rule in doc.rules:
            problems.extend(_check_rule(name, rule))
            if rule.id in rule_home:
                problems.append(
                    RuleProblem(name, rule.id, "id", f"also defined in {rule_home[rule.id]}")
                )
            rule_home.setdefault(rule.id, name)
            # One rule owns each counter and each action's streak: two would count twice.
            for counter in rule.counts:
                if counter in counter_home:
                    problems.append(
                        RuleProblem(
                            name,
                            rule.id,
                            "counts",
                            f"`{counter}` is already counted by rule {counter_home[counter]!r}",
                        )
                    )
                counter_home.setdefault(counter, rule.id)
            if rule.streak:
                if rule.action in streak_home:
                    problems.append(
                        RuleProblem(
                            name,
                            rule.id,
                            "streak",
                            f"action `{rule.action}` already has a "
                            f"streak in rule {streak_home[rule.action]!r}",
                        )
                    )
                streak_home.setdefault(rule.action, rule.id)
            rules.append(rule)
        for item in doc.featured:
            if item.name in featured_home:
                problems.append(
                    RuleProblem(
                        name, item.name, "name", f"also defined in {featured_home[item.name]}"
                    )
                )
            featured_home.setdefault(item.name, name)
            if item.starts >= item.ends:
                problems.append(
                    RuleProblem(name, item.name, "ends", "`ends` must be after `starts`")
                )
            for action in item.actions:
                if not any(r.action == action for d in parsed for r in d[1].rules):
                    problems.append(
                        RuleProblem(name, item.name, "actions", f"no rule pays for `{action}`")
                    )
            featured.append(item)
    if problems:
        raise RuleSetInvalid(problems)

    digest = hashlib.sha256()
    for name in sorted(documents):
        digest.update(name.encode() + b"\0" + documents[name] + b"\0")
    index: dict[tuple[str, str], list[FeaturedWindow]] = {}
    for item in featured:
        window = FeaturedWindow(item.factor, item.starts, item.ends)
        for action in item.actions:
            for content_id in item.content_ids:
                index.setdefault((action, content_id), []).append(window)
    return RuleSet(
        version=digest.hexdigest()[:12],
        rules=tuple(rules),
        featured=tuple(featured),
        files=tuple(sorted(documents)),
        by_action={a: tuple(r for r in rules if r.action == a) for a in ACTIONS},
        featured_index={k: tuple(v) for k, v in index.items()},
    )


COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
