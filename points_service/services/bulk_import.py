"""History import in bulk: the same judgement as `imports.Imports`, made in this process.

The credit path asks Redis to judge each event (one script call per informant and
batch) and then writes the boards of every period the event falls in; for a region's
years of records that is most of the time an import takes. An informant that neither
the ledger nor Redis knows yet has, by definition, an empty state, so the whole of
their history can be judged here by the reference semantics (`engine.decide`, which a
test holds equal to `apply.lua`), committed to the ledger a large chunk of informants at
a time, and only then handed to Redis: their final state (`recovery.put_back`) and the
boards of periods still kept (open, or within their retention), summed per member.

What differs from the credit path, by design:
- an informant the ledger or Redis already knows goes through the credit path
  (`Imports`) instead, since their state is theirs to judge against;
- boards of periods past their retention are not written (Redis would only remove them
  again), so those periods get no final standings from an import; reports and
  nominations come from the ledger and are the same either way.

An informant whose first live event arrives while their history is being judged gets a
state from that event first; their state is then put back from the ledger, which holds
both (`put_back` reports them).
"""

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from points_service.domain.boards import NOWHERE, Placement
from points_service.domain.engine import Decision, InformantState, decide
from points_service.domain.ledger import CreditWrite, WriteStatus
from points_service.domain.profiles import Profile
from points_service.services.credit import Credits, Rejected, level_marks, outcome_of
from points_service.services.errors import InvalidInput
from points_service.services.imports import (
    Advance,
    ImportReport,
    Imports,
    Refused,
    by_informant,
    collector_paused,
    decode_line,
)
from points_service.services.ports import Ledger
from points_service.services.recovery import StateRecovery

CHUNK_EVENTS = 20_000  # events judged and committed together (whole informants)
COLLECT_EVERY = 8  # chunks landed between passes of the cyclic collector
_REUSED = "was already used for a different event"


@dataclass
class BulkReport(ImportReport):
    through_credit_path: int = 0  # informants known already, imported the usual way
    raced: int = 0  # informants whose state was put back from the ledger (see above)


@dataclass
class _Chunk:
    """A chunk of informants, judged: what to commit, and what to do once it is."""

    writes: list[CreditWrite] = field(default_factory=list)
    states: dict[str, tuple[InformantState, Profile | None]] = field(default_factory=dict)
    listed: dict[str, Placement] = field(default_factory=dict)
    lines: int = 0


class _Turns:
    """Let the event loop run every few milliseconds of judging: the last chunk's `COPY`
    goes out only in its turns, and the database sat idle between them."""

    def __init__(self, every: float = 0.002) -> None:
        self._every = every
        self._next = time.perf_counter() + every

    async def __call__(self) -> None:
        if time.perf_counter() >= self._next:
            await asyncio.sleep(0)
            self._next = time.perf_counter() + self._every


