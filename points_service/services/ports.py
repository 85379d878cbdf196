"""The storage the use cases need, as small Protocols the adapters satisfy."""

from collections.abc import AsyncIterator, Awaitable, Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from points_service.domain.boards import Around, Board, BoardWrite, DayTotal, Shown, Window
from points_service.domain.draws import (
    Commitment,
    DailyLimitReached,
    Draw,
    DrawRecord,
    Hold,
    Stock,
    Taken,
)
from points_service.domain.engine import Decision, EventPlan
from points_service.domain.ledger import (
    CreditWrite,
    EventRecord,
    LedgerEntry,
    Write,
    WriteStatus,
)
from points_service.domain.profiles import Profile
from points_service.domain.recovery import History, Restored
from points_service.domain.state import (
    Applied,
    Clawback,
    Overdraw,
    PointsSnapshot,
    RateWindow,
    Spend,
    StoredState,
    Throttled,
)


class StateStore(Protocol):
    async def apply(
        self, informant_id: str, plans: Sequence[EventPlan], rate: RateWindow | None = None
    ) -> list[Applied | Throttled]: ...

    async def apply_groups(
        self, groups: Mapping[str, Sequence[EventPlan]], rate: RateWindow | None = None
    ) -> dict[str, list[Applied | Throttled]]: ...

    async def redeem(
        self, informant_id: str, redemption_id: str, points: int, body_hash: str
    ) -> tuple[Spend, bool] | Overdraw: ...

    async def reverse(
        self, informant_id: str, event_id: str, points: int
    ) -> tuple[Clawback, bool]: ...

    async def snapshot(self, informant_id: str, day: int) -> PointsSnapshot: ...

    async def balance(self, informant_id: str) -> int: ...

    async def undo(self, informant_id: str, plan: EventPlan, decision: Decision) -> bool: ...

    async def ping(self) -> bool: ...

    async def restore(
        self, restored: Mapping[str, Restored], *, force: bool = False
    ) -> list[str]: ...

    async def stored(self, ids: Sequence[str]) -> dict[str, StoredState | None]: ...


class StateHistory(Protocol):
    """What the ledger kept of informants, to put their state back."""

    async def read(
        self, ids: Sequence[str], *, since: date, actions: Collection[str]
    ) -> History: ...

    def informant_ids(self) -> AsyncIterator[str]: ...

    async def newcomers(self, ids: Sequence[str]) -> dict[str, Profile | None]:
        """The profiles of those informants the ledger holds nothing of."""
        ...


