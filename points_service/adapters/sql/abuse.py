"""The anti-abuse scan's reads of the events table, and the flags it keeps.

On SQLite the scan's reads run in the worker's process, so they take CPU from the credit
path: a scan of a minute at 1,000 events/s is ~90 ms of it, and a burst like that once a
minute raised the half-rate p99 from 9 to 35 ms (bench/RESULTS.md). So there they run on
a thread of their own at the lowest priority (nice 19), through the standard library's
sqlite3 (which lets go of the GIL while SQLite works): the credit path's threads and
processes go first. On PostgreSQL the database server does that work.
"""

import asyncio
import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, and_, create_engine, func, insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncEngine

from points_service.adapters.sql.tables import UtcDateTime, abuse_flags, events, informants
from points_service.domain.abuse import (
    BARRING,
    Finding,
    Flag,
    FlagStatus,
    Seen,
    ViewerSharer,
    placement,
)

_FLAG_COLUMNS = (
    abuse_flags.c.flag_id,
    abuse_flags.c.informant_id,
    abuse_flags.c.kind,
    abuse_flags.c.subject,
    abuse_flags.c.window_start,
    abuse_flags.c.window_end,
    abuse_flags.c.evidence,
    abuse_flags.c.status,
    abuse_flags.c.detected_at,
    abuse_flags.c.resolved_at,
    abuse_flags.c.resolved_by,
    abuse_flags.c.note,
)
_AWARE = UtcDateTime()


