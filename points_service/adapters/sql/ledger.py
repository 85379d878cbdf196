"""The durable ledger, written by a group committer.

Callers hand writes to `commit` and wait. One task drains whatever has queued up and
writes it at once (credits in one transaction; redemptions and reversals, rarer, in a
second), so a burst of concurrent requests pays for one commit (and one fsync) between
them; under light load a batch is a single write and nothing waits for a timer. Each
write is idempotent on its key (event id, or kind and reference id), so a retry of a
half-done request completes it and never doubles it.
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Table, and_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_service.adapters.sql.credit_writers import (
    CreditWriter,
    PostgresCreditWriter,
    SqliteCreditWriter,
)
from points_service.adapters.sql.engine import create_engine, migrate
from points_service.adapters.sql.tables import (
    NOT_CREDIT,
    balances,
    draws,
    events,
    informant_days,
    ledger_entries,
)
from points_service.adapters.sql.writer_process import SqliteProcessWriter, WriteReply, outcome
from points_service.domain.boards import Placement
from points_service.domain.ledger import (
    CreditWrite,
    DrawWrite,
    EventRecord,
    LedgerEntry,
    RedemptionWrite,
    ReversalWrite,
    Write,
    WriteStatus,
)

_Pending = tuple[Sequence[Write], "asyncio.Future[list[WriteStatus]]"]


def _unique(credits: Sequence[CreditWrite]) -> dict[str, CreditWrite]:
    """The first write of each event id (the writers take each id once)."""
    unique: dict[str, CreditWrite] = {}
    for w in credits:
        unique.setdefault(w.event.event_id, w)
    return unique


def _statuses(
    credits: Sequence[CreditWrite],
    unique: dict[str, CreditWrite],
    inserted: set[str],
    known: dict[str, str],
) -> list[WriteStatus]:
    result = []
    for w in credits:
        event_id = w.event.event_id
        first = unique[event_id]
        if w is first and event_id in inserted:
            result.append(WriteStatus.INSERTED)
            continue
        # Otherwise the same event as the one the ledger holds now (a replay), or a
        # conflict: the ledger's is this batch's first write of the id if that went in,
        # else the one it held already (which the first write may not match).
        held = first.decision.h if event_id in inserted else known.get(event_id)
        same = held == w.decision.h
        result.append(WriteStatus.EXISTING if same else WriteStatus.CONFLICT)
    return result


def upsert_for(engine: AsyncEngine) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    """The dialect's INSERT, which has ON CONFLICT."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


_PG_RECORDED = text("SELECT event_id, body_hash, decision FROM events WHERE event_id = ANY(:ids)")
_SQLITE_RECORDED = text(
    "SELECT event_id, body_hash, decision FROM events"
    " WHERE event_id IN (SELECT value FROM json_each(:ids))"
)


# The fewest commit requests a group takes when more wait (see SqlLedger._run): below
# it, the writer's cost per transaction starts to tell.
MIN_GROUP = 8


