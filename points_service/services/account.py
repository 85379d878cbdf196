"""An informant's account: balance and today's progress, the ledger, spending, reversals."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from points_service.domain.actions import ACTIONS
from points_service.domain.calendar import Calendar, day_from_number
from points_service.domain.catalogue import (
    ActionToday as ActionProgress,
)
from points_service.domain.catalogue import (
    Campaigns,
    StreakToday,
    actions_today,
    campaigns_now,
    streak_today,
)
from points_service.domain.ledger import LedgerEntry, RedemptionWrite, ReversalWrite, WriteStatus
from points_service.domain.levels import ONE_LEVEL, Levels, Standing
from points_service.domain.rules import RuleSet
from points_service.domain.state import Overdraw
from points_service.services.errors import Conflict, NotFound
from points_service.services.leaderboards import Leaderboards
from points_service.services.ports import Ledger, StateStore
from points_service.services.rulebook import RuleBook


@dataclass(frozen=True, slots=True)
class ActionToday:
    count: int
    points: int


@dataclass(frozen=True, slots=True)
class PointsView:
    informant_id: str
    balance: int
    earned: int
    day: date
    today: dict[str, ActionToday]
    streak: int  # consecutive days up to today or yesterday; 0 once a day is missed
    last_sign_in: date | None
    level: Standing  # of `earned`, the experience


@dataclass(frozen=True, slots=True)
class TodayView:
    """An informant's programme day against the live rules (GET /today)."""

    informant_id: str
    day: date
    balance: int
    rule_version: str
    actions: list[ActionProgress]
    streak: StreakToday
    campaigns: Campaigns
    level: Standing