def _aware(value: Any) -> datetime:
    """Aggregates (min, max) skip the column's type on SQLite: make them aware here."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    result = _AWARE.process_result_value(value, None)  # type: ignore[arg-type]
    assert result is not None
    return result


def _flag(row: Any) -> Flag:
    return Flag(*row)


def _lowest_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux: a thread has its own nice
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class SqlAbuse:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite" and engine.url.database:
            self._sync = create_engine(
                f"sqlite:///{engine.url.database}", connect_args={"timeout": 30}
            )
            self._thread = ThreadPoolExecutor(
                1, thread_name_prefix="abuse-scan", initializer=_lowest_priority
            )

    async def _read(self, query: Select[Any]) -> list[Any]:
        """The scan's reads: at the lowest priority on SQLite (see above)."""
        sync, thread = self._sync, self._thread
        if sync is None or thread is None:
            async with self._engine.connect() as conn:
                return list(await conn.execute(query))

        def read() -> list[Any]:
            with sync.connect() as conn:
                return list(conn.execute(query))

        return await asyncio.get_running_loop().run_in_executor(thread, read)

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()

    async def received(
        self, since: datetime, until: datetime, events_over: int, views_over: int
    ) -> list[Seen]:
        """Events received in [since, until), not imported, in the order received, of
        the informants who could be flagged: those with more than `events_over` events
        in it, or more than `views_over` views of one share. (No window of the range can
        hold more events than the range, so the others' rows need not be read: the
        database counts, and a normal minute's traffic never crosses to Python.)"""
        e = events.c
        window = and_(e.received_at >= since, e.received_at < until, e.imported.is_(False))
        busy = (
            select(e.informant_id)
            .where(window)
            .group_by(e.informant_id)
            .having(func.count() > events_over)
        )
        viewed = (
            select(e.informant_id)
            .where(window, e.action == "share_view")
            .group_by(e.informant_id, e.share_id)
            .having(func.count() > views_over)
        )
        query = (
            select(e.event_id, e.informant_id, e.action, e.received_at, e.share_id, e.viewer_id)
            .where(window, e.informant_id.in_(union(busy, viewed)))
            .order_by(e.received_at, e.event_id)
        )
        return [Seen(*row) for row in await self._read(query)]

    async def viewer_sharers(
        self, since: datetime, until: datetime, more_than: int
    ) -> list[ViewerSharer]:
        """For every viewer id that viewed shares of more than `more_than` informants in
        [since, until): what it viewed of each."""
        e = events.c
        window = and_(
            e.action == "share_view",
            e.received_at >= since,
            e.received_at < until,
            e.imported.is_(False),
            e.viewer_id.is_not(None),
        )
        spread = (
            select(e.viewer_id)
            .where(window)
            .group_by(e.viewer_id)
            .having(func.count(func.distinct(e.informant_id)) > more_than)
        )
        query = (
            select(
                e.viewer_id,
                e.informant_id,
                func.count(),
                func.min(e.received_at),
                func.max(e.received_at),
            )
            .where(window, e.viewer_id.in_(spread))
            .group_by(e.viewer_id, e.informant_id)
        )
        rows = await self._read(query)
        return [ViewerSharer(r[0], r[1], int(r[2]), _aware(r[3]), _aware(r[4])) for r in rows]

    async def banned_activity(self, since: datetime, until: datetime) -> list[Finding]:
        """Per banned informant, the events received from it in [since, until)."""
        e, i = events.c, informants.c
        query = (
            select(e.informant_id, func.count(), func.min(e.received_at), func.max(e.received_at))
            .select_from(events.join(informants, i.informant_id == e.informant_id))
            .where(
                i.status == "banned",
                e.received_at >= since,
                e.received_at < until,
                e.imported.is_(False),
            )
            .group_by(e.informant_id)
        )
        rows = await self._read(query)
        return [
            Finding(r[0], "banned_activity", "", _aware(r[2]), _aware(r[3]), {"events": int(r[1])})
            for r in rows
        ]

    async def save(self, findings: Sequence[Finding], at: datetime) -> tuple[dict[str, int], int]:
        """Keep findings as flags: (new flags by kind, flags widened). A finding inside a
        flag an admin has resolved is not raised again."""
        made: dict[str, int] = {}
        widened = 0
        if not findings:
            return made, widened
        f = abuse_flags.c
        async with self._engine.begin() as conn:
            for finding in findings:
                known = [
                    _flag(r)
                    for r in await conn.execute(
                        select(*_FLAG_COLUMNS).where(
                            f.informant_id == finding.informant_id,
                            f.kind == finding.kind,
                            f.subject == finding.subject,
                        )
                    )
                ]
                what, flag, kept = placement(finding, known)
                if what == "extend" and flag is not None:
                    await conn.execute(
                        update(abuse_flags)
                        .where(f.flag_id == flag.flag_id)
                        .values(
                            window_start=min(flag.start, kept.start),
                            window_end=max(flag.end, kept.end),
                            evidence=dict(kept.evidence),
                        )
                    )
                    widened += flag.start > kept.start or flag.end < kept.end
                elif what == "new":
                    await conn.execute(
                        insert(abuse_flags).values(
                            informant_id=kept.informant_id,
                            kind=kept.kind,
                            subject=kept.subject,
                            window_start=kept.start,
                            window_end=kept.end,
                            evidence=dict(kept.evidence),
                            status="open",
                            detected_at=at,
                        )
                    )
                    made[kept.kind] = made.get(kept.kind, 0) + 1
        return made, widened

    async def flags(
        self,
        status: FlagStatus | None,
        informant_id: str | None,
        after: int | None,
        limit: int,
    ) -> list[Flag]:
        f = abuse_flags.c
        query = select(*_FLAG_COLUMNS).order_by(f.flag_id).limit(limit)
        if status is not None:
            query = query.where(f.status == status)
        if informant_id is not None:
            query = query.where(f.informant_id == informant_id)
        if after is not None:
            query = query.where(f.flag_id > after)
        async with self._engine.connect() as conn:
            return [_flag(r) for r in await conn.execute(query)]

    async def flag(self, flag_id: int) -> Flag | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(*_FLAG_COLUMNS).where(abuse_flags.c.flag_id == flag_id))
            ).first()
        return None if row is None else _flag(row)

    async def resolve(
        self, flag_id: int, status: FlagStatus, at: datetime, by: str | None, note: str | None
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(abuse_flags)
                .where(abuse_flags.c.flag_id == flag_id)
                .values(status=status, resolved_at=at, resolved_by=by, note=note)
            )

    async def events_of(self, flag: Flag) -> list[str]:
        """The credited events the flag is about, in the order received."""
        e = events.c
        query = (
            select(e.event_id)
            .where(
                e.informant_id == flag.informant_id,
                e.received_at >= flag.start,
                e.received_at <= flag.end,
                e.points > 0,
                e.imported.is_(False),
            )
            .order_by(e.received_at, e.event_id)
        )
        if flag.kind == "share_view_velocity":
            query = query.where(e.action == "share_view", e.share_id == flag.subject)
        elif flag.kind == "viewer_spread":
            query = query.where(e.action == "share_view", e.viewer_id == flag.subject)
        async with self._engine.connect() as conn:
            return [r[0] for r in await conn.execute(query)]

    async def barred(self, ids: Sequence[str] | None = None) -> set[str]:
        """Informants with a flag that is not cleared (of `ids`, or all)."""
        f = abuse_flags.c
        query = select(f.informant_id).distinct().where(f.status.in_(BARRING))
        if ids is not None:
            query = query.where(f.informant_id.in_(list(ids)))
        async with self._engine.connect() as conn:
            return {r[0] for r in await conn.execute(query)}
