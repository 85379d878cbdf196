"""Wire shapes of API v1. Field names are a contract with the app: add, never rename."""

import re
from datetime import date, datetime
from typing import Annotated

import msgspec

from points_service.domain.events import ClientKey, Event

Points = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
Item = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
MAX_BATCH = 1000


class LineOut(msgspec.Struct):
    rule: str | None
    points: int
    reason: str
    requested: int


class EventResult(msgspec.Struct):
    event_id: str
    informant_id: str
    action: str
    points: int
    balance: int
    lines: list[LineOut]
    replayed: bool
    dry_run: bool
    late: bool
    day: date
    streak: int
    counters: dict[str, int]
    rule_version: str


class ErrorOut(msgspec.Struct, omit_defaults=True):
    status_code: int
    code: str
    detail: str
    field: str | None = None
    event_id: str | None = None


class BatchItem(msgspec.Struct, omit_defaults=True):
    index: int
    status: int
    result: EventResult | None = None
    error: ErrorOut | None = None


class BatchOut(msgspec.Struct):
    results: list[BatchItem]
    accepted: int
    rejected: int


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_BATCH)]


class EventBatch(msgspec.Struct):
    """The batch body as documented; items are decoded one by one (see BatchIn)."""

    events: Annotated[list[Event], msgspec.Meta(max_length=MAX_BATCH)]


class ActionTodayOut(msgspec.Struct):
    count: int
    points: int


class PointsOut(msgspec.Struct):
    informant_id: str
    balance: int
    earned: int
    day: date
    today: dict[str, ActionTodayOut]
    streak: int
    last_sign_in: date | None


class LedgerEntryOut(msgspec.Struct):
    id: int
    kind: str
    ref_id: str
    points: int
    day: date | None
    created_at: datetime
    rule_version: str | None
    detail: str | None


class LedgerOut(msgspec.Struct):
    informant_id: str
    entries: list[LedgerEntryOut]
    next_cursor: str | None


class RedemptionIn(msgspec.Struct, forbid_unknown_fields=True):
    redemption_id: ClientKey
    points: Points
    item: Item


class RedemptionOut(msgspec.Struct):
    redemption_id: str
    informant_id: str
    points: int
    item: str
    balance: int
    replayed: bool


class ReversalIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=256)] = "reversed"


class ReversalOut(msgspec.Struct):
    event_id: str
    informant_id: str
    points: int
    balance: int
    replayed: bool


class RulesOut(msgspec.Struct):
    version: str
    files: list[str]
    rules: int
    last_reload_ok: bool
    last_reload_at: datetime
    problems: list[str]


# Decoders are built once; decoding and validating is one pass in C.
event_decoder = msgspec.json.Decoder(Event)
batch_decoder = msgspec.json.Decoder(BatchIn | list[msgspec.Raw])
redemption_decoder = msgspec.json.Decoder(RedemptionIn)
reversal_decoder = msgspec.json.Decoder(ReversalIn)

_BACKTICK = re.compile(r"`([^`]+)`")


def error_field(exc: msgspec.ValidationError) -> str | None:
    """The JSON path msgspec blames, as a dotted field name (`events[3].occurred_at`)."""
    message, _, path = str(exc).partition(" - at `")
    path = path.rstrip("`").removeprefix("$").lstrip(".")
    named = _BACKTICK.search(message)
    if named and ("missing required field" in message or "unknown field" in message):
        return f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None
