"""Leaderboards: fed by the credit path, read by the API, rebuilt and reconciled from the
ledger (the truth; Redis is a projection of it).

A credited event moves every board its metrics, its informant's placement (as the
profile said when it was credited) and its programme day name, in one pipelined round
trip after the ledger commit: the commit decides that the event counts, exactly once. If
the process dies between the two, or Redis refuses the write, the boards miss the event
until `leaderboards reconcile` reports it and `leaderboards rebuild` repairs it.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, NamedTuple, TypeVar, overload

import msgspec

from points_service.domain.boards import (
    METRICS,
    NOT_SHOWN,
    Board,
    BoardSet,
    BoardTotals,
    DayTotal,
    Placement,
    Shown,
    Window,
    board_targets,
    board_writes,
    metric_values,
    parse_scope,
)
from points_service.domain.calendar import Calendar
from points_service.domain.engine import Decision
from points_service.domain.periods import (
    PERIOD_KINDS,
    Period,
    parse_period,
    period_of,
    periods_of,
)
from points_service.services.display import DisplayCache
from points_service.services.errors import InvalidInput
from points_service.services.ports import (
    BoardStore,
    LedgerTotals,
    NullObserver,
    Observer,
    Standings,
)

MAX_LIMIT = 1000
MAX_AROUND = 50
MAX_IDS = 1000
# How long a worker shows an informant's display fields before reading them again.
DISPLAY_TTL = 10.0
DISPLAY_CACHE_SIZE = 50_000
# Rows of a closed period's final standings kept in SQL per board.
FINAL_ROWS = 1000


@dataclass(frozen=True, slots=True)
class PeriodView:
    key: str
    start: datetime | None
    end: datetime | None
    next_reset: datetime | None


class _Named(NamedTuple):
    """A read's board, resolved from the request's names, with what every answer needs."""

    board: Board
    period: Period
    view: PeriodView
    closes: datetime | None  # when its standings are final (None: never)


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One row shown."""

    rank: int
    informant_id: str
    score: int
    display: Shown


class Entries(Sequence[Entry]):
    """The rows of a page or of a standing's neighbours, as columns: an Entry is made only
    for whoever reads one, and the API encodes a page from the columns. A top page has a
    hundred rows, and making a row object at each layer cost more than reading the page
    from Redis (bench/RESULTS.md)."""

    __slots__ = ("ids", "ranks", "scores", "shown")

    def __init__(
        self, ranks: list[int], ids: list[str], scores: list[int], shown: list[Shown]
    ) -> None:
        assert len(ranks) == len(ids) == len(scores) == len(shown), "one value per row"
        self.ranks = ranks
        self.ids = ids
        self.scores = scores
        self.shown = shown

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Entry(self.ranks[index], self.ids[index], self.scores[index], self.shown[index])

    def __iter__(self) -> Iterator[Entry]:
        return map(Entry, self.ranks, self.ids, self.scores, self.shown)

    def __repr__(self) -> str:
        return f"Entries({list(self)!r})"


NO_ENTRIES: Final = Entries([], [], [], [])


class Page(msgspec.Struct, frozen=True, gc=False):
    metric: str
    scope: str
    period: PeriodView
    members: int
    entries: Entries
    next_cursor: str | None
    final: bool = False  # a closed period, served from its final standings


class Standing(msgspec.Struct, frozen=True, gc=False):
    metric: str
    scope: str
    period: PeriodView
    informant_id: str
    rank: int | None
    score: int
    percentile: float | None
    members: int
    neighbours: Entries


class Rank(msgspec.Struct, frozen=True, gc=False):
    informant_id: str
    rank: int | None
    score: int


class Ranks(msgspec.Struct, frozen=True, gc=False):
    metric: str
    scope: str
    period: PeriodView
    members: int
    ranks: list[Rank]


@dataclass(frozen=True, slots=True)
class Difference:
    board: Board
    informant_id: str
    redis: int | None
    ledger: int | None


RECONCILE_NOTE = "reconcile"
# Kept once every board in this Redis has been named in the registry (see name_unnamed).
NAMED_NOTE = "boards-named"


