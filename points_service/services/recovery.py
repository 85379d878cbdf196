"""Informants' Redis state put back from the ledger: lazily, one informant at a time as
the state store finds one missing (`load`), or for everyone at once (`rebuild`), and
compared with the ledger (`reconcile`)."""

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from points_service.domain.calendar import Calendar, day_from_number
from points_service.domain.engine import InformantState
from points_service.domain.profiles import Profile
from points_service.domain.recovery import (
    Restored,
    Totals,
    first_kept_day,
    long_memory_actions,
    state_from_history,
)
from points_service.domain.state import StoredState
from points_service.services.ports import StateHistory, StateStore
from points_service.services.rulebook import RuleBook

CHUNK = 500  # informants read from the ledger at once
_NOTHING = StoredState(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class StateRebuild:
    informants: int  # informants the ledger or the profiles know
    written: int  # states written
    kept: int  # states Redis held already (left as they were; see `rebuild`)


@dataclass(frozen=True, slots=True)
class StateDifference:
    informant_id: str
    redis: StoredState | None  # None: Redis holds no state (it is put back when used)
    ledger: StoredState


class StateRecovery:
    def __init__(
        self,
        history: StateHistory,
        state: StateStore,
        rules: RuleBook,
        calendar: Calendar,
        day_ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._history = history
        self._state = state
        self._rules = rules
        self._calendar = calendar
        self._day_ttl = day_ttl
        self._clock = clock

    async def load(self, ids: Sequence[str]) -> dict[str, Restored]:
        """Each informant's state as the ledger supports it (empty for one it does not
        know), for the days Redis would still hold, with the live rules' dedup keys."""
        rules = self._rules.current
        days = self.kept_days()
        first = days.start
        kept = await self._history.read(
            ids, since=day_from_number(first), actions=long_memory_actions(rules)
        )
        restored = {}
        for i in ids:
            past = kept.past.get(i, [])
            totals = kept.totals.get(i)
            restored[i] = Restored(
                state_from_history(past, totals or Totals(), rules, first),
                kept.profiles.get(i),
                bool(past) or totals is not None,
                days,
            )
        return restored

    def kept_days(self) -> range:
        """The programme days whose counters Redis holds (tomorrow too: events may be
        5 minutes early)."""
        today = self._calendar.day_number(self._clock())
        return range(first_kept_day(today, self._day_ttl), today + 2)

    async def unknown(self, ids: Sequence[str]) -> dict[str, Profile | None]:
        """The profiles of those informants that neither the ledger nor Redis knows of
        (no event, no balance, no state): their history can be judged from nothing."""
        newcomers = await self._history.newcomers(ids)
        held = await self._state.stored(list(newcomers))
        return {i: profile for i, profile in newcomers.items() if held[i] is None}

    async def put_back(
        self,
        states: Mapping[str, tuple[InformantState, Profile | None]],
        reload: Sequence[str] = (),
    ) -> int:
        """Write states worked out elsewhere (a bulk import's) into Redis for informants
        it holds none for. One that got a state meanwhile (a live event came first), and
        each of `reload`, is put back from the ledger instead, over what Redis holds;
        returns how many were."""
        days = self.kept_days()
        written = set(
            await self._state.restore(
                # history=False: informants new to Redis (and counted so), not a loss repaired
                {i: Restored(s, p, False, days) for i, (s, p) in states.items()}
            )
        )
        again = [*reload, *(i for i in states if i not in written)]
        if again:
            await self._state.restore(await self.load(again), force=True)
        return len(again)

    async def _chunks(self) -> AsyncIterator[list[str]]:
        chunk: list[str] = []
        async for informant_id in self._history.informant_ids():
            chunk.append(informant_id)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def rebuild(
        self, *, force: bool = False, progress: Callable[[int], None] | None = None
    ) -> StateRebuild:
        """Put back every known informant's state that Redis does not hold. `force`
        overwrites the states Redis holds too: only with the service stopped, since a
        credit between the ledger read and the write would be lost from Redis."""
        informants = written = 0
        async for chunk in self._chunks():
            restored = await self.load(chunk)
            written += len(await self._state.restore(restored, force=force))
            informants += len(chunk)
            if progress is not None:
                progress(informants)
        return StateRebuild(informants, written, informants - written)

    async def reconcile(self) -> list[StateDifference]:
        """Informants whose balance, earned points or streak in Redis differ from what
        the ledger supports. Credits in flight show up as passing differences."""
        differences = []
        async for chunk in self._chunks():
            restored = await self.load(chunk)
            held = await self._state.stored(chunk)
            for informant_id in chunk:
                s = restored[informant_id].state
                truth = StoredState(s.balance, s.earned, s.streak, s.streak_day)
                redis = held[informant_id]
                if redis is None and truth == _NOTHING:
                    continue  # nothing to hold yet
                if redis != truth:
                    differences.append(StateDifference(informant_id, redis, truth))
        return differences