class SqlLedger:
    def __init__(self, engine: AsyncEngine, writer: CreditWriter, *, max_batch: int = 5000) -> None:
        self._engine = engine
        self._writer = writer
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self._insert = upsert_for(engine)
        self.on_batch: Callable[[int, float], None] | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-group-commit")

    async def stop(self) -> None:
        """Flush what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._writer.close()
        await self._engine.dispose()

    async def commit(self, writes: Sequence[Write]) -> list[WriteStatus]:
        """Durably write; returns when the transaction holding these writes committed."""
        future: asyncio.Future[list[WriteStatus]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((writes, future))
        return await future

    async def commit_new(self, writes: Sequence[CreditWrite]) -> list[WriteStatus]:
        """Durably write credits of events and informants the ledger holds nothing of (a
        bulk import's, looked up first): copied in on PostgreSQL; committed the usual way
        on SQLite, or when some row turns out to be there after all."""
        if isinstance(self._writer, PostgresCreditWriter) and writes:
            started = asyncio.get_running_loop().time()
            if await self._writer.copy_new(writes, datetime.now(UTC)):
                if self.on_batch is not None:
                    self.on_batch(len(writes), asyncio.get_running_loop().time() - started)
                return [WriteStatus.INSERTED] * len(writes)
        return await self.commit(writes)

    async def _run(self) -> None:
        # As many transactions in flight as the writer takes: one for a connection of its
        # own (PostgreSQL, SQLite on the loop); more for the writer process, which queues
        # them, so the next group is on its way while the last one commits.
        #
        # A group takes its share of what waits, not all of it: one group of every
        # request in flight moves through Redis, the commit and the answers as one
        # convoy, and each stage idles while another works (at 64 connections the
        # machine was 130 % busy of its 200 %). Split over the transactions in flight,
        # the first part's answers are written, and their next requests read, while
        # the rest commit: +15-20 % single events a second on SQLite in two alternated
        # pairs of three, -6 % in the third (bench/RESULTS.md).
        in_flight = self._writer.in_flight
        slots = asyncio.Semaphore(in_flight)
        while True:
            batch = [await self._queue.get()]
            await slots.acquire()
            share = max(MIN_GROUP, -(-(self._queue.qsize() + 1) // in_flight))
            size = len(batch[0][0])
            while len(batch) < share and size < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1][0])
            if self._submit(batch, size, slots.release):
                continue
            task = asyncio.create_task(self._commit_batch(batch, size, slots.release))
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)

    def _submit(self, batch: list[_Pending], size: int, done: Callable[[], None]) -> bool:
        """Credits only, to a running writer process: handed over here, and settled by
        the callback that reads the reply. Each task step between a commit and its
        requests waits for its turn of a busy loop; this skips three of them (the
        batch's task starting, the pipe's reader waking, the batch's task resuming):
        at 1,700 single events/s the median request took 6-17 % less time
        (bench/RESULTS.md). False: nothing was done; the batch goes through
        `_commit_batch`."""
        writer = self._writer
        if not isinstance(writer, SqliteProcessWriter) or not writer.running:
            return False
        writes = [w for writes, _ in batch for w in writes]
        credits = [w for w in writes if isinstance(w, CreditWrite)]
        if len(credits) != len(writes):
            return False
        unique = _unique(credits)
        started = asyncio.get_running_loop().time()

        def answer(reply: WriteReply | BaseException) -> None:
            done()
            try:
                inserted, known = outcome(reply)
                statuses = _statuses(credits, unique, inserted, known)
            except Exception as exc:
                self._failed(batch, exc)
                return
            self._settle(batch, statuses, size, started)

        writer.submit(list(unique.values()), datetime.now(UTC), answer)
        return True

    async def _commit_batch(
        self, batch: list[_Pending], size: int, done: Callable[[], None]
    ) -> None:
        started = asyncio.get_running_loop().time()
        try:
            statuses = await self._write([w for writes, _ in batch for w in writes])
        except Exception as exc:
            self._failed(batch, exc)
            return
        finally:
            done()
        self._settle(batch, statuses, size, started)

    def _failed(self, batch: list[_Pending], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
            self._queue.task_done()
        if self.on_failure is not None:
            self.on_failure(exc)

    def _settle(
        self, batch: list[_Pending], statuses: list[WriteStatus], size: int, started: float
    ) -> None:
        position = 0
        for writes, future in batch:
            if not future.done():
                future.set_result(statuses[position : position + len(writes)])
            position += len(writes)
            self._queue.task_done()
        if self.on_batch is not None:
            self.on_batch(size, asyncio.get_running_loop().time() - started)

    async def _write(self, writes: Sequence[Write]) -> list[WriteStatus]:
        credits = [w for w in writes if isinstance(w, CreditWrite)]
        others = [w for w in writes if not isinstance(w, CreditWrite)]
        now = datetime.now(UTC)
        credit_status = iter(await self._write_credits(credits, now) if credits else [])
        other_status = {}
        if others:
            async with self._engine.begin() as conn:
                other_status = await self._write_entries(conn, others, now)
        return [
            next(credit_status) if isinstance(w, CreditWrite) else other_status[_entry_key(w)]
            for w in writes
        ]

    async def _write_credits(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> list[WriteStatus]:
        unique = _unique(credits)
        inserted, known = await self._writer.write(list(unique.values()), now)
        return _statuses(credits, unique, inserted, known)

    async def _write_entries(
        self,
        conn: AsyncConnection,
        writes: Sequence[RedemptionWrite | ReversalWrite | DrawWrite],
        now: datetime,
    ) -> dict[tuple[str, str], WriteStatus]:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for w in writes:
            for row in _entry_rows(w, now):
                rows.setdefault((row["kind"], row["ref_id"]), row)
        stmt = self._insert(ledger_entries).on_conflict_do_nothing(
            index_elements=["kind", "ref_id"], index_where=text(NOT_CREDIT)
        )
        returned = await conn.execute(
            stmt.returning(ledger_entries.c.kind, ledger_entries.c.ref_id), list(rows.values())
        )
        inserted = {(row[0], row[1]) for row in returned}
        deltas: dict[str, tuple[int, int, int]] = {}
        for key in inserted:
            row = rows[key]
            b, earned, spent = deltas.get(row["informant_id"], (0, 0, 0))
            points = row["points"]
            if key[0] in SPENDING:
                deltas[row["informant_id"]] = (b + points, earned, spent - points)
            elif key[0] == "prize":  # won, not earned: the balance only
                deltas[row["informant_id"]] = (b + points, earned, spent)
            else:
                deltas[row["informant_id"]] = (b + points, earned + points, spent)
        if deltas:
            await self._add_balances(conn, deltas, now)
        reversed_ids = [ref for kind, ref in inserted if kind == "reversal"]
        if reversed_ids:
            await self._take_back_days(conn, reversed_ids)
        drawn = {
            w.draw_id: _draw_row(w)
            for w in writes
            if isinstance(w, DrawWrite) and ("draw", w.draw_id) in inserted
        }
        if drawn:
            await conn.execute(self._insert(draws).on_conflict_do_nothing(), list(drawn.values()))
        return {
            _entry_key(w): WriteStatus.INSERTED
            if _entry_key(w) in inserted
            else WriteStatus.EXISTING
            for w in writes
        }

    async def _take_back_days(self, conn: AsyncConnection, event_ids: list[str]) -> None:
        """A reversed event no longer counts in its informant's day (informant_days)."""
        e = events.c
        found = await conn.execute(
            select(
                e.informant_id, e.day, e.province, e.city, e.county, e.institution_id,
                e.points, e.shares, e.share_views, e.posts,
            ).where(e.event_id.in_(event_ids), e.late.is_(False))
        )  # fmt: skip
        d = informant_days.c
        for row in found:
            await conn.execute(
                update(informant_days)
                .where(
                    d.informant_id == row.informant_id,
                    d.day == row.day,
                    d.province == (row.province or ""),
                    d.city == (row.city or ""),
                    d.county == (row.county or ""),
                    d.institution_id == (row.institution_id or ""),
                )
                .values(
                    events=d.events - 1,
                    points=d.points - row.points,
                    shares=d.shares - row.shares,
                    share_views=d.share_views - row.share_views,
                    posts=d.posts - row.posts,
                )
            )

    async def _add_balances(
        self, conn: AsyncConnection, deltas: dict[str, tuple[int, int, int]], now: datetime
    ) -> None:
        # Sorted, so two processes committing at once lock rows in the same order.
        rows = [
            {"informant_id": i, "balance": b, "earned": e, "spent": s, "updated_at": now}
            for i, (b, e, s) in sorted(deltas.items())
        ]
        stmt = self._insert(balances)
        stmt = stmt.on_conflict_do_update(
            index_elements=["informant_id"],
            set_={
                "balance": balances.c.balance + stmt.excluded.balance,
                "earned": balances.c.earned + stmt.excluded.earned,
                "spent": balances.c.spent + stmt.excluded.spent,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        await conn.execute(stmt, rows)

    async def event(self, event_id: str) -> EventRecord | None:
        query = select(
            events.c.event_id,
            events.c.informant_id,
            events.c.action,
            events.c.occurred_at,
            events.c.points,
            events.c.shares,
            events.c.share_views,
            events.c.posts,
            events.c.body_hash,
            events.c.decision,
            events.c.day,
            events.c.late,
            events.c.province,
            events.c.city,
            events.c.county,
            events.c.institution_id,
        ).where(events.c.event_id == event_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return EventRecord(
            event_id=row.event_id,
            informant_id=row.informant_id,
            action=row.action,
            occurred_at=row.occurred_at,
            points=row.points,
            counters=(row.shares, row.share_views, row.posts),
            body_hash=row.body_hash,
            decision=row.decision,
            day=row.day.toordinal(),
            late=row.late,
            placement=Placement(row.province, row.city, row.county, row.institution_id),
        )

    async def recorded(self, event_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """The body hash and the stored decision of each of these event ids the ledger
        holds."""
        if not event_ids:
            return {}
        # One array (or JSON) parameter, not an IN list of thousands of bound values:
        # planning such a list took PostgreSQL seconds.
        if self._engine.dialect.name == "postgresql":
            ids: list[str] | str = list(event_ids)
            query = _PG_RECORDED
        else:
            query, ids = _SQLITE_RECORDED, msgspec.json.encode(list(event_ids)).decode()
        async with self._engine.connect() as conn:
            rows = await conn.execute(query, {"ids": ids})
            return {row.event_id: (row.body_hash, bytes(row.decision)) for row in rows}

    async def entry(self, kind: str, ref_id: str) -> LedgerEntry | None:
        query = select(ledger_entries).where(
            and_(ledger_entries.c.kind == kind, ledger_entries.c.ref_id == ref_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _entry(row._mapping) if row is not None else None

    async def entries(
        self, informant_id: str, *, before: int | None, limit: int
    ) -> list[LedgerEntry]:
        query = select(ledger_entries).where(ledger_entries.c.informant_id == informant_id)
        if before is not None:
            query = query.where(ledger_entries.c.id < before)
        query = query.order_by(ledger_entries.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_entry(r._mapping) for r in rows]

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(select(1))


# Entry kinds that spend (the `spent` column of balances); "prize" adds to the balance
# only; credits and reversals move `earned` with it.
SPENDING = frozenset({"redemption", "draw"})


def _entry_key(w: RedemptionWrite | ReversalWrite | DrawWrite) -> tuple[str, str]:
    if isinstance(w, RedemptionWrite):
        return "redemption", w.redemption_id
    if isinstance(w, DrawWrite):
        return "draw", w.draw_id
    return "reversal", w.event_id


def _entry_rows(
    w: RedemptionWrite | ReversalWrite | DrawWrite, now: datetime
) -> list[dict[str, Any]]:
    if isinstance(w, DrawWrite):
        spend = {
            "informant_id": w.informant_id,
            "kind": "draw",
            "ref_id": w.draw_id,
            "points": -w.cost,
            "day": w.day,
            "created_at": w.at,
            "rule_version": w.rule_version,
            "detail": f"{w.draw} #{w.seq}: {w.prize}"[:256],
            "body_hash": w.body_hash,
        }
        if w.prize_kind == "none":
            return [spend]
        prize = {**spend, "kind": "prize", "points": w.points, "detail": w.detail[:256]}
        return [spend, {**prize, "body_hash": None}]
    if isinstance(w, RedemptionWrite):
        return [
            {
                "informant_id": w.informant_id,
                "kind": "redemption",
                "ref_id": w.redemption_id,
                "points": -w.points,
                "day": None,
                "created_at": w.at,
                "rule_version": w.rule_version,
                "detail": w.item[:256],
                "body_hash": w.body_hash,
            }
        ]
    return [
        {
            "informant_id": w.informant_id,
            "kind": "reversal",
            "ref_id": w.event_id,
            "points": -w.points,
            "day": None,
            "created_at": w.at,
            "rule_version": w.rule_version,
            "detail": w.reason[:256],
            "body_hash": None,
        }
    ]


def _draw_row(w: DrawWrite) -> dict[str, Any]:
    return {
        "draw_id": w.draw_id,
        "draw": w.draw,
        "seq": w.seq,
        "informant_id": w.informant_id,
        "pick": w.pick,
        "prize": w.prize,
        "points": w.points,
        "fallback": w.fallback,
        "cost": w.cost,
        "balance": w.balance,
        "body_hash": w.body_hash,
        "day": w.day,
        "created_at": w.at,
    }


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        informant_id=row["informant_id"],
        kind=row["kind"],
        ref_id=row["ref_id"],
        points=row["points"],
        day=row["day"],
        created_at=row["created_at"],
        rule_version=row["rule_version"],
        detail=row["detail"],
        body_hash=row["body_hash"],
    )


async def open_ledger(
    url: str,
    *,
    pool_size: int = 10,
    sqlite_synchronous: str = "NORMAL",
    sqlite_writer: str = "process",
    command_timeout: float = 10.0,
) -> SqlLedger:
    """Migrate the schema to head and start a ledger on `url`. SQLite credit transactions
    run in a child process (`sqlite_writer="process"`) or on the event loop ("loop")."""
    engine = create_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous)
    await migrate(engine)
    writer: CreditWriter
    if engine.dialect.name == "postgresql":
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        writer = PostgresCreditWriter(dsn, command_timeout=command_timeout)
    else:
        path = engine.url.database
        assert path, "an SQLite ledger needs a file"
        if sqlite_writer == "process":
            writer = process_writer = SqliteProcessWriter(path, synchronous=sqlite_synchronous)
            await process_writer.start()
        else:
            writer = SqliteCreditWriter(path, synchronous=sqlite_synchronous)
    ledger = SqlLedger(engine, writer)
    await ledger.start()
    return ledger
