"""Record events: judge them against the live rules, apply atomically, commit durably."""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import msgspec

from points_service.domain.boards import Placement
from points_service.domain.calendar import Calendar, day_from_number
from points_service.domain.engine import Decision, EventPlan, Line, plan_event
from points_service.domain.events import Event, EventInvalid, check_event
from points_service.domain.ledger import CommitUnknown, CreditWrite, WriteStatus
from points_service.domain.levels import ONE_LEVEL, Level, Levels, Standing
from points_service.domain.state import Applied, RateWindow, Throttled
from points_service.services.errors import Conflict, InvalidInput, TooMany
from points_service.services.leaderboards import Leaderboards
from points_service.services.ports import Ledger, NullObserver, Observer, StateStore
from points_service.services.rulebook import RuleBook


class Credited:
    """An event's answer, read off its decision when a field is asked for: the API asks
    for all of them, an import only whether it was a replay and what it earned."""

    __slots__ = ("_decision", "_event", "_levels", "replayed")

    def __init__(self, event: Event, decision: Decision, replayed: bool, levels: Levels) -> None:
        self._event = event
        self._decision = decision
        self.replayed = replayed
        self._levels = levels

    def __repr__(self) -> str:
        return f"Credited({self.event_id!r}, points={self.points}, replayed={self.replayed})"

    @property
    def event_id(self) -> str:
        return self._event.event_id

    @property
    def informant_id(self) -> str:
        return self._event.informant_id

    @property
    def action(self) -> str:
        return self._event.action

    @property
    def dry_run(self) -> bool:
        return self._event.dry_run

    @property
    def points(self) -> int:
        return self._decision.p

    @property
    def balance(self) -> int:
        return self._decision.b

    @property
    def lines(self) -> list[Line]:
        return self._decision.l

    @property
    def counters(self) -> dict[str, int]:
        return self._decision.counters()

    @property
    def streak(self) -> int:
        return self._decision.sk

    @property
    def rule_version(self) -> str:
        return self._decision.v

    @property
    def day(self) -> date:
        return day_from_number(self._decision.day)

    @property
    def late(self) -> bool:
        return self._decision.late

    @property
    def level(self) -> Standing | None:
        """After this event (None: decided before levels were)."""
        e = self._decision.e
        return None if e is None else self._levels.standing(e)

    @property
    def levels_reached(self) -> tuple[Level, ...]:
        """Reached by this event."""
        return _reached(self._levels, self._decision)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One batch item refused in place; `status` is what the single-event API answers."""

    status: int
    code: str
    field: str | None
    message: str
    event_id: str | None = None
    retry_after: int | None = None


def _reached(levels: Levels, decision: Decision) -> tuple[Level, ...]:
    change = decision.experience_reached()
    return levels.crossed(*change) if change else ()


def level_marks(levels: Levels, decision: Decision) -> tuple[tuple[int, str], ...]:
    return tuple((x.level, x.title_zh) for x in _reached(levels, decision))


def outcome_of(decision: Decision) -> str:
    if decision.late:
        return "late"
    if decision.p > 0:
        return "credited"
    return decision.l[0].reason if decision.l else "no_points"


_stored = msgspec.json.Decoder(Decision)


def _rejected(conflict: Conflict, event_id: str) -> Rejected:
    return Rejected(409, conflict.code, conflict.field, conflict.message, event_id)


# Writes of unknown outcome kept to be made again (beyond it: left to the retries).
MAX_UNKNOWN = 10_000
# An informant's new events are counted in windows of this many seconds.
RATE_WINDOW_SECONDS = 60


def _throttled(rate: RateWindow) -> TooMany:
    return TooMany(
        f"this informant sent more than {rate.limit} events in {RATE_WINDOW_SECONDS} s; "
        f"send it again in {rate.retry_after} s",
        rate.retry_after,
        field="informant_id",
    )


def _reused(event_id: str) -> Conflict:
    return Conflict(
        "event_id_reused",
        f"event_id {event_id!r} was already used for a different event",
        field="event_id",
    )


class Credits:
    def __init__(
        self,
        state: StateStore,
        ledger: Ledger,
        rules: RuleBook,
        calendar: Calendar,
        grace: timedelta,
        clock: Callable[[], datetime],
        observer: Observer | None = None,
        boards: Leaderboards | None = None,
        per_informant: int = 0,
        levels: Levels = ONE_LEVEL,
    ) -> None:
        """`per_informant`: new events one informant may send per rate window (0: no
        limit); history being replayed is never limited."""
        self._per_informant = per_informant
        self.levels = levels
        # Writes whose commit had an unknown outcome, kept in Redis: committed here once
        # the database answers again (settle_unknown), unless a retry does it first.
        self._unknown: dict[str, tuple[CreditWrite, bool]] = {}
        self._boards = boards
        self._state = state
        self._ledger = ledger
        self._rules = rules
        self._calendar = calendar
        self._grace = grace
        self._clock = clock
        self._observer = observer or NullObserver()

    def _plan(self, event: Event, now: datetime, replaying: bool) -> EventPlan:
        # History too: a share without its content, or an event still to come, is refused
        # with its field rather than judged.
        try:
            check_event(event, now)
        except EventInvalid as exc:
            raise InvalidInput(exc.field, exc.message) from None
        return plan_event(
            event, self._rules.current, self._calendar, now, self._grace, replaying=replaying
        )

    def plan_history(self, event: Event, now: datetime) -> EventPlan:
        """A past event's plan, judged as if it arrived when it occurred (an import).
        Raises InvalidInput (422) for an event that cannot be judged."""
        return self._plan(event, now, True)

    @property
    def observer(self) -> Observer:
        return self._observer

    @property
    def boards(self) -> Leaderboards | None:
        return self._boards

    def _rate(self, now: datetime, replaying: bool) -> RateWindow | None:
        if replaying or not self._per_informant:
            return None
        return RateWindow.at(self._per_informant, RATE_WINDOW_SECONDS, now.timestamp())

    async def record(self, event: Event, *, replaying: bool = False) -> Credited:
        """One event. Raises InvalidInput (422), Conflict (409) or TooMany (429)."""
        now = self._clock()
        plan = self._plan(event, now, replaying)
        rate = self._rate(now, replaying)
        [applied] = await self._state.apply(event.informant_id, [plan], rate)
        if isinstance(applied, Throttled):
            assert rate is not None
            raise _throttled(rate)
        if applied.decision.h != plan.h:
            raise _reused(event.event_id)
        if plan.dry:
            return Credited(event, applied.decision, applied.replayed, self.levels)
        # A replay commits too: the first delivery may have died before its commit.
        fresh = [] if applied.replayed else [(event.informant_id, plan, applied.decision)]
        write = CreditWrite(
            event,
            applied.decision,
            now,
            imported=replaying,
            placement=applied.placement,
            levels=level_marks(self.levels, applied.decision),
        )
        try:
            [status] = await self._ledger.commit([write])
        except CommitUnknown:
            self._hold([(write, applied.listed)])
            raise
        except Exception:
            await self._take_back(fresh)
            raise
        if status is not WriteStatus.INSERTED:
            # Redis judged it anew, but the ledger had it (or another event has the id):
            # what Redis just applied was never this answer's, so take it back.
            await self._take_back(fresh)
        credited = await self._settle(event, applied.decision, applied.replayed, status)
        if not credited.replayed:
            self._observer.event_judged(event.action, outcome_of(applied.decision), credited.points)
        if status is WriteStatus.INSERTED and applied.listed and self._boards is not None:
            await self._boards.credited([(event.informant_id, applied.placement, applied.decision)])
        return credited

    def _hold(self, writes: Sequence[tuple[CreditWrite, bool]]) -> None:
        """Writes that may or may not have committed: what Redis judged stays (taking
        it back could let later events pass a cap a committed one reached), and the
        write is made again when the database answers (domain/ledger.py)."""
        for write, listed in writes:
            if len(self._unknown) < MAX_UNKNOWN:
                self._unknown[write.event.event_id] = (write, listed)

    async def settle_unknown(self) -> int:
        """Commit the writes whose outcome was unknown (a retry may have done it: then
        the ledger has it already); returns how many were written only now."""
        if not self._unknown:
            return 0
        held = list(self._unknown.values())
        statuses = await self._ledger.commit([w for w, _ in held])
        boarded = []
        for (write, listed), status in zip(held, statuses, strict=True):
            self._unknown.pop(write.event.event_id, None)
            if status is WriteStatus.INSERTED and listed:
                boarded.append((write.event.informant_id, write.placement, write.decision))
        if boarded and self._boards is not None:
            await self._boards.credited(boarded)
        return sum(1 for s in statuses if s is WriteStatus.INSERTED)

    async def _take_back(self, decisions: Sequence[tuple[str, EventPlan, Decision]]) -> None:
        """Undo in Redis what decisions that will not be acknowledged changed, so that
        nothing is half-applied. Best effort: if Redis fails too, the decision stays held
        under its event id and the client's retry commits it."""
        outcomes = await asyncio.gather(
            *(self._state.undo(i, p, d) for i, p, d in decisions), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                self._observer.undo_failed(outcome)

    async def _settle(
        self, event: Event, decision: Decision, held: bool, status: WriteStatus
    ) -> Credited:
        """The answer once the ledger has spoken. It is a replay only when an answer was
        given before, which is when the ledger already held the event; if Redis no longer
        held the decision (`held` false: its record expired after the grace window, or
        Redis lost it), the first answer is the one in the ledger."""
        if status is WriteStatus.CONFLICT:
            raise _reused(event.event_id)
        if status is WriteStatus.INSERTED:
            return Credited(event, decision, False, self.levels)
        if not held:
            record = await self._ledger.event(event.event_id)
            assert record is not None, "the ledger reported the event as present"
            decision = _stored.decode(record.decision)
        return Credited(event, decision, True, self.levels)

    def _plan_batch(
        self,
        items: Sequence[Event | Rejected],
        now: datetime,
        replaying: bool,
        results: list[Credited | Rejected | None],
    ) -> dict[str, list[tuple[int, Event, EventPlan]]]:
        """Plans grouped by informant; refusals go straight into `results`."""
        groups: dict[str, list[tuple[int, Event, EventPlan]]] = {}
        for position, item in enumerate(items):
            if isinstance(item, Rejected):
                results[position] = item
                continue
            try:
                plan = self._plan(item, now, replaying)
            except InvalidInput as exc:
                results[position] = Rejected(422, "invalid", exc.field, exc.message, item.event_id)
                continue
            groups.setdefault(item.informant_id, []).append((position, item, plan))
        return groups

    async def _answer_recorded(
        self,
        groups: dict[str, list[tuple[int, Event, EventPlan]]],
        results: list[Credited | Rejected | None],
    ) -> None:
        """Answer from the ledger the items it holds already, before Redis judges any:
        judged anew (Redis forgets a decision after the grace window, and it never saw
        one made for another informant), an item the ledger then refuses would have
        weighed on the caps and streak of its informant's later items in the batch."""
        ids = [e.event_id for group in groups.values() for _, e, plan in group if not plan.dry]
        recorded = await self._ledger.recorded(ids) if ids else {}
        if not recorded:
            return
        for informant, group in list(groups.items()):
            kept = []
            for position, event, plan in group:
                held = None if plan.dry else recorded.get(event.event_id)
                if held is None:
                    kept.append((position, event, plan))
                elif held[0] != plan.h:
                    results[position] = _rejected(_reused(event.event_id), event.event_id)
                else:
                    results[position] = Credited(event, _stored.decode(held[1]), True, self.levels)
            if kept:
                groups[informant] = kept
            else:
                del groups[informant]

    async def record_batch(
        self, items: Sequence[Event | Rejected], *, replaying: bool = False
    ) -> list[Credited | Rejected]:
        """Many events; each valid one is credited, each invalid one is answered in place.

        Redis sees one script call per informant, all pipelined; the ledger commits the
        whole batch in one transaction.
        """
        now = self._clock()
        results: list[Credited | Rejected | None] = [None] * len(items)
        groups = self._plan_batch(items, now, replaying, results)
        await self._answer_recorded(groups, results)
        rate = self._rate(now, replaying)
        applied = await self._state.apply_groups(
            {informant: [p for _, _, p in group] for informant, group in groups.items()}, rate
        )
        batch = _Batch.of(groups, applied, rate, now, replaying, results, self.levels)
        try:
            statuses = await self._ledger.commit(batch.writes) if batch.writes else []
        except CommitUnknown:
            pairs = zip(batch.pending, batch.writes, strict=True)
            self._hold([(w, position in batch.listed) for (position, *_), w in pairs])
            raise
        except Exception:
            await self._take_back(list(batch.fresh.values()))
            raise
        judged: dict[tuple[str, str], tuple[int, int]] = {}
        boarded = []
        await self._take_back(
            [
                batch.fresh[position]
                for (position, *_), status in zip(batch.pending, statuses, strict=True)
                if position in batch.fresh and status is not WriteStatus.INSERTED
            ]
        )
        for (position, event, decision, held), status in zip(batch.pending, statuses, strict=True):
            try:
                credited = await self._settle(event, decision, held, status)
            except Conflict as conflict:
                results[position] = _rejected(conflict, event.event_id)
                continue
            if status is WriteStatus.INSERTED and position in batch.listed:
                boarded.append((event.informant_id, batch.listed[position], decision))
            if not credited.replayed:
                key = (event.action, outcome_of(decision))
                count, points = judged.get(key, (0, 0))
                judged[key] = (count + 1, points + decision.p)
            results[position] = credited
        for (action, outcome), (count, points) in judged.items():
            self._observer.event_judged(action, outcome, points, count)
        if boarded and self._boards is not None:
            await self._boards.credited(boarded)
        return [r for r in results if r is not None]


class _Batch:
    """The writes of a batch, and which of them Redis applied just now (to take back if
    the commit fails)."""

    def __init__(self) -> None:
        self.writes: list[CreditWrite] = []
        self.pending: list[tuple[int, Event, Decision, bool]] = []
        self.fresh: dict[int, tuple[str, EventPlan, Decision]] = {}
        self.listed: dict[int, Placement] = {}  # positions whose informant is on the boards

    @classmethod
    def of(
        cls,
        groups: dict[str, list[tuple[int, Event, EventPlan]]],
        applied: dict[str, list[Applied | Throttled]],
        rate: RateWindow | None,
        now: datetime,
        replaying: bool,
        results: list[Credited | Rejected | None],
        levels: Levels,
    ) -> "_Batch":
        """The writes of what Redis applied; refusals and dry runs go into `results`."""
        batch = cls()
        for informant, group in groups.items():
            for (position, event, plan), result in zip(group, applied[informant], strict=True):
                if isinstance(result, Throttled):
                    assert rate is not None
                    refusal = _throttled(rate)
                    results[position] = Rejected(
                        429,
                        refusal.code,
                        refusal.field,
                        refusal.message,
                        event.event_id,
                        refusal.retry_after,
                    )
                elif result.decision.h != plan.h:
                    results[position] = _rejected(_reused(event.event_id), event.event_id)
                elif plan.dry:
                    results[position] = Credited(event, result.decision, result.replayed, levels)
                else:
                    batch.add(position, event, plan, result, now, replaying, levels)
        return batch

    def add(
        self,
        position: int,
        event: Event,
        plan: EventPlan,
        result: Applied,
        now: datetime,
        replaying: bool,
        levels: Levels,
    ) -> None:
        self.writes.append(
            CreditWrite(
                event,
                result.decision,
                now,
                imported=replaying,
                placement=result.placement,
                levels=level_marks(levels, result.decision),
            )
        )
        if result.listed:
            self.listed[position] = result.placement
        self.pending.append((position, event, result.decision, result.replayed))
        if not result.replayed:
            self.fresh[position] = (event.informant_id, plan, result.decision)
