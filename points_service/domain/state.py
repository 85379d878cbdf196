"""Values the state store answers with."""

import math
from dataclasses import dataclass

import msgspec

from points_service.domain.boards import NOWHERE, Placement
from points_service.domain.engine import Decision


class Spend(msgspec.Struct, frozen=True):
    """A redemption's idempotency record: body hash, points spent, balance after."""

    h: str
    p: int
    b: int


class Clawback(msgspec.Struct, frozen=True):
    """A reversal's idempotency record: points clawed back, balance after."""

    p: int
    b: int


class Applied(msgspec.Struct, frozen=True, gc=False):
    decision: Decision
    replayed: bool
    # The informant's profile as Redis held it when the event was applied.
    placement: Placement = NOWHERE
    listed: bool = True


@dataclass(frozen=True, slots=True)
class Throttled:
    """An event refused, unrecorded, because its informant sent more new events than
    the rate window allows; the same event may come again after the window."""


THROTTLED = Throttled()


class RateWindow(msgspec.Struct, frozen=True, gc=False):
    """At most `limit` new events per informant within rate window `number` (the
    window's count of `seconds` since the epoch); `retry_after`: seconds to its end."""

    limit: int
    number: int
    retry_after: int

    @classmethod
    def at(cls, limit: int, seconds: int, now: float) -> "RateWindow":
        number, into = divmod(now, seconds)
        return cls(limit, int(number), max(1, math.ceil(seconds - into)))


@dataclass(frozen=True, slots=True)
class Overdraw:
    balance: int


@dataclass(frozen=True, slots=True)
class PointsSnapshot:
    balance: int
    earned: int
    streak: int
    streak_day: int
    today: dict[str, int]


@dataclass(frozen=True, slots=True)
class StoredState:
    """An informant's running totals as the state store holds them."""

    balance: int
    earned: int
    streak: int
    streak_day: int
