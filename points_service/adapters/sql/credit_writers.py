"""The hot write: new events, their credit entries and balance changes in one transaction,
with one hand-off from the event loop per batch.

Through SQLAlchemy's async layer a transaction is half a dozen driver round trips, and on
a busy event loop each one waits behind every request in flight (a 15-write commit took
~25 ms under load). Here PostgreSQL gets one statement (data-modifying CTEs over
`unnest` arrays: one round trip, atomic on its own), and SQLite one synchronous
transaction through the stdlib driver. The tables and their meaning are those of
`tables.py`; reads and the rare writes (redemptions, reversals) stay on SQLAlchemy.
"""

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Protocol

import asyncpg
import msgspec

from points_service.adapters.sql.checkpoint import Checkpointer
from points_service.adapters.sql.engine import SYNCHRONOUS
from points_service.adapters.sql.tables import NOT_CREDIT
from points_service.domain.calendar import day_from_number
from points_service.domain.ledger import CommitUnknown, CreditWrite, level_ref

_encode = msgspec.json.encode
SQLITE_SYNCHRONOUS: Final = ("NORMAL", "FULL")


class CreditWriter(Protocol):
    # How many `write` calls may be outstanding at once (the group committer's limit).
    in_flight: int

    async def write(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        """Insert what is new; returns (inserted event ids, body hash of each id that
        was already there). `credits` holds each event id once."""
        ...

    async def close(self) -> None: ...


def _day_deltas(
    credits: Iterable[CreditWrite], day: Callable[[int], Any] | None = None
) -> list[tuple[Any, ...]]:
    """informant_days rows to add, summed per key: on-time events only (days as SQLite
    text unless `day` says otherwise)."""
    day = day or _sqlite_day
    sums: dict[tuple[str, Any, str, str, str, str], list[int]] = {}
    for w in credits:
        d = w.decision
        if d.late:
            continue
        at = w.placement
        key = (
            w.event.informant_id, day(d.day), at.province or "", at.city or "",
            at.county or "", at.institution or "",
        )  # fmt: skip
        total = sums.get(key)
        if total is None:
            sums[key] = [1, d.p, d.c[0], d.c[1], d.c[2]]
        else:
            for n, v in enumerate((1, d.p, d.c[0], d.c[1], d.c[2])):
                total[n] += v
    return [(*key, *values) for key, values in sorted(sums.items())]


def _level_rows(credits: Iterable[CreditWrite]) -> list[tuple[str, str, str]]:
    """(event id, ref id, title) of each level the writes reached."""
    return [
        (w.event.event_id, level_ref(w.event.informant_id, level), title)
        for w in credits
        for level, title in w.levels
    ]


def _balance_deltas(credits: Iterable[CreditWrite]) -> list[tuple[str, int]]:
    deltas: dict[str, int] = {}
    for w in credits:
        if w.decision.p:
            deltas[w.event.informant_id] = deltas.get(w.event.informant_id, 0) + w.decision.p
    # Sorted, so two writers lock balance rows in the same order.
    return sorted(deltas.items())


_PG_CREDIT: Final = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
        $6::date[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::int[], $13::int[], $14::int[], $15::int[], $16::bool[], $17::bool[],
        $18::text[], $19::bytea[], $21::text[], $22::text[], $23::text[], $24::text[]
    ) AS t(event_id, informant_id, action, occurred_at, received_at, day, content_id,
           share_id, viewer_id, attributes, body_hash, points, shares, share_views, posts,
           late, imported, rule_version, decision, province, city, county, institution_id)
), inserted AS (
    INSERT INTO events (event_id, informant_id, action, occurred_at, received_at, day,
                        content_id, share_id, viewer_id, attributes, body_hash, points,
                        shares, share_views, posts, late, imported, rule_version, decision,
                        province, city, county, institution_id)
    SELECT event_id, informant_id, action, occurred_at, received_at, day, content_id,
           share_id, viewer_id, attributes::json, body_hash, points, shares, share_views,
           posts, late, imported, rule_version, decision, province, city, county,
           institution_id
    FROM input
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, informant_id, action, points, day, rule_version, late, shares,
              share_views, posts, province, city, county, institution_id
), days AS (
    INSERT INTO informant_days (informant_id, day, province, city, county, institution_id,
                                events, points, shares, share_views, posts)
    SELECT informant_id, day, coalesce(province, ''), coalesce(city, ''),
           coalesce(county, ''), coalesce(institution_id, ''), count(*), sum(points),
           sum(shares), sum(share_views), sum(posts)
    FROM inserted WHERE NOT late
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (informant_id, day, province, city, county, institution_id) DO UPDATE SET
        events = informant_days.events + excluded.events,
        points = informant_days.points + excluded.points,
        shares = informant_days.shares + excluded.shares,
        share_views = informant_days.share_views + excluded.share_views,
        posts = informant_days.posts + excluded.posts
), entries AS (
    INSERT INTO ledger_entries (informant_id, kind, ref_id, points, day, created_at,
                                rule_version, detail)
    SELECT informant_id, 'credit', event_id, points, day, $20, rule_version, action
    FROM inserted WHERE points <> 0
), levels AS (
    INSERT INTO ledger_entries (informant_id, kind, ref_id, points, day, created_at,
                                rule_version, detail)
    SELECT i.informant_id, 'level', l.ref_id, 0, i.day, $20, i.rule_version, l.detail
    FROM unnest($25::text[], $26::text[], $27::text[]) AS l(event_id, ref_id, detail)
    JOIN inserted AS i USING (event_id)
    ON CONFLICT (kind, ref_id) WHERE {NOT_CREDIT} DO NOTHING
), totals AS (
    INSERT INTO balances (informant_id, balance, earned, spent, updated_at)
    SELECT informant_id, sum(points), sum(points), 0, $20
    FROM inserted WHERE points <> 0
    GROUP BY informant_id ORDER BY informant_id
    ON CONFLICT (informant_id) DO UPDATE SET
        balance = balances.balance + excluded.balance,
        earned = balances.earned + excluded.earned,
        updated_at = excluded.updated_at
)
SELECT event_id FROM inserted
"""  # noqa: S608 - the only value put in is NOT_CREDIT, a constant of tables.py

_PG_KNOWN: Final = "SELECT event_id, body_hash FROM events WHERE event_id = ANY($1::text[])"


class PostgresCreditWriter:
    """Writes on one asyncpg connection of its own (so one write at a time).

    The group committer writes one batch at a time, so one connection is all it needs;
    going through SQLAlchemy's pool cost a checkout with a pre-ping round trip per batch.
    A connection that fails is dropped and the next batch opens a new one.
    """

    in_flight = 1

    def __init__(self, dsn: str, command_timeout: float = 10.0) -> None:
        """`command_timeout`: seconds a write may wait for its answer (a connection cut
        without a word, half-open, would otherwise hold every commit behind it)."""
        self._dsn = dsn
        self._command_timeout = command_timeout
        self._conn: asyncpg.Connection | None = None
        self._bulk: asyncpg.Connection | None = None  # copy_new's

    async def write(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        columns: list[list[Any]] = [[] for _ in range(23)]
        for w in credits:
            for column, value in zip(columns, _event_row(w), strict=True):
                column.append(value)
        levels = [list(column) for column in zip(*_level_rows(credits), strict=True)] or [[]] * 3
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn, timeout=5, command_timeout=self._command_timeout
            )
        try:
            inserted = {
                r[0]
                for r in await self._conn.fetch(
                    _PG_CREDIT, *columns[:19], now, *columns[19:], *levels
                )
            }
            missing = [w.event.event_id for w in credits if w.event.event_id not in inserted]
            known = (
                {r[0]: r[1] for r in await self._conn.fetch(_PG_KNOWN, missing)} if missing else {}
            )
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            # Sent, but no answer: the statement may have committed (domain/ledger.py).
            self._conn.terminate()
            self._conn = None
            raise CommitUnknown(f"the database went away mid-write: {exc!r}") from exc
        return inserted, known

    async def copy_new(self, credits: Sequence[CreditWrite], now: datetime) -> bool:
        """Copy in (COPY, one transaction, a connection of its own) the writes of events
        and informants the ledger holds nothing of: a bulk import's, looked up first.
        False, with nothing written, if some row was there after all."""
        if self._bulk is None or self._bulk.is_closed():
            self._bulk = await asyncpg.connect(self._dsn, timeout=5)
        entries = [
            (
                w.event.informant_id, "credit", w.event.event_id, w.decision.p,
                day_from_number(w.decision.day), now, w.decision.v, w.event.action,
            )
            for w in credits
            if w.decision.p
        ] + [
            (
                w.event.informant_id, "level", level_ref(w.event.informant_id, level), 0,
                day_from_number(w.decision.day), now, w.decision.v, title,
            )
            for w in credits
            for level, title in w.levels
        ]  # fmt: skip
        try:
            async with self._bulk.transaction():
                await self._bulk.copy_records_to_table(
                    "events", records=map(_event_row, credits), columns=_EVENT_COLUMNS
                )
                await self._bulk.copy_records_to_table(
                    "ledger_entries", records=entries, columns=_ENTRY_COLUMNS
                )
                await self._bulk.copy_records_to_table(
                    "informant_days",
                    records=_day_deltas(credits, day_from_number),
                    columns=_DAY_COLUMNS,
                )
                await self._bulk.copy_records_to_table(
                    "balances",
                    records=[(i, p, p, 0, now) for i, p in _balance_deltas(credits)],
                    columns=_BALANCE_COLUMNS,
                )
        except asyncpg.UniqueViolationError:
            return False
        return True

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._bulk is not None:
            await self._bulk.close()
            self._bulk = None


_EVENT_COLUMNS: Final = (
    "event_id", "informant_id", "action", "occurred_at", "received_at", "day", "content_id",
    "share_id", "viewer_id", "attributes", "body_hash", "points", "shares", "share_views",
    "posts", "late", "imported", "rule_version", "decision", "province", "city", "county",
    "institution_id",
)  # fmt: skip
_ENTRY_COLUMNS: Final = (
    "informant_id", "kind", "ref_id", "points", "day", "created_at", "rule_version", "detail",
)  # fmt: skip
_DAY_COLUMNS: Final = (
    "informant_id", "day", "province", "city", "county", "institution_id", "events",
    "points", "shares", "share_views", "posts",
)  # fmt: skip
_BALANCE_COLUMNS: Final = ("informant_id", "balance", "earned", "spent", "updated_at")


def _event_row(w: CreditWrite) -> tuple[Any, ...]:
    e, d, at = w.event, w.decision, w.placement
    return (
        e.event_id, e.informant_id, e.action, e.occurred_at, w.received_at,
        day_from_number(d.day), e.content_id, e.share_id, e.viewer_id,
        _encode(e.attributes).decode() if e.attributes else None, d.h, d.p,
        d.c[0], d.c[1], d.c[2], d.late, w.imported, d.v, _encode(d),
        at.province, at.city, at.county, at.institution,
    )  # fmt: skip


# A batch shares its received_at and mostly its occurred_at and days: format each once.
@lru_cache(maxsize=4096)
def _sqlite_time(moment: datetime) -> str:
    # The format SQLAlchemy's SQLite DATETIME reads back (tables.UtcDateTime: UTC).
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@lru_cache(maxsize=1024)
def _sqlite_day(day_number: int) -> str:
    return day_from_number(day_number).isoformat()


_SQLITE_KNOWN: Final = (
    "SELECT event_id, body_hash FROM events WHERE event_id IN (SELECT value FROM json_each(?))"
)
_SQLITE_EVENT: Final = """
INSERT INTO events (event_id, informant_id, action, occurred_at, received_at, day,
                    content_id, share_id, viewer_id, attributes, body_hash, points, shares,
                    share_views, posts, late, imported, rule_version, decision,
                    province, city, county, institution_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SQLITE_ENTRY: Final = """
INSERT INTO ledger_entries (informant_id, kind, ref_id, points, day, created_at,
                            rule_version, detail)
VALUES (?, 'credit', ?, ?, ?, ?, ?, ?)
"""
_SQLITE_LEVEL: Final = f"""
INSERT INTO ledger_entries (informant_id, kind, ref_id, points, day, created_at,
                            rule_version, detail)
VALUES (?, 'level', ?, 0, ?, ?, ?, ?)
ON CONFLICT (kind, ref_id) WHERE {NOT_CREDIT} DO NOTHING
"""  # noqa: S608 - the only value put in is NOT_CREDIT, a constant of tables.py
_SQLITE_DAYS: Final = """
INSERT INTO informant_days (informant_id, day, province, city, county, institution_id,
                            events, points, shares, share_views, posts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (informant_id, day, province, city, county, institution_id) DO UPDATE SET
    events = events + excluded.events,
    points = points + excluded.points,
    shares = shares + excluded.shares,
    share_views = share_views + excluded.share_views,
    posts = posts + excluded.posts
"""
_SQLITE_BALANCE: Final = """
INSERT INTO balances (informant_id, balance, earned, spent, updated_at)
VALUES (?, ?, ?, 0, ?)
ON CONFLICT (informant_id) DO UPDATE SET
    balance = balance + excluded.balance,
    earned = earned + excluded.earned,
    updated_at = excluded.updated_at
"""


class SqliteCreditWriter:
    in_flight = 1

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SQLITE_SYNCHRONOUS}")
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self.checkpointer: Checkpointer | None = None

    def open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SYNCHRONOUS[self._synchronous])
            # The event and ledger indexes take random keys: keep more of their pages in
            # memory rather than reading them back on every commit.
            conn.execute("PRAGMA cache_size=-131072")  # 128 MiB
            # The checkpointer thread copies the log into the database as it grows; this
            # connection's own automatic checkpoint (SQLite's default, 1,000 pages) then
            # finds little left to copy, and restarts the log (checkpoint.py).
            conn.execute("PRAGMA wal_autocheckpoint=1000")
            self._conn = conn
            self.checkpointer = Checkpointer(self._path)
            self.checkpointer.start()
        return self._conn

    async def write(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        # On the event loop (POINTS_SQLITE_WRITER=loop): a batch is a millisecond or two of
        # SQLite work. Not in a thread: every statement had to win the GIL back from the
        # busy loop (up to the 5 ms switch interval each time), which made commits ~10x
        # slower. The default runs write_now in a child process (writer_process.py).
        return self.write_now(credits, now)

    def write_now(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        conn = self.open()
        stamp = _sqlite_time(now)
        # IMMEDIATE takes the write lock first, so no other writer can add an event
        # between the look-up below and the inserts.
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = _encode([w.event.event_id for w in credits]).decode()
            known: dict[str, str] = dict(conn.execute(_SQLITE_KNOWN, (ids,)).fetchall())
            new = [w for w in credits if w.event.event_id not in known]
            conn.executemany(
                _SQLITE_EVENT,
                [
                    (
                        w.event.event_id, w.event.informant_id, w.event.action,
                        _sqlite_time(w.event.occurred_at), _sqlite_time(w.received_at),
                        _sqlite_day(w.decision.day), w.event.content_id,
                        w.event.share_id, w.event.viewer_id,
                        _encode(w.event.attributes).decode() if w.event.attributes else None,
                        w.decision.h, w.decision.p, w.decision.c[0], w.decision.c[1],
                        w.decision.c[2], w.decision.late, w.imported, w.decision.v,
                        _encode(w.decision), w.placement.province, w.placement.city,
                        w.placement.county, w.placement.institution,
                    )
                    for w in new
                ],
            )  # fmt: skip
            conn.executemany(
                _SQLITE_ENTRY,
                [
                    (
                        w.event.informant_id, w.event.event_id, w.decision.p,
                        _sqlite_day(w.decision.day), stamp, w.decision.v,
                        w.event.action,
                    )
                    for w in new
                    if w.decision.p
                ],
            )  # fmt: skip
            conn.executemany(
                _SQLITE_LEVEL,
                [
                    (
                        w.event.informant_id, level_ref(w.event.informant_id, level),
                        _sqlite_day(w.decision.day), stamp, w.decision.v, title,
                    )
                    for w in new
                    for level, title in w.levels
                ],
            )  # fmt: skip
            conn.executemany(_SQLITE_BALANCE, [(i, p, p, stamp) for i, p in _balance_deltas(new)])
            conn.executemany(_SQLITE_DAYS, _day_deltas(new))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return {w.event.event_id for w in new}, known

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
