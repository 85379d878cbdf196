"""The storage the use cases need, as small Protocols the adapters satisfy."""

from collections.abc import Mapping, Sequence
from typing import Protocol

from points_service.domain.engine import Decision, EventPlan
from points_service.domain.ledger import EventRecord, LedgerEntry, Write, WriteStatus
from points_service.domain.state import Applied, Clawback, Overdraw, PointsSnapshot, Spend


class StateStore(Protocol):
    async def apply(self, informant_id: str, plans: Sequence[EventPlan]) -> list[Applied]: ...

    async def apply_groups(
        self, groups: Mapping[str, Sequence[EventPlan]]
    ) -> dict[str, list[Applied]]: ...

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


class Ledger(Protocol):
    async def commit(self, writes: Sequence[Write]) -> list[WriteStatus]: ...

    async def event(self, event_id: str) -> EventRecord | None: ...

    async def entry(self, kind: str, ref_id: str) -> LedgerEntry | None: ...

    async def entries(
        self, informant_id: str, *, before: int | None, limit: int
    ) -> list[LedgerEntry]: ...

    async def ping(self) -> None: ...


class Observer(Protocol):
    """Where use cases report what happened (metrics, logs); never on the answer's path."""

    def event_judged(self, action: str, outcome: str, points: int, count: int = 1) -> None: ...

    def rules_loaded(self, version: str, ok: bool) -> None: ...

    def undo_failed(self, error: BaseException) -> None: ...


class NullObserver:
    def event_judged(self, action: str, outcome: str, points: int, count: int = 1) -> None:
        pass

    def rules_loaded(self, version: str, ok: bool) -> None:
        pass

    def undo_failed(self, error: BaseException) -> None:
        pass
