"""The rules engine: an event and the rule set become a plan; a plan and an informant's
state become a decision.

`plan_event` is pure and stateless, so it runs in the web worker. `decide` is the
reference semantics of applying a plan to state; the Redis adapter runs the same steps
atomically in Lua (`adapters/lua/apply.lua`), and a test holds the two equal over random
event sequences. Change both together.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import msgspec

from points_service.domain.actions import COUNTERS
from points_service.domain.calendar import Calendar
from points_service.domain.events import Event, body_hash
from points_service.domain.rules import COUNTER_INDEX, Rule, RuleSet

NO_RULE: Final = "no_active_rule"
LATE: Final = "late"
DUPLICATE: Final = "duplicate"
DAILY_CAP: Final = "daily_cap"
CREDITED: Final = "credited"
STREAK_BONUS: Final = "streak_bonus"


# The per-event values below never hold a reference cycle, so they are left out of the
# cyclic garbage collector (gc=False): a batch of 1,000 events made thousands of them and
# the collector's passes over them showed up in profiles.
class RulePlan(msgspec.Struct, omit_defaults=True, frozen=True, gc=False):
    """One rule's part of an event, with everything the state step needs."""

    r: str  # rule id
    p: int  # points, multiplier applied
    dk: str | None = None  # dedup member, None when the rule pays every event
    ever: bool = False  # dedup for ever rather than per programme day
    pc: int = -1  # daily points cap, -1 for none
    cc: int = -1  # daily count cap, -1 for none
    skip: str | None = None  # pays nothing whatever the state (self action, stale)
    ms: list[tuple[int, int]] = msgspec.field(default_factory=list)  # streak milestones
    ctr: list[int] = msgspec.field(default_factory=list)  # counter indexes


class EventPlan(msgspec.Struct, omit_defaults=True, frozen=True, gc=False):
    e: str  # event id
    h: str  # body hash
    a: str  # action
    day: int  # programme day number
    v: str  # rule-set version
    ik: int = 0  # index of the idempotency key (filled by the adapter)
    dk: int = 0  # index of the day key (filled by the adapter)
    late: bool = False
    dry: bool = False
    rules: list[RulePlan] = msgspec.field(default_factory=list)


class Line(msgspec.Struct, array_like=True, frozen=True, gc=False):
    rule: str | None
    points: int
    reason: str
    requested: int


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What an event earned; stored as the idempotency record and replayed verbatim."""

    h: str  # body hash of the event that was judged
    p: int  # points credited
    b: int  # balance after
    l: list[Line]  # noqa: E741 - the wire name is short on purpose (stored per event)
    c: list[int]  # counter increments, in COUNTERS order
    sk: int  # streak after
    v: str  # rule-set version
    day: int
    late: bool = False
    ps: tuple[int, int] | None = None  # streak and streak day before, when this changed them
    e: int | None = None  # experience (earned) after; None in decisions stored before it was

    def experience_reached(self) -> tuple[int, int] | None:
        """(experience before, after) when this decision raised it."""
        if self.e is None or self.p <= 0 or self.late:
            return None
        return self.e - self.p, self.e

    def counters(self) -> dict[str, int]:
        return dict(zip(COUNTERS, self.c, strict=True))


_TEMPLATES: dict[tuple[str, str], RulePlan] = {}


def _template(version: str, rule: Rule) -> RulePlan:
    """The parts of a rule's plan that no event changes, built once per rule set."""
    key = (version, rule.id)
    template = _TEMPLATES.get(key)
    if template is None:
        template = RulePlan(
            r=rule.id,
            p=rule.points,
            ever=rule.distinct is not None and rule.distinct.within == "ever",
            pc=-1 if rule.daily_points_cap is None else rule.daily_points_cap,
            cc=-1 if rule.daily_count_cap is None else rule.daily_count_cap,
            ms=[(m.days, m.bonus) for m in rule.streak.milestones] if rule.streak else [],
            ctr=[COUNTER_INDEX[c] for c in rule.counts],
        )
        _TEMPLATES[key] = template
    return template


def dedup_member(rule: Rule, event: Event) -> str | None:
    """What a distinct-by rule remembers of an event, None for a rule that pays every one."""
    distinct = rule.distinct
    if distinct is None:
        return None
    by = distinct.by
    if len(by) == 1:  # the usual case, spelled out: this runs for every event
        return rule.id + "\x1f" + (getattr(event, by[0]) or "")
    return "\x1f".join([rule.id, *[getattr(event, f) or "" for f in by]])


