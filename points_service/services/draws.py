"""The points lottery: draw (spend the cost, give the prize, once per draw id), describe
a draw with its commitment (and its seed once closed), list and verify its outcomes.

A 2xx answer means the ledger holds the draw: its cost spent (kind `draw`) and its prize
(kind `prize`; a points prize credits the balance at once, not `earned`) and the outcome
with its seq (the `draws` table), in one transaction. Redis steps first (see
adapters/redis_draws.py), each idempotent on the draw id, so a retry of a draw that
failed half-way finishes it with the same outcome and never spends twice.
"""

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from points_service.domain.calendar import Calendar, day_from_number
from points_service.domain.draws import (
    Commitment,
    DailyLimitReached,
    Draw,
    DrawRecord,
    DrawSet,
    Hold,
    Prize,
    Stock,
    decode_definition,
    definition_bytes,
    new_commitment,
    pick_of,
    replay,
    sha256_hex,
)
from points_service.domain.ledger import DrawWrite, WriteStatus
from points_service.domain.rules import RuleSetInvalid
from points_service.domain.state import Overdraw
from points_service.services.errors import Conflict, NotFound
from points_service.services.ports import DrawObserver, DrawState, DrawStore, Ledger

_log = structlog.get_logger("points_service.draws")
MAX_PENDING = 10_000  # draws kept to be written again (beyond it: left to the retries)


def draw_hash(informant_id: str, draw: str) -> str:
    return hashlib.blake2b(f"{informant_id}\x1f{draw}".encode(), digest_size=12).hexdigest()


class DrawCatalogue:
    """The live draws (rules/draws.toml), swapped in whole and only when valid; reloaded
    with the rules. A file broken at start leaves no draws, and says why."""

    def __init__(self, load: Callable[[], DrawSet]) -> None:
        self._load = load
        self.current = DrawSet()
        self.problems: tuple[str, ...] = ()
        self.reload()

    def reload(self) -> bool:
        try:
            candidate = self._load()
        except RuleSetInvalid as exc:
            self.problems = tuple(str(p) for p in exc.problems)
            return False
        self.current, self.problems = candidate, ()
        return True


@dataclass(frozen=True, slots=True)
class Drawn:
    draw_id: str
    draw: str
    informant_id: str
    seq: int
    prize: Prize
    points: int  # credited by a points prize
    fallback: bool
    cost: int
    balance: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class DrawView:
    draw: Draw
    status: str  # upcoming | open | closed
    commitment: Commitment
    revealed: bool  # whether the seed may be shown (the window has closed)
    stock: Stock


@dataclass(frozen=True, slots=True)
class Verified:
    draw: str
    outcomes: int
    problems: list[str]


