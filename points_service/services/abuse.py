"""Scan the received events for abuse, keep flags with their evidence, and let an admin
clear a flag or reverse the credits of its window (domain/abuse.py says what is found)."""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from points_service.domain.abuse import (
    Finding,
    Flag,
    FlagStatus,
    Seen,
    Thresholds,
    ViewerSharer,
    detect,
    detect_spread,
)
from points_service.services.account import Accounts
from points_service.services.errors import Conflict, NotFound

MAX_FLAGS_PAGE = 500


class AbuseStore(Protocol):
    async def received(
        self, since: datetime, until: datetime, events_over: int, views_over: int
    ) -> list[Seen]: ...

    async def viewer_sharers(
        self, since: datetime, until: datetime, more_than: int
    ) -> list[ViewerSharer]: ...

    async def banned_activity(self, since: datetime, until: datetime) -> list[Finding]: ...

    async def save(
        self, findings: Sequence[Finding], at: datetime
    ) -> tuple[dict[str, int], int]: ...

    async def flags(
        self, status: FlagStatus | None, informant_id: str | None, after: int | None, limit: int
    ) -> list[Flag]: ...

    async def flag(self, flag_id: int) -> Flag | None: ...

    async def resolve(
        self, flag_id: int, status: FlagStatus, at: datetime, by: str | None, note: str | None
    ) -> None: ...

    async def events_of(self, flag: Flag) -> list[str]: ...

    async def barred(self, ids: Sequence[str] | None = None) -> set[str]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Scan:
    since: datetime
    until: datetime
    events: int  # rows read: of the informants over a threshold in the range
    found: dict[str, int]  # kind -> findings
    new: dict[str, int]  # kind -> flags raised
    widened: int  # open flags whose window grew
    seconds: float


@dataclass(frozen=True, slots=True)
class WindowReversed:
    flag: Flag
    events: int  # events whose credit was taken back now
    points: int
    already: int  # events reversed before (by hand, or an earlier call)


class Abuse:
    def __init__(
        self,
        store: AbuseStore,
        thresholds: Thresholds,
        accounts: Accounts,
        clock: Callable[[], datetime],
    ) -> None:
        self.thresholds = thresholds
        self._store = store
        self._accounts = accounts
        self._clock = clock
        self._scanned_to: datetime | None = None
        self._spread_at: datetime | None = None

    async def scan(self, back: timedelta | None = None, until: datetime | None = None) -> Scan:
        """Look at the events received in [until - back, until) (by default: from where
        the last scan ended, or the last hour, to now), each sliding window seeing the
        lookback before that too. Viewer spread is looked at over its own window (hours),
        at most once an hour unless `back` is given."""
        started = time.monotonic()
        t = self.thresholds
        asked = back is not None
        until = until or self._clock()
        since = until - back if back is not None else self._scanned_to or until - timedelta(hours=1)
        received = await self._store.received(
            since - t.lookback, until, t.burst.events, t.share_view_velocity.views
        )
        findings = detect(received, t)
        spread_due = self._spread_at is None or until - self._spread_at >= timedelta(hours=1)
        if spread_due or asked:
            spread_since = until - timedelta(hours=t.viewer_spread.hours)
            rows = await self._store.viewer_sharers(spread_since, until, t.viewer_spread.sharers)
            findings += detect_spread(rows, t)
            self._spread_at = until
        if t.banned.enabled:
            findings += await self._store.banned_activity(since, until)
        new, widened = await self._store.save(findings, self._clock())
        self._scanned_to = until
        found = dict(Counter(f.kind for f in findings))
        return Scan(since, until, len(received), found, new, widened, time.monotonic() - started)

    async def flags(
        self,
        status: FlagStatus | None = None,
        informant_id: str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[Flag]:
        return await self._store.flags(status, informant_id, after, min(limit, MAX_FLAGS_PAGE))

    async def flag(self, flag_id: int) -> Flag:
        flag = await self._store.flag(flag_id)
        if flag is None:
            raise NotFound(f"no flag {flag_id}")
        return flag

    async def clear(self, flag_id: int, by: str | None, note: str | None) -> Flag:
        """The flag was a false alarm: the informant may be nominated again (unless
        another flag still bars them). Clearing a reversed flag does not put the
        credits back."""
        await self.flag(flag_id)
        await self._store.resolve(flag_id, "cleared", self._clock(), by, note)
        return await self.flag(flag_id)

    async def reverse(self, flag_id: int, by: str | None, note: str | None) -> WindowReversed:
        """Take back the credits of every event the flag is about, in one call; safe to
        call again (an event is reversed once)."""
        flag = await self.flag(flag_id)
        if flag.status == "cleared":
            raise Conflict("flag_cleared", f"flag {flag_id} was cleared", field="flag_id")
        taken = points = already = 0
        for event_id in await self._store.events_of(flag):
            done = await self._accounts.reverse(event_id, f"abuse flag {flag_id} ({flag.kind})")
            if done.replayed:
                already += 1
            else:
                taken += 1
                points += done.points
        await self._store.resolve(flag_id, "reversed", self._clock(), by, note)
        return WindowReversed(await self.flag(flag_id), taken, points, already)

    async def barred(self, ids: Sequence[str] | None = None) -> set[str]:
        return await self._store.barred(ids)

    async def close(self) -> None:
        await self._store.close()