@dataclass(frozen=True, slots=True)
class CatalogueView:
    """The live rules and levels as of `now` (GET /v1/rules)."""

    rules: RuleSet
    levels: Levels
    now: datetime
    day: date


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[LedgerEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Redeemed:
    redemption_id: str
    informant_id: str
    points: int
    item: str
    balance: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Reversed:
    event_id: str
    informant_id: str
    points: int
    balance: int
    replayed: bool


def redemption_hash(informant_id: str, points: int, item: str) -> str:
    return hashlib.blake2b(
        f"{informant_id}\x1f{points}\x1f{item}".encode(), digest_size=12
    ).hexdigest()


class Accounts:
    def __init__(
        self,
        state: StateStore,
        ledger: Ledger,
        calendar: Calendar,
        clock: Callable[[], datetime],
        rules: RuleBook,
        boards: Leaderboards | None = None,
        levels: Levels = ONE_LEVEL,
    ) -> None:
        self.levels = levels
        self._boards = boards
        self._state = state
        self._ledger = ledger
        self._calendar = calendar
        self._clock = clock
        self._rules = rules  # its live version is stamped on every ledger entry

    async def points(self, informant_id: str) -> PointsView:
        today = self._calendar.day_number(self._clock())
        snap = await self._state.snapshot(informant_id, today)
        streak = snap.streak if snap.streak_day >= today - 1 else 0
        return PointsView(
            informant_id=informant_id,
            balance=snap.balance,
            earned=snap.earned,
            day=day_from_number(today),
            today={
                a: ActionToday(snap.today.get("a:" + a, 0), snap.today.get("ap:" + a, 0))
                for a in ACTIONS
            },
            streak=streak,
            last_sign_in=day_from_number(snap.streak_day) if snap.streak_day else None,
            level=self.levels.standing(max(0, snap.earned)),
        )

    def catalogue(self) -> CatalogueView:
        now = self._clock()
        day = day_from_number(self._calendar.day_number(now))
        return CatalogueView(self._rules.current, self.levels, now, day)

    async def today(self, informant_id: str) -> TodayView:
        """Earned today, caps and what is left per action, the streak and its next
        milestone, the campaigns running: one Redis round trip (the state and the day)."""
        now = self._clock()
        today = self._calendar.day_number(now)
        snap = await self._state.snapshot(informant_id, today)
        rules = self._rules.current
        return TodayView(
            informant_id=informant_id,
            day=day_from_number(today),
            balance=snap.balance,
            rule_version=rules.version,
            actions=actions_today(rules, snap.today, now),
            streak=streak_today(rules, snap.streak, snap.streak_day, today, now),
            campaigns=campaigns_now(rules, now),
            level=self.levels.standing(max(0, snap.earned)),
        )

    async def level(self, informant_id: str) -> Standing:
        """The level of the informant's experience (earned points) now."""
        today = self._calendar.day_number(self._clock())
        snap = await self._state.snapshot(informant_id, today)
        return self.levels.standing(max(0, snap.earned))

    async def ledger(self, informant_id: str, cursor: str | None, limit: int) -> LedgerPage:
        before: int | None = None
        if cursor is not None:
            try:
                before = int(cursor)
            except ValueError:
                raise NotFound(f"cursor {cursor!r} is not one this service issued") from None
        entries = await self._ledger.entries(informant_id, before=before, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return LedgerPage(entries, str(entries[-1].id) if more else None)

    async def redeem(
        self, informant_id: str, redemption_id: str, points: int, item: str
    ) -> Redeemed:
        body = redemption_hash(informant_id, points, item)
        # Redis keeps redemption records for a while; the ledger keeps them for ever.
        known = await self._ledger.entry("redemption", redemption_id)
        if known is not None:
            if known.informant_id != informant_id or known.body_hash != body:
                raise Conflict(
                    "redemption_id_reused",
                    f"redemption_id {redemption_id!r} was already used for another redemption",
                    field="redemption_id",
                )
            balance = await self._state.balance(informant_id)
            return Redeemed(redemption_id, informant_id, points, item, balance, True)
        result = await self._state.redeem(informant_id, redemption_id, points, body)
        if isinstance(result, Overdraw):
            raise Conflict(
                "insufficient_balance",
                f"balance {result.balance} is less than {points}",
                field="points",
            )
        spend, _ = result  # a Redis-level replay still needs its commit (see below)
        if spend.h != body:
            raise Conflict(
                "redemption_id_reused",
                f"redemption_id {redemption_id!r} was already used for another redemption",
                field="redemption_id",
            )
        [status] = await self._ledger.commit(
            [
                RedemptionWrite(
                    informant_id,
                    redemption_id,
                    points,
                    item,
                    body,
                    self._clock(),
                    self._rules.current.version,
                )
            ]
        )
        return Redeemed(
            redemption_id,
            informant_id,
            points,
            item,
            spend.b,
            status is WriteStatus.EXISTING,
        )

    async def reverse(self, event_id: str, reason: str) -> Reversed:
        record = await self._ledger.event(event_id)
        if record is None:
            raise NotFound(f"no recorded event {event_id!r}")
        # Redis keeps reversal records for a while; the ledger keeps them for ever (a
        # reversal Redis forgot, or lost, must not claw back twice).
        known = await self._ledger.entry("reversal", event_id)
        if known is not None:
            balance = await self._state.balance(record.informant_id)
            return Reversed(event_id, record.informant_id, -known.points, balance, True)
        clawback, _ = await self._state.reverse(record.informant_id, event_id, record.points)
        [status] = await self._ledger.commit(
            [
                ReversalWrite(
                    event_id,
                    record.informant_id,
                    record.points,
                    reason,
                    self._clock(),
                    self._rules.current.version,
                )
            ]
        )
        if status is WriteStatus.INSERTED and not record.late and self._boards is not None:
            await self._boards.reversed(
                record.informant_id,
                record.placement,
                record.day,
                record.points,
                list(record.counters),
            )
        return Reversed(
            event_id,
            record.informant_id,
            clawback.p,
            clawback.b,
            status is WriteStatus.EXISTING,
        )