class Lottery:
    def __init__(
        self,
        catalogue: DrawCatalogue,
        state: DrawState,
        store: DrawStore,
        ledger: Ledger,
        calendar: Calendar,
        clock: Callable[[], datetime],
        observer: DrawObserver,
        new_seed: Callable[[], bytes] = lambda: secrets.token_bytes(32),
    ) -> None:
        self.catalogue = catalogue
        self._state = state
        self._store = store
        self._ledger = ledger
        self._calendar = calendar
        self._clock = clock
        self._observer = observer
        self._new_seed = new_seed
        self._committed: dict[str, Commitment] = {}  # a commitment never changes
        # Draws Redis settled whose ledger commit failed: written by settle_pending once
        # the database answers, unless the client's retry does it first.
        self._pending: dict[str, tuple[str, Draw, str, str, Hold]] = {}

    async def _commitment(self, name: str) -> Commitment | None:
        """The draw's commitment; one is made for a draw of the file that has none."""
        found = self._committed.get(name)
        if found is None:
            found = await self._store.commitment(name)
            live = self.catalogue.current.get(name)
            if found is None and live is not None:
                found = await self._store.commit(
                    new_commitment(live, self._new_seed(), self._clock())
                )
                _log.info("draw_committed", draw=name, seed_sha256=found.seed_sha256)
            if found is not None:
                self._committed[name] = found
        return found

    async def commit_upcoming(self) -> int:
        """Make the seed of every draw of the file whose window has not closed (so its
        commitment is published before it opens); returns how many draws have one."""
        now = self._clock()
        names = [d.id for d in self.catalogue.current.draws.values() if now < d.ends]
        for name in names:
            await self._commitment(name)
        return len(names)

    async def _definition(self, name: str) -> tuple[Draw, Commitment]:
        commitment = await self._commitment(name)
        if commitment is None:
            raise NotFound(f"no draw {name!r}")
        return decode_definition(commitment.definition), commitment

    async def describe(self, name: str) -> DrawView:
        draw, commitment = await self._definition(name)
        status = draw.status(self._clock())
        stock = await self._store.stock(draw)
        return DrawView(draw, status, commitment, status == "closed", stock)

    async def draw(self, informant_id: str, name: str, draw_id: str) -> Drawn:
        body = draw_hash(informant_id, name)
        # Redis keeps draw records for a while; the ledger keeps them for ever.
        known = await self._store.record(draw_id)
        if known is not None:
            _check_same(known.informant_id, known.draw, known.body_hash, informant_id, name, body)
            draw, _ = await self._definition(known.draw)
            return _drawn(draw, known, replayed=True)
        if self.catalogue.current.get(name) is None:
            raise NotFound(f"no draw {name!r} in the draw file")
        draw, commitment = await self._definition(name)
        if sha256_hex(definition_bytes(self.catalogue.current.draws[name])) != (
            commitment.definition_sha256
        ):
            raise Conflict(
                "draw_changed",
                f"draw {name!r} differs from the definition committed with its seed",
                field="draw",
            )
        now = self._clock()
        status = draw.status(now)
        if status != "open":
            # A draw given its outcome inside the window and cut short before the ledger
            # is recorded; one only held is refunded, never drawn: once the window has
            # closed the seed is public, and a client could finish only its winners.
            held = await self._state.held(informant_id, draw_id)
            if held is None or held.h != body or held.o is None:
                if held is not None and held.h == body:
                    await self._state.refund(informant_id, name, draw_id, body, held.d)
                code = "draw_not_open" if status == "upcoming" else "draw_closed"
                self._observer.draw_result(name, code)
                raise Conflict(code, f"draw {name!r} is {status}", field="draw")
        day = self._calendar.day_number(now)
        result = await self._state.hold(informant_id, draw, draw_id, body, day)
        if isinstance(result, Overdraw):
            self._observer.draw_result(name, "insufficient_balance")
            raise Conflict(
                "insufficient_balance", f"balance {result.balance} is less than {draw.cost}"
            )
        if isinstance(result, DailyLimitReached):
            self._observer.draw_result(name, "daily_limit_reached")
            raise Conflict(
                "daily_limit_reached",
                f"{result.count} draws of {name!r} today; the limit is {draw.daily_limit}",
            )
        hold, _ = result
        if hold.h != body:
            raise Conflict(
                "draw_id_reused",
                f"draw_id {draw_id!r} was already used for another draw",
                field="draw_id",
            )
        if hold.o is None:
            hold = await self._take(informant_id, draw, draw_id, body, hold, commitment.seed)
        try:
            return await self._record(informant_id, draw, draw_id, body, hold)
        except Exception:
            # Redis has given the outcome (and stock and seq) for good: the ledger must
            # get it, whether or not the client comes back.
            if len(self._pending) < MAX_PENDING:
                self._pending[draw_id] = (informant_id, draw, draw_id, body, hold)
            raise

    async def settle_pending(self) -> int:
        """Write the draws whose ledger commit failed (a retry may have done it: then
        the ledger has it already); returns how many were written only now."""
        written = 0
        for draw_id, (informant_id, draw, _, body, hold) in list(self._pending.items()):
            done = await self._record(informant_id, draw, draw_id, body, hold)
            self._pending.pop(draw_id, None)
            written += not done.replayed
        return written

    async def _take(
        self, informant_id: str, draw: Draw, draw_id: str, body: str, hold: Hold, seed: bytes
    ) -> Hold:
        taken = await self._state.take(draw, draw_id, pick_of(seed, draw_id, draw.total_weight))
        if isinstance(taken, str):
            await self._state.refund(informant_id, draw.id, draw_id, body, hold.d)
            self._observer.draw_result(draw.id, taken)
            what = "every prize is gone" if taken == "sold_out" else "the budget is spent"
            raise Conflict(taken, f"draw {draw.id!r}: {what}", field="draw")
        prize = draw.prize(taken.p)
        assert prize is not None, "the stock script gives prizes of the table it was sent"
        return await self._state.settle(informant_id, draw_id, taken, prize.points or 0)

    async def _record(
        self, informant_id: str, draw: Draw, draw_id: str, body: str, hold: Hold
    ) -> Drawn:
        taken = hold.o
        assert taken is not None, "a settled record holds its outcome"
        prize = draw.prize(taken.p)
        assert prize is not None
        record = DrawRecord(
            draw_id=draw_id,
            draw=draw.id,
            seq=taken.n,
            informant_id=informant_id,
            pick=int(taken.k),
            prize=prize.id,
            points=prize.points or 0,
            fallback=bool(taken.f),
            cost=hold.c,
            balance=hold.b,
            body_hash=body,
            created_at=self._clock(),
        )
        [status] = await self._ledger.commit(
            [
                DrawWrite(
                    informant_id=informant_id,
                    draw_id=draw_id,
                    draw=draw.id,
                    seq=record.seq,
                    pick=record.pick,
                    prize=prize.id,
                    prize_kind=prize.kind,
                    points=record.points,
                    fallback=record.fallback,
                    cost=record.cost,
                    balance=record.balance,
                    body_hash=body,
                    day=day_from_number(hold.d),
                    at=record.created_at,
                    rule_version=self.catalogue.current.version[:16],
                    detail=f"{draw.id}: {prize.title or prize.id}",
                )
            ]
        )
        replayed = status is WriteStatus.EXISTING
        if not replayed:
            self._observer.draw_result(draw.id, prize.id)
            _log.info(
                "draw",
                draw=draw.id,
                seq=record.seq,
                prize=prize.id,
                fallback=record.fallback,
                points=record.points,
            )
        return _drawn(draw, record, replayed=replayed)

    async def results(
        self, name: str, after: int, limit: int
    ) -> tuple[Commitment, list[DrawRecord]]:
        """A closed draw's outcomes in seq order, and its commitment (the seed is public
        by then)."""
        draw, commitment = await self._definition(name)
        if draw.status(self._clock()) != "closed":
            raise Conflict(
                "draw_not_closed", f"draw {name!r} is not closed: its outcomes stay private"
            )
        return commitment, await self._store.records(name, after=after, limit=limit)

    async def names(self) -> list[str]:
        """Every draw of the file or with a commitment."""
        committed = {c.draw for c in await self._store.commitments()}
        return sorted(committed | set(self.catalogue.current.draws))

    async def verify(self, name: str) -> Verified:
        """Recompute every outcome of a closed draw from its seed, in seq order, and
        compare with what the ledger recorded."""
        draw, commitment = await self._definition(name)
        if draw.status(self._clock()) != "closed":
            raise Conflict("draw_not_closed", f"draw {name!r} is not closed: nothing to verify")
        problems = []
        if sha256_hex(commitment.seed) != commitment.seed_sha256:
            problems.append("the seed's sha256 is not the published commitment")
        if sha256_hex(commitment.definition) != commitment.definition_sha256:
            problems.append("the definition's sha256 is not the published one")
        records = await self._store.records(name)
        problems += replay(draw, commitment.seed, [r.recorded() for r in records])
        problems += await self._store.ledger_problems(records)
        return Verified(name, len(records), problems)


def _check_same(
    informant_id: str, draw: str, body: str, want_informant: str, want_draw: str, want: str
) -> None:
    if (informant_id, draw, body) != (want_informant, want_draw, want):
        raise Conflict(
            "draw_id_reused",
            "this draw_id was already used for another draw",
            field="draw_id",
        )


def _drawn(draw: Draw, record: DrawRecord, *, replayed: bool) -> Drawn:
    prize = draw.prize(record.prize) or draw.no_prize
    return Drawn(
        draw_id=record.draw_id,
        draw=record.draw,
        informant_id=record.informant_id,
        seq=record.seq,
        prize=prize,
        points=record.points,
        fallback=record.fallback,
        cost=record.cost,
        balance=record.balance,
        replayed=replayed,
    )
