"""What goes into the durable ledger, as plain values the SQL adapter writes."""

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

import msgspec

from points_service.domain.boards import NOWHERE, Placement
from points_service.domain.engine import Decision
from points_service.domain.events import Event


class CommitUnknown(ConnectionError):
    """The database went away after a write was sent to it: it may have committed. What
    Redis judged for it is kept, not taken back: the client's retry (a 503 asks for one)
    commits the decision Redis holds, or finds it in the ledger, so caps and balances
    stay the ledger's either way. Taking it back would let later events pass a cap that
    a committed event had already reached."""


class WriteStatus(Enum):
    INSERTED = "inserted"  # this write created the row
    EXISTING = "existing"  # the same write was committed before (a retry)
    CONFLICT = "conflict"  # the key is taken by a different write


class CreditWrite(msgspec.Struct, frozen=True, gc=False):
    event: Event
    decision: Decision
    received_at: datetime
    imported: bool = False
    placement: Placement = NOWHERE  # the boards it counts on
    # Levels this event reached, (level, title): each becomes a `level` ledger entry in
    # the event's own transaction, the first time the informant reaches it.
    levels: tuple[tuple[int, str], ...] = ()


def level_ref(informant_id: str, level: int) -> str:
    """The ledger `ref_id` of an informant's reaching a level (one entry per level)."""
    return f"{informant_id}:{level}"


@dataclass(frozen=True, slots=True)
class RedemptionWrite:
    informant_id: str
    redemption_id: str
    points: int
    item: str
    body_hash: str
    at: datetime
    rule_version: str


@dataclass(frozen=True, slots=True)
class ReversalWrite:
    event_id: str
    informant_id: str
    points: int
    reason: str
    at: datetime
    rule_version: str


@dataclass(frozen=True, slots=True)
class DrawWrite:
    """A lottery draw: its cost spent, and its prize (a points prize credits at once,
    to the balance and not to `earned`: it was won, not earned by an action)."""

    informant_id: str
    draw_id: str
    draw: str
    seq: int
    pick: int
    prize: str
    prize_kind: str  # points | item | none (no prize entry)
    points: int  # credited by a points prize
    fallback: bool
    cost: int
    balance: int  # after the draw, as answered
    body_hash: str
    day: date
    at: datetime
    rule_version: str
    detail: str  # the prize's title, on its ledger entry


Write = CreditWrite | RedemptionWrite | ReversalWrite | DrawWrite


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    informant_id: str
    kind: str
    ref_id: str
    points: int
    day: date | None
    created_at: datetime
    rule_version: str | None
    detail: str | None
    body_hash: str | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_id: str
    informant_id: str
    action: str
    occurred_at: datetime
    points: int
    counters: tuple[int, int, int]
    body_hash: str
    decision: bytes
    day: int = 0  # programme day (ordinal) it counted in
    late: bool = False
    placement: Placement = NOWHERE