class ReconcileNote(msgspec.Struct, frozen=True):
    """How the last reconcile ended (any process: the CLI, the API, the console)."""

    at: datetime
    ok: bool  # False: it failed before it finished (`error` says why)
    differences: int
    boards: int  # boards with at least one difference
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BoardFilter:
    """Which boards a rebuild or reconcile covers: None means every one."""

    metric: str | None = None
    scope_kind: str | None = None
    period_kind: str | None = None

    def check(self) -> None:
        for name, value, allowed in (
            ("metric", self.metric, METRICS),
            ("scope", self.scope_kind, ("all", "province", "city", "county", "institution")),
            ("period", self.period_kind, PERIOD_KINDS),
        ):
            if value is not None and value not in allowed:
                raise InvalidInput(name, f"{value!r} is not one of {', '.join(allowed)}")

    def covers(self, board: Board, period_kind: str) -> bool:
        return (
            (self.metric is None or board.metric == self.metric)
            and (self.scope_kind is None or board.scope.partition(":")[0] == self.scope_kind)
            and (self.period_kind is None or period_kind == self.period_kind)
        )


@dataclass
class CloseReport:
    closed: int = 0  # boards whose final standings were written
    removed: int = 0  # boards past their retention, unlinked from Redis


@dataclass
class RebuildReport:
    boards: int = 0
    members: int = 0
    removed: int = 0
    day_rows: int = 0