class Ledger(Protocol):
    async def commit(self, writes: Sequence[Write]) -> list[WriteStatus]: ...

    async def event(self, event_id: str) -> EventRecord | None: ...

    async def commit_new(self, writes: Sequence[CreditWrite]) -> list[WriteStatus]:
        """`commit` for events and informants the ledger holds nothing of (faster)."""
        ...

    async def recorded(self, event_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """The body hash and the stored decision of each of these event ids the ledger
        holds."""
        ...

    async def entry(self, kind: str, ref_id: str) -> LedgerEntry | None: ...

    async def entries(
        self, informant_id: str, *, before: int | None, limit: int
    ) -> list[LedgerEntry]: ...

    async def ping(self) -> None: ...


class BoardStore(Protocol):
    """The leaderboards (Redis sorted sets) and the profile fields they display."""

    @property
    def ordered(self) -> bool:
        """Whether this process's writes reach the store before its later reads."""
        ...

    def add(self, increments: Mapping[Board, Mapping[str, int]]) -> Awaitable[Any]:
        """Send the increments now; the awaitable is done once they are applied."""
        ...

    async def take_back(self, informant_id: str, writes: Sequence[BoardWrite]) -> None: ...

    async def remove(self, informant_id: str, boards: Iterable[Board]) -> None: ...

    async def put(self, informant_id: str, scores: Mapping[Board, int]) -> None: ...

    async def window(self, board: Board, start: int, count: int) -> Window: ...

    async def around(self, board: Board, informant_id: str, around: int) -> Around: ...

    async def scores(
        self, board: Board, ids: Sequence[str]
    ) -> tuple[int, list[tuple[int, int] | None]]: ...

    async def display(self, ids: Sequence[str]) -> dict[str, Shown]: ...

    async def replace(self, boards: Sequence[tuple[Board, Mapping[str, int]]]) -> int: ...

    async def boards(self, *, scan: bool = False) -> list[Board]:
        """The boards the registry names (every board write names its board there, in
        the same round trip); `scan`: those a walk of the whole store finds."""
        ...

    async def members(self, board: Board) -> dict[str, int]: ...

    async def unlink(self, boards: Iterable[Board]) -> None: ...

    async def register(self, boards: Iterable[Board]) -> None: ...

    async def unregister(self, boards: Iterable[Board]) -> None: ...

    async def try_lock(self, name: str, seconds: int) -> bool:
        """True for the one caller (of any worker) that holds `name` for `seconds`."""
        ...

    async def release(self, name: str) -> None:
        """Give up a lock of `try_lock` before its time is up."""
        ...

    async def keep_note(self, name: str, value: bytes) -> None:
        """A small record every process can read (the last reconcile's outcome)."""
        ...

    async def read_note(self, name: str) -> bytes | None: ...


class ProfileStore(Protocol):
    """Profiles in SQL (the truth), and what the ledger says they earned, per day."""

    async def get(self, informant_id: str) -> Profile | None: ...

    async def put(self, informant_id: str, profile: Profile, at: datetime) -> Profile | None:
        """Store the profile; returns the one it replaced."""
        ...

    def all_profiles(self) -> AsyncIterator[tuple[str, Profile]]: ...

    async def find(self, text: str, limit: int) -> list[tuple[str, Profile]]:
        """Informants whose id is `text`, or whose name is or starts with it: the id
        first, then by name."""
        ...


class LedgerTotals(Protocol):
    def informant_days(
        self, *, since_day: int | None = None, informant_id: str | None = None
    ) -> AsyncIterator[DayTotal]:
        """Per informant, day and placement: what unreversed, on-time events added,
        ordered by day; informants who are hidden or banned are left out (unless asked
        for by id)."""
        ...


class Standings(Protocol):
    """Final standings of closed periods, in SQL."""

    async def closed(self, board: Board) -> tuple[int, list[tuple[int, str, int]]] | None: ...

    async def recorded(self) -> set[Board]: ...

    async def record(
        self, board: Board, members: int, rows: list[tuple[int, str, int]], at: datetime
    ) -> None: ...


class ProfileMirror(Protocol):
    async def set_profile(self, informant_id: str, profile: Profile) -> None: ...


class Observer(Protocol):
    """Where use cases report what happened (metrics, logs); never on the answer's path."""

    def event_judged(self, action: str, outcome: str, points: int, count: int = 1) -> None: ...

    def rules_loaded(self, version: str, ok: bool) -> None: ...

    def undo_failed(self, error: BaseException) -> None: ...

    def boards_failed(self, error: BaseException) -> None: ...

    def boards_written(self, events: int) -> None: ...

    def rebuilt(self, rows: int | None) -> None:
        """A rebuild finished (rows replayed), or failed (None)."""

    def reconciled(self, differences: int | None) -> None:
        """A reconcile finished (entries that differed), or failed (None)."""


class NullObserver:
    def event_judged(self, action: str, outcome: str, points: int, count: int = 1) -> None:
        pass

    def rules_loaded(self, version: str, ok: bool) -> None:
        pass

    def undo_failed(self, error: BaseException) -> None:
        pass

    def boards_failed(self, error: BaseException) -> None:
        pass

    def boards_written(self, events: int) -> None:
        pass

    def rebuilt(self, rows: int | None) -> None:
        pass

    def reconciled(self, differences: int | None) -> None:
        pass


class DrawState(Protocol):
    """A draw's three atomic steps in Redis (adapters/redis_draws.py)."""

    async def hold(
        self, informant_id: str, draw: Draw, draw_id: str, body_hash: str, day: int
    ) -> tuple[Hold, bool] | Overdraw | DailyLimitReached: ...

    async def held(self, informant_id: str, draw_id: str) -> Hold | None: ...

    async def take(self, draw: Draw, draw_id: str, pick: int) -> Taken | str: ...

    async def settle(self, informant_id: str, draw_id: str, taken: Taken, points: int) -> Hold: ...

    async def refund(
        self, informant_id: str, draw: str, draw_id: str, body_hash: str, day: int
    ) -> bool: ...


class DrawStore(Protocol):
    """Seeds, commitments and outcomes in SQL (the outcomes are written by the ledger)."""

    async def commit(self, proposed: Commitment) -> Commitment: ...

    async def commitment(self, draw: str) -> Commitment | None: ...

    async def commitments(self) -> list[Commitment]: ...

    async def record(self, draw_id: str) -> DrawRecord | None: ...

    async def records(
        self, draw: str, *, after: int = 0, limit: int | None = None
    ) -> list[DrawRecord]: ...

    async def stock(self, draw: Draw) -> Stock: ...

    async def ledger_problems(self, records: Sequence[DrawRecord]) -> list[str]: ...


class DrawObserver(Protocol):
    def draw_result(self, draw: str, result: str) -> None:
        """A draw answered: the prize id it gave, or the refusal's code."""