class BulkImports:
    def __init__(
        self,
        credits: Credits,
        ledger: Ledger,
        recovery: StateRecovery,
        clock: Callable[[], datetime],
        chunk: int = CHUNK_EVENTS,
    ) -> None:
        self._credits = credits
        self._ledger = ledger
        self._recovery = recovery
        self._clock = clock
        self._chunk = chunk
        # Event id -> body hash of each event this import has judged, so that an id
        # two informants' lines share is a duplicate (or a conflict) as in the ledger.
        self._seen: dict[str, str] = {}
        self._landed = 0

    async def run(
        self,
        lines: Iterable[tuple[int, bytes]],
        progress: Callable[[int, int], None] | None = None,
    ) -> BulkReport:
        report = BulkReport()
        people = by_informant(lines, report)
        # Millions of lines and their tuples live until the end, and each chunk's objects
        # for as long as it takes: the collector's passes over them were a quarter of the
        # import's time. It runs on the young generations once a chunk has landed instead.
        with collector_paused():
            gc.freeze()
            try:
                await self._chunks(people, report, progress)
            finally:
                gc.unfreeze()
        report.refused.sort(key=lambda r: r.line)
        return report

    async def _chunks(
        self,
        people: dict[str, list[tuple[int, bytes]]],
        report: BulkReport,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        advanced = Advance(sum(len(v) for v in people.values()), progress)
        known: list[list[tuple[int, bytes]]] = []
        landing: asyncio.Task[None] | None = None
        for group in self._groups(people):
            chunk = await self._judge(group, report, known)
            # The last chunk commits while this one was judged: one in flight.
            if landing is not None:
                await landing
            landing = asyncio.create_task(self._land(chunk, report, advanced))
            await asyncio.sleep(0)  # its statement is on its way before the next judging
        if landing is not None:
            await landing
        report.through_credit_path = len(known)
        # Informants already known go through the credit path, lanes of them side by side.
        lanes: list[list[tuple[int, bytes]]] = [[] for _ in range(16)]
        for n, person in enumerate(known):
            lanes[n % len(lanes)].extend(person)
        await Imports(self._credits).replay(lanes, report, advanced)

    def _groups(
        self, people: dict[str, list[tuple[int, bytes]]]
    ) -> Iterable[dict[str, list[tuple[int, bytes]]]]:
        group: dict[str, list[tuple[int, bytes]]] = {}
        size = 0
        for informant_id, person in people.items():
            group[informant_id] = person
            size += len(person)
            if size >= self._chunk:
                yield group
                group, size = {}, 0
        if group:
            yield group

    async def _judge(
        self,
        group: dict[str, list[tuple[int, bytes]]],
        report: BulkReport,
        known: list[list[tuple[int, bytes]]],
    ) -> _Chunk:
        """Each unknown informant's lines judged from an empty state, in time order."""
        unknown = await self._recovery.unknown(list(group))
        chunk = _Chunk()
        decoded = {}
        turn = _Turns()
        for informant_id, person in group.items():
            await turn()
            if informant_id not in unknown:
                known.append(person)
                continue
            chunk.lines += len(person)
            decoded[informant_id] = [(number, decode_line(raw)) for number, raw in person]
        ids = [
            e.event_id
            for items in decoded.values()
            for _, e in items
            if not isinstance(e, Rejected)
        ]
        recorded = {i: h for i, (h, _) in (await self._ledger.recorded(ids)).items()}
        now = self._clock()
        for informant_id, items in decoded.items():
            await turn()
            profile = unknown[informant_id]
            state = InformantState()
            placement = NOWHERE if profile is None else profile.placement
            if profile is None or profile.listed:
                chunk.listed[informant_id] = placement
            for number, event in items:
                if isinstance(event, Rejected):
                    report.refused.append(Refused(number, event.status, event.field, event.message))
                    continue
                try:
                    plan = self._credits.plan_history(event, now)
                except InvalidInput as exc:
                    report.refused.append(Refused(number, 422, exc.field, exc.message))
                    continue
                first = recorded.get(event.event_id) or self._seen.get(event.event_id)
                if first is not None and event.event_id not in state.decisions:
                    # Another informant's, in the ledger or earlier in this import.
                    self._answer_again(number, event.event_id, first == plan.h, report)
                    continue
                decision, replayed = decide(plan, state)
                if replayed:
                    self._answer_again(number, event.event_id, decision.h == plan.h, report)
                    continue
                if plan.dry:
                    report.dry_runs += 1
                    continue
                report.credited += 1
                report.points += decision.p
                self._seen[event.event_id] = plan.h
                chunk.writes.append(
                    CreditWrite(
                        event,
                        decision,
                        now,
                        imported=True,
                        placement=placement,
                        levels=level_marks(self._credits.levels, decision),
                    )
                )
            chunk.states[informant_id] = (state, profile)
        return chunk

    @staticmethod
    def _answer_again(number: int, event_id: str, same: bool, report: BulkReport) -> None:
        if same:
            report.duplicates += 1
        else:
            report.refused.append(
                Refused(number, 409, "event_id", f"event_id {event_id!r} {_REUSED}")
            )

    async def _land(self, chunk: _Chunk, report: BulkReport, advanced: Advance) -> None:
        """Commit a judged chunk, then give Redis the states and the boards."""
        statuses = await self._ledger.commit_new(chunk.writes) if chunk.writes else []
        # A write the ledger did not take (an id that came in since it was looked up)
        # means its informant's state counted it: theirs comes from the ledger instead.
        missed = {
            w.event.informant_id
            for w, status in zip(chunk.writes, statuses, strict=True)
            if status is not WriteStatus.INSERTED
        }
        report.raced += await self._recovery.put_back(
            {i: s for i, s in chunk.states.items() if i not in missed}, reload=sorted(missed)
        )
        judged: dict[tuple[str, str], tuple[int, int]] = {}
        boarded: list[tuple[str, Placement, Decision]] = []
        for w, status in zip(chunk.writes, statuses, strict=True):
            if status is not WriteStatus.INSERTED:
                continue
            key = (w.event.action, outcome_of(w.decision))
            count, points = judged.get(key, (0, 0))
            judged[key] = (count + 1, points + w.decision.p)
            placement = chunk.listed.get(w.event.informant_id)
            if placement is not None:
                boarded.append((w.event.informant_id, placement, w.decision))
        for (action, outcome), (count, points) in judged.items():
            self._credits.observer.event_judged(action, outcome, points, count)
        boards = self._credits.boards
        if boarded and boards is not None:
            await boards.credited(boarded, live_only=True)
        advanced(chunk.lines)
        # A chunk leaves a few dozen objects in cycles; a pass costs ~9 % of the import
        # (it walks everything young that is still alive), so one every few chunks.
        self._landed += 1
        if self._landed % COLLECT_EVERY == 0:
            gc.collect(1)