class Leaderboards:
    def __init__(
        self,
        store: BoardStore,
        totals: LedgerTotals,
        boards: BoardSet,
        calendar: Calendar,
        grace: timedelta,
        clock: Callable[[], datetime],
        observer: Observer | None = None,
        standings: Standings | None = None,
    ) -> None:
        self._standings = standings
        self._store = store
        self._totals = totals
        self.boards = boards
        self._calendar = calendar
        self._grace = grace
        self._clock = clock
        self._observer = observer or NullObserver()
        self._target_cache: dict[tuple[Placement, int], dict[str, tuple[Board, ...]]] = {}
        self._named_cache: dict[tuple[str, str, str | None, int], _Named] = {}
        # By placement and the periods of a day that are live (see _live_targets).
        self._live_cache: dict[tuple[Placement, tuple[str, ...]], _Targets] = {}
        self._live_days: dict[int, tuple[str, ...]] = {}
        # Board writes sent and not waited for (one node), until Redis has applied them.
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._display = DisplayCache(DISPLAY_TTL, DISPLAY_CACHE_SIZE)

    # --- the credit path -------------------------------------------------------------

    def _targets(self, placement: Placement, day: int) -> dict[str, tuple[Board, ...]]:
        targets = self._target_cache.get((placement, day))
        if targets is None:
            targets = _remember(
                self._target_cache, (placement, day), board_targets(self.boards, placement, day)
            )
        return targets

    def _live_targets(self, placement: Placement, day: int) -> dict[str, tuple[Board, ...]]:
        """`_targets` without the boards of periods past their retention (for old days,
        the `all` boards only: one entry per placement serves all of them)."""
        live = self._live_days.get(day)
        if live is None:
            if len(self._live_days) > 100_000:
                self._live_days.clear()
            live = self._live_days[day] = tuple(
                p.key for p in periods_of(day) if self._period_live(p)
            )
        targets = self._live_cache.get((placement, live))
        if targets is None:
            kept = {
                metric: tuple(b for b in boards if b.period in live)
                for metric, boards in board_targets(self.boards, placement, day).items()
            }
            targets = _remember(self._live_cache, (placement, live), kept)
        return targets

    async def credited(
        self, items: Sequence[tuple[str, Placement, Decision]], *, live_only: bool = False
    ) -> None:
        """Events the ledger has just taken for the first time (listed informants only),
        summed per board and member, in one round trip. A failure is reported, not
        raised: the boards are a projection, and reconcile finds the gap. `live_only`
        leaves out the boards of periods past their retention (a bulk import of old
        history: those boards would only be removed again).

        The writes are sent before this returns. When the store is `ordered` (one Redis
        node: every later read of this process reaches Redis behind them) their answer
        is not waited for, since it could change nothing the caller answers."""
        increments: dict[Board, dict[str, int]] = {}
        targeting = self._live_targets if live_only else self._targets
        for informant_id, placement, d in items:
            if d.late:
                continue
            targets = targeting(placement, d.day)
            for metric, delta in (
                ("points", d.p),
                ("shares", d.c[0]),
                ("share_views", d.c[1]),
                ("posts", d.c[2]),
            ):
                if delta:
                    for board in targets.get(metric, ()):
                        members = increments.get(board)
                        if members is None:
                            members = increments[board] = {}
                        members[informant_id] = members.get(informant_id, 0) + delta
        if not increments:
            return
        self._observer.boards_written(len(items))
        try:
            done = asyncio.ensure_future(self._store.add(increments))
            if self._store.ordered:
                self._in_flight.add(done)
                done.add_done_callback(self._added)
            else:
                await done
        except Exception as exc:
            self._observer.boards_failed(exc)

    def _added(self, done: "asyncio.Future[Any]") -> None:
        self._in_flight.discard(done)
        if not done.cancelled() and (exc := done.exception()) is not None:
            self._observer.boards_failed(exc)

    async def drain(self) -> None:
        """Wait until Redis has applied every board write sent so far (before the
        connection closes: a process that stops must not drop the last increments)."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def reversed(
        self, informant_id: str, placement: Placement, day: int, points: int, counters: list[int]
    ) -> None:
        writes = board_writes(self.boards, placement, day, metric_values(points, counters))
        if writes:
            try:
                await self._store.take_back(informant_id, writes)
            except Exception as exc:
                self._observer.boards_failed(exc)

    # --- hiding and restoring an informant -----------------------------------------

    async def _own_totals(self, informant_id: str) -> dict[Board, int]:
        rows = self._totals.informant_days(informant_id=informant_id)
        scores: dict[Board, int] = {}
        live = self._wanted(BoardFilter())
        async for board, members in _async_board_totals(rows, self.boards, live):
            scores[board] = members.get(informant_id, 0)
        return scores

    async def hide(self, informant_id: str) -> None:
        await self._store.remove(informant_id, list(await self._own_totals(informant_id)))

    async def restore(self, informant_id: str) -> None:
        await self._store.put(informant_id, await self._own_totals(informant_id))

    # --- periods ---------------------------------------------------------------------

    def today(self) -> int:
        return self._calendar.day_number(self._clock())

    def _start(self, day: int) -> datetime:
        return self._calendar.day_start(date.fromordinal(day))

    def closes_at(self, period: Period) -> datetime | None:
        """When a period's standings are final: its end plus the grace window."""
        if not period.bounded:
            return None
        return self._start(period.last_day + 1) + self._grace

    def _period_live(self, period: Period) -> bool:
        """A period's boards are kept in Redis: not yet closed, or closed less than its
        retention ago."""
        closes = self.closes_at(period)
        if closes is None:
            return True
        keep = timedelta(days=self.boards.retention_days.get(period.kind, 0))
        return self._clock() < closes + keep

    def period_view(self, period: Period) -> PeriodView:
        if not period.bounded:
            return PeriodView(period.key, None, None, None)
        end = self._start(period.last_day + 1)
        return PeriodView(period.key, self._start(period.first_day), end, end)

    def resolve(self, metric: str, scope: str, period: str | None) -> tuple[Board, Period]:
        """The board an API request names; InvalidInput names the bad parameter. A bare
        period kind (`week`) means the current one; no period means the current month."""
        if metric not in METRICS:
            raise InvalidInput("metric", f"{metric!r} is not one of {', '.join(METRICS)}")
        try:
            scope_kind, scope_key = parse_scope(scope)
        except ValueError as exc:
            raise InvalidInput("scope", str(exc)) from None
        text = period or "month"
        try:
            resolved = period_of(text, self.today()) if text in PERIOD_KINDS else parse_period(text)
        except ValueError as exc:
            raise InvalidInput("period", str(exc)) from None
        if not self.boards.has(metric, scope_kind, resolved.kind):
            raise InvalidInput(
                "period", f"no {resolved.kind} board of {metric} by {scope_kind} is kept"
            )
        return Board(metric, scope_key, resolved.key), resolved

    def _named(self, metric: str, scope: str, period: str | None) -> _Named:
        """`resolve`, and the period's view and close, kept per day (reads name the same
        few boards again and again; a bare period kind means another one tomorrow)."""
        key = (metric, scope, period, self.today())
        named = self._named_cache.get(key)
        if named is None:
            board, resolved = self.resolve(metric, scope, period)
            if len(self._named_cache) > 10_000:
                self._named_cache.clear()
            named = self._named_cache[key] = _Named(
                board, resolved, self.period_view(resolved), self.closes_at(resolved)
            )
        return named

    # --- reading ---------------------------------------------------------------------

    async def shown(self, ids: Sequence[str]) -> list[Shown]:
        """Display fields (name, unit, region) of each informant, in the order of `ids`:
        kept for DISPLAY_TTL in this worker (services/display.py), read for those not."""
        found = self._display.fresh(ids)
        if found is not None:
            return found
        mark = self._display.mark()
        kept, missing = self._display.split(ids)
        fetched = await self._store.display(missing)
        read = {i: fetched.get(i, NOT_SHOWN) for i in missing}
        self._display.keep(read, mark)  # not the fields of those forgotten meanwhile
        return [read[i] if s is None else s for i, s in zip(ids, kept, strict=True)]

    def forget_display(self, informant_id: str) -> None:
        self._display.forget(informant_id)

    async def _entries(self, window: Window) -> Entries:
        shown = window.display
        if shown is None:
            shown = await self.shown(window.ids)
        return Entries(window.ranks(), window.ids, window.scores, shown)

    async def top(
        self, metric: str, scope: str, period: str | None, limit: int, cursor: str | None
    ) -> Page:
        named = self._named(metric, scope, period)
        board = named.board
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"limit must be between 1 and {MAX_LIMIT}")
        start = _cursor(cursor)
        final = await self._final(named)
        if final is not None:
            members, ranked = final
            chosen = ranked[start : start + limit]
            entries = await self._final_entries(chosen)
            after = start + len(chosen)
            more = after < len(ranked) and bool(chosen)
        else:
            live = await self._store.window(board, start, limit)
            members = live.members
            entries = await self._entries(live)
            after = start + len(live.ids)
            more = after < members and bool(live.ids)
        return Page(
            metric,
            board.scope,
            named.view,
            members,
            entries,
            str(after) if more else None,
            final=final is not None,
        )

    async def standing(
        self, metric: str, scope: str, period: str | None, informant_id: str, around: int
    ) -> Standing:
        named = self._named(metric, scope, period)
        board, view = named.board, named.view
        if not 0 <= around <= MAX_AROUND:
            raise InvalidInput("around", f"around must be between 0 and {MAX_AROUND}")
        final = await self._final(named)
        if final is not None:
            members, ranked = final
            position = next((n for n, (_, i, _) in enumerate(ranked) if i == informant_id), None)
            if position is not None:
                rank, _, score = ranked[position]
                window = 2 * around + 1
                start = max(0, min(position - around, len(ranked) - window))
                chosen = ranked[start : start + window]
                return Standing(
                    metric,
                    board.scope,
                    view,
                    informant_id,
                    rank,
                    score,
                    round(100 * (members - rank + 1) / members, 2),
                    members,
                    await self._final_entries(chosen),
                )
        found = await self._store.around(board, informant_id, around)
        members = found.members
        if found.standing is None or found.window is None:
            return Standing(
                metric, board.scope, view, informant_id, None, 0, None, members, NO_ENTRIES
            )
        score, higher = found.standing
        percentile = round(100 * (members - higher) / members, 2) if members else None
        return Standing(
            metric,
            board.scope,
            view,
            informant_id,
            higher + 1,
            score,
            percentile,
            members,
            await self._entries(found.window),
        )

    async def ranks(self, metric: str, scope: str, period: str | None, ids: list[str]) -> Ranks:
        named = self._named(metric, scope, period)
        board = named.board
        if not ids or len(ids) > MAX_IDS:
            raise InvalidInput("ids", f"give between 1 and {MAX_IDS} informant ids")
        known: dict[str, Rank] = {}
        members = None
        final = await self._final(named)
        if final is not None:
            members = final[0]
            wanted = set(ids)
            known = {i: Rank(i, r, score) for r, i, score in final[1] if i in wanted}
        rest = [i for i in ids if i not in known]
        if rest or members is None:
            live_members, found = await self._store.scores(board, rest)
            members = live_members if members is None else members
            for i, f in zip(rest, found, strict=True):
                known[i] = Rank(i, None, 0) if f is None else Rank(i, f[1] + 1, f[0])
        ranks = [known[i] for i in ids]
        return Ranks(metric, board.scope, named.view, members, ranks)

    # --- closing periods -------------------------------------------------------------

    async def _final_entries(self, chosen: list[tuple[int, str, int]]) -> Entries:
        """Rows of a closed period's final standings, (rank, informant, score) each."""
        ids = [i for _, i, _ in chosen]
        shown = await self.shown(ids)
        return Entries([r for r, _, _ in chosen], ids, [score for _, _, score in chosen], shown)

    async def _final(self, named: _Named) -> tuple[int, list[tuple[int, str, int]]] | None:
        closes = named.closes
        if self._standings is None or closes is None or self._clock() < closes:
            return None
        return await self._standings.closed(named.board)

    async def close_periods(self) -> CloseReport:
        """Write the final standings of every board whose period has closed (its end plus
        the grace window: no event can count in it any more), once; unlink boards whose
        retention has passed."""
        report = CloseReport()
        if self._standings is None:
            return report
        recorded = await self._standings.recorded()
        expired = []
        # The registry, not a SCAN: with millions of informant keys a SCAN a minute
        # would walk the whole keyspace each time.
        for board in await self._store.boards():
            period = parse_period(board.period)
            closes = self.closes_at(period)
            if closes is None or self._clock() < closes:
                continue
            if board not in recorded:
                top = await self._store.window(board, 0, FINAL_ROWS)
                ranked = list(zip(top.ranks(), top.ids, top.scores, strict=True))
                await self._standings.record(board, top.members, ranked, self._clock())
                report.closed += 1
            if not self._period_live(period):
                expired.append(board)
        await self._store.unlink(expired)
        await self._store.unregister(expired)
        report.removed = len(expired)
        return report

    async def name_unnamed(self) -> int | None:
        """Once per Redis (a note says it was done): name in the registry every board a
        SCAN finds that it lacks: boards from before board writes named their boards,
        or written behind the service's back. One process of all does it (a lock);
        None where another holds the lock or the note is there, else how many."""
        if await self._store.read_note(NAMED_NOTE) is not None:
            return None
        if not await self._store.try_lock(NAMED_NOTE, 600):
            return None
        try:
            unnamed = set(await self._store.boards(scan=True)) - set(await self._store.boards())
            await self._store.register(unnamed)
            await self._store.keep_note(NAMED_NOTE, b"1")
        finally:
            await self._store.release(NAMED_NOTE)
        return len(unnamed)

    async def close_periods_once(self, every: int) -> CloseReport | None:
        """close_periods in the one worker (of all processes) that wins this round."""
        if not await self._store.try_lock("close-periods", max(1, every - 1)):
            return None
        return await self.close_periods()

    # --- rebuild and reconcile -------------------------------------------------------

    def _wanted(self, only: BoardFilter) -> Callable[[Board, Period], bool]:
        # Whether a period is live, once per period and as of the first ask: a rebuild
        # asks for every placement's boards of every period, and the clock was ~4 % of it.
        live: dict[str, bool] = {}

        def wanted(board: Board, period: Period) -> bool:
            if not only.covers(board, period.kind):
                return False
            known = live.get(period.key)
            if known is None:
                known = live[period.key] = self._period_live(period)
            return known

        return wanted

    def _since(self, only: BoardFilter) -> int | None:
        """The first day a rebuild of `only` needs: live periods only, unless `all`."""
        kinds = [only.period_kind] if only.period_kind else list(PERIOD_KINDS)
        if "all" in kinds:
            return None
        today = self.today()
        first = today
        for kind in kinds:
            keep = self.boards.retention_days.get(kind, 0)
            # The oldest period that may still be live ended `keep` days plus the grace
            # window ago, at most: step back period by period from today's.
            period = period_of(kind, today)
            horizon = today - keep - self._grace.days - 2
            while period.first_day > horizon:
                period = period_of(kind, period.first_day - 1)
            first = min(first, period.first_day)
        return first

    async def rebuild(
        self,
        only: BoardFilter,
        progress: Callable[[int], None] | None = None,
        *,
        scan: bool = False,
    ) -> RebuildReport:
        """Every covered board from the ledger, into shadow keys swapped in one by one;
        boards in Redis that the ledger no longer supports are removed: those the
        registry names, and with `scan` every board a SCAN of the keyspace finds."""
        only.check()
        try:
            report = await self._rebuild(only, progress, scan)
        except Exception:
            self._observer.rebuilt(None)
            raise
        self._observer.rebuilt(report.day_rows)
        return report

    async def _rebuild(
        self, only: BoardFilter, progress: Callable[[int], None] | None, scan: bool
    ) -> RebuildReport:
        report = RebuildReport()
        found = await self._store.boards()
        if scan:  # and the names of boards that are gone, to drop them too
            found += await self._store.boards(scan=True)
        existing = {b for b in found if only.covers(b, parse_period(b.period).kind)}
        rows = _counted(self._totals.informant_days(since_day=self._since(only)), report, progress)
        ready: list[tuple[Board, dict[str, int]]] = []
        size = 0
        # Redis builds one chunk of boards while the next is summed: one chunk in flight.
        writing: asyncio.Task[int] | None = None
        async for board, members in _async_board_totals(rows, self.boards, self._wanted(only)):
            ready.append((board, members))
            size += len(members)
            existing.discard(board)
            report.boards += 1
            if len(ready) >= 500 or size >= 50_000:  # many small boards per round trip
                if writing is not None:
                    report.members += await writing
                writing = asyncio.create_task(self._store.replace(ready))
                ready, size = [], 0
        if writing is not None:
            report.members += await writing
        if ready:
            report.members += await self._store.replace(ready)
        stale = [b for b in existing if self._period_live(parse_period(b.period))]
        await self._store.unlink(stale)
        await self._store.unregister(stale)
        report.removed = len(stale)
        return report

    async def reconcile(self, only: BoardFilter, *, scan: bool = False) -> list[Difference]:
        """Every member of every covered board against the ledger's totals; the boards
        in Redis are those the registry names, or with `scan` those a SCAN finds. The
        outcome is kept for the console (`last_reconcile`), whichever process ran it."""
        only.check()
        started = time.monotonic()
        try:
            differences = await self._reconcile(only, scan)
        except Exception as exc:
            self._observer.reconciled(None)
            await self._note(ReconcileNote(self._clock(), False, 0, 0, 0.0, repr(exc)[:500]))
            raise
        self._observer.reconciled(len(differences))
        boards = len({d.board for d in differences})
        seconds = round(time.monotonic() - started, 3)
        await self._note(ReconcileNote(self._clock(), True, len(differences), boards, seconds))
        return differences

    async def _note(self, note: ReconcileNote) -> None:
        with contextlib.suppress(Exception):  # a note lost is a status page out of date
            await self._store.keep_note(RECONCILE_NOTE, msgspec.json.encode(note))

    async def last_reconcile(self) -> ReconcileNote | None:
        raw = await self._store.read_note(RECONCILE_NOTE)
        if raw is None:
            return None
        try:
            return msgspec.json.decode(raw, type=ReconcileNote)
        except msgspec.DecodeError:
            return None

    async def _reconcile(self, only: BoardFilter, scan: bool) -> list[Difference]:
        differences: list[Difference] = []
        wanted = self._wanted(only)
        existing = {
            b for b in await self._store.boards(scan=scan) if wanted(b, parse_period(b.period))
        }
        rows = self._totals.informant_days(since_day=self._since(only))
        async for board, expected in _async_board_totals(rows, self.boards, wanted):
            existing.discard(board)
            actual = await self._store.members(board)
            for informant_id in sorted(expected.keys() | actual.keys()):
                want, got = expected.get(informant_id), actual.get(informant_id)
                if want != got:
                    differences.append(Difference(board, informant_id, got, want))
        for board in sorted(existing, key=lambda b: (b.metric, b.scope, b.period)):
            for informant_id, got in sorted((await self._store.members(board)).items()):
                differences.append(Difference(board, informant_id, got, None))
        return differences


_Targets = dict[str, tuple[Board, ...]]
_K = TypeVar("_K")


def _remember(cache: dict[_K, _Targets], key: _K, targets: _Targets) -> _Targets:
    if len(cache) > 100_000:
        cache.clear()
    cache[key] = targets
    return targets


def _cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 12:
        raise InvalidInput("cursor", "not a cursor this API gave")
    return int(cursor)


async def _counted(
    rows: AsyncIterator[DayTotal], report: RebuildReport, progress: Callable[[int], None] | None
) -> AsyncIterator[DayTotal]:
    async for row in rows:
        report.day_rows += 1
        if progress is not None and report.day_rows % 10_000 == 0:
            progress(report.day_rows)
        yield row


async def _async_board_totals(
    rows: AsyncIterator[DayTotal], boards: BoardSet, wanted: Callable[[Board, Period], bool]
) -> AsyncIterator[tuple[Board, dict[str, int]]]:
    totals = BoardTotals(boards, wanted)
    async for row in rows:
        for ready in totals.add(row):
            yield ready
    for ready in totals.finish():
        yield ready
