"""An informant's Redis state put back from what the ledger kept, after Redis lost it.

The ledger holds every credited event with the decision it got, and the redemptions and
reversals as signed entries. That is all `apply.lua` needs again:

- balance and earned: the sums of the informant's entries (the `balances` row);
- the streak: the last event that moved it says where it went;
- the for-ever dedup members, and the day counters (`a:` `ap:` `n:` `p:` `x:`) of the
  days the grace window still reaches: every rule line a decision shows as a first
  occurrence (counted, consumed its points, remembered its dedup member), exactly as
  `engine.undo_of` reads them.

Dedup members are made again from the stored event through the live rules. A rule that
is no longer live neither pays nor deduplicates, so its members are not needed; a rule
id whose `distinct` keys changed since is remembered by its new keys.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from points_service.domain.engine import (
    FIRST_OCCURRENCE,
    Decision,
    InformantState,
    dedup_member,
)
from points_service.domain.events import Event
from points_service.domain.profiles import Profile
from points_service.domain.rules import RuleSet

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PastEvent:
    """A credited event as the ledger kept it."""

    event: Event
    decision: Decision


@dataclass(frozen=True, slots=True)
class Totals:
    balance: int = 0
    earned: int = 0


@dataclass(frozen=True, slots=True)
class History:
    """What the ledger kept of some informants (by id; absent: nothing)."""

    past: dict[str, list[PastEvent]]
    totals: dict[str, Totals]
    profiles: dict[str, Profile]


@dataclass(frozen=True, slots=True)
class Restored:
    """What goes back into Redis for one informant."""

    state: InformantState
    profile: Profile | None
    history: bool  # whether the ledger knew the informant (else: a new one)
    days: range  # the programme days whose counters these are (older ones expired)


def first_kept_day(today: int, day_ttl: timedelta) -> int:
    """The oldest programme day whose counters Redis would still hold."""
    return today - -(-day_ttl // _DAY)


def long_memory_actions(rules: RuleSet) -> frozenset[str]:
    """Actions whose old events still matter: dedup for ever, or a streak."""
    return frozenset(
        r.action
        for r in rules.rules
        if r.streak is not None or (r.distinct is not None and r.distinct.within == "ever")
    )


def state_from_history(
    past: Iterable[PastEvent], totals: Totals, rules: RuleSet, first_day: int
) -> InformantState:
    """The state `decide` would have left after these events (any order), for the days
    from `first_day` on; older days' counters are not kept (Redis lets them expire)."""
    state = InformantState(balance=totals.balance, earned=totals.earned)
    live = {r.id: r for r in rules.rules}
    for item in past:
        decision = item.decision
        if decision.late:
            continue  # a late event changed nothing but the balance
        if decision.ps is not None and decision.day > state.streak_day:
            state.streak, state.streak_day = decision.sk, decision.day
        day = state.days.setdefault(decision.day, {}) if decision.day >= first_day else None
        if day is not None:
            action = item.event.action
            day["a:" + action] = day.get("a:" + action, 0) + 1
            day["ap:" + action] = day.get("ap:" + action, 0) + decision.p
        for line in decision.l:
            if line.rule is None or line.reason not in FIRST_OCCURRENCE:
                continue
            if day is not None:
                day["n:" + line.rule] = day.get("n:" + line.rule, 0) + 1
                day["p:" + line.rule] = day.get("p:" + line.rule, 0) + line.points
            rule = live.get(line.rule)
            member = None if rule is None else dedup_member(rule, item.event)
            if rule is None or rule.distinct is None or member is None:
                continue
            if rule.distinct.within == "ever":
                state.ever.add(member)
            elif day is not None:
                day["x:" + member] = 1
    return state