def plan_event(
    event: Event,
    rules: RuleSet,
    calendar: Calendar,
    now: datetime,
    grace: timedelta,
    *,
    replaying: bool = False,
) -> EventPlan:
    """Decide everything that does not depend on the informant's state.

    `replaying` is the history import: the event is judged as if it arrived when it
    occurred, so there is no grace window and "today" is the event's own day.
    """
    day = calendar.day_number(event.occurred_at)
    late = not replaying and now - event.occurred_at > grace
    today = day if replaying else calendar.day_number(now)
    factor = rules.factor(event.action, event.content_id, event.occurred_at)
    plans: list[RulePlan] = []
    for rule in rules.by_action.get(event.action, ()):
        if not rule.active_at(event.occurred_at):
            continue
        skip: str | None = None
        if rule.exclude_self and getattr(event, rule.exclude_self.field) == event.informant_id:
            skip = rule.exclude_self.reason
        elif rule.today_only and day != today:
            skip = f"stale_{event.action}"
        dk = dedup_member(rule, event)
        template = _template(rules.version, rule)
        plans.append(msgspec.structs.replace(template, p=template.p * factor, dk=dk, skip=skip))
    return EventPlan(
        e=event.event_id,
        h=body_hash(event),
        a=event.action,
        day=day,
        v=rules.version,
        late=late,
        dry=event.dry_run,
        rules=plans,
    )


@dataclass
class InformantState:
    """The reference model of one informant's Redis state."""

    balance: int = 0
    earned: int = 0
    streak: int = 0
    streak_day: int = 0
    days: dict[int, dict[str, int]] = field(default_factory=dict)
    ever: set[str] = field(default_factory=set)
    decisions: dict[str, Decision] = field(default_factory=dict)


def decide(plan: EventPlan, state: InformantState) -> tuple[Decision, bool]:  # noqa: PLR0912, PLR0915 - one function, step for step with apply.lua
    """Apply one plan to the state; returns the decision and whether it is a replay.

    A dry-run plan reads the state and changes nothing.
    """
    known = state.decisions.get(plan.e)
    if known is not None:
        return known, True
    write = not plan.dry
    day = state.days.setdefault(plan.day, {}) if write else dict(state.days.get(plan.day, {}))
    lines: list[Line] = []
    counters = [0, 0, 0]
    streak = state.streak
    streak_day = state.streak_day
    total = 0
    for rule in plan.rules:
        if plan.late:
            lines.append(Line(rule.r, 0, LATE, rule.p))
            continue
        if rule.skip is not None:
            lines.append(Line(rule.r, 0, rule.skip, rule.p))
            continue
        if rule.dk is not None:
            seen = rule.dk in state.ever if rule.ever else day.get("x:" + rule.dk, 0) == 1
            if seen:
                lines.append(Line(rule.r, 0, DUPLICATE, rule.p))
                continue
            if write:
                if rule.ever:
                    state.ever.add(rule.dk)
                else:
                    day["x:" + rule.dk] = 1
        count = day.get("n:" + rule.r, 0)
        used = day.get("p:" + rule.r, 0)
        points, reason = rule.p, CREDITED
        if 0 <= rule.cc <= count:
            points, reason = 0, DAILY_CAP
        elif 0 <= rule.pc < used + points:
            points, reason = max(0, rule.pc - used), DAILY_CAP
        day["n:" + rule.r] = count + 1
        day["p:" + rule.r] = used + points
        for index in rule.ctr:
            counters[index] += 1
        lines.append(Line(rule.r, points, reason, rule.p))
        total += points
        if rule.ms and plan.day > streak_day:
            streak = streak + 1 if streak_day == plan.day - 1 else 1
            streak_day = plan.day
            for days, bonus in rule.ms:
                if days == streak:
                    lines.append(Line(f"{rule.r}.streak_{days}", bonus, STREAK_BONUS, bonus))
                    total += bonus
    if not plan.rules:
        lines.append(Line(None, 0, LATE if plan.late else NO_RULE, 0))
    if not plan.late:
        day["a:" + plan.a] = day.get("a:" + plan.a, 0) + 1
        day["ap:" + plan.a] = day.get("ap:" + plan.a, 0) + total
    balance = state.balance + total
    before = (state.streak, state.streak_day)
    decision = Decision(
        h=plan.h,
        p=total,
        b=balance,
        l=lines,
        c=counters,
        sk=streak,
        v=plan.v,
        day=plan.day,
        late=plan.late,
        ps=before if (streak, streak_day) != before else None,
        e=state.earned + total,
    )
    if write:
        state.balance = balance
        state.earned += total
        state.streak, state.streak_day = streak, streak_day
        state.decisions[plan.e] = decision
    return decision, False


class Undo(msgspec.Struct, omit_defaults=True, frozen=True, gc=False):
    """What `undo.lua` takes back of one decision (see there)."""

    h: str
    a: str
    t: int
    late: bool = False
    ps: tuple[int, int] | None = None
    r: list[tuple[str, int, str, int]] = msgspec.field(default_factory=list)


FIRST_OCCURRENCE: Final = frozenset({CREDITED, DAILY_CAP})


def undo_of(plan: EventPlan, decision: Decision) -> Undo:
    """The state changes `decide` made for this plan: every rule whose line shows a first
    occurrence counted once, consumed its points and recorded its dedup member."""
    lines = {line.rule: line for line in decision.l}
    taken = []
    for rule in plan.rules:
        line = lines.get(rule.r)
        if line is not None and line.reason in FIRST_OCCURRENCE:
            taken.append((rule.r, line.points, rule.dk or "", 1 if rule.ever else 0))
    return Undo(h=decision.h, a=plan.a, t=decision.p, late=decision.late, ps=decision.ps, r=taken)
