"""The lottery's durable side: seeds with their committed definitions, and outcomes."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from points_service.adapters.sql.ledger import upsert_for
from points_service.adapters.sql.tables import draw_seeds, draws, ledger_entries
from points_service.domain.draws import Commitment, Draw, DrawRecord, Stock


def _commitment(row: Any) -> Commitment:
    return Commitment(
        draw=row.draw,
        seed=bytes.fromhex(row.seed),
        seed_sha256=row.seed_sha256,
        definition=bytes(row.definition),
        definition_sha256=row.definition_sha256,
        committed_at=row.committed_at,
    )


def _record(row: Any) -> DrawRecord:
    return DrawRecord(
        draw_id=row.draw_id,
        draw=row.draw,
        seq=row.seq,
        informant_id=row.informant_id,
        pick=row.pick,
        prize=row.prize,
        points=row.points,
        fallback=row.fallback,
        cost=row.cost,
        balance=row.balance,
        body_hash=row.body_hash,
        created_at=row.created_at,
    )


class SqlDraws:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = upsert_for(engine)

    async def commit(self, proposed: Commitment) -> Commitment:
        """Store the commitment unless the draw has one; returns the one stored (so
        every process of the service uses the same seed)."""
        row = {
            "draw": proposed.draw,
            "seed": proposed.seed.hex(),
            "seed_sha256": proposed.seed_sha256,
            "definition": proposed.definition,
            "definition_sha256": proposed.definition_sha256,
            "committed_at": proposed.committed_at,
        }
        async with self._engine.begin() as conn:
            await conn.execute(self._insert(draw_seeds).on_conflict_do_nothing(), [row])
            found = (
                await conn.execute(select(draw_seeds).where(draw_seeds.c.draw == proposed.draw))
            ).one()
        return _commitment(found)

    async def commitment(self, draw: str) -> Commitment | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(draw_seeds).where(draw_seeds.c.draw == draw))).first()
        return _commitment(row) if row is not None else None

    async def commitments(self) -> list[Commitment]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(draw_seeds).order_by(draw_seeds.c.draw))
            return [_commitment(r) for r in rows]

    async def record(self, draw_id: str) -> DrawRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(draws).where(draws.c.draw_id == draw_id))).first()
        return _record(row) if row is not None else None

    async def records(
        self, draw: str, *, after: int = 0, limit: int | None = None
    ) -> list[DrawRecord]:
        """The draw's outcomes in seq order."""
        query = select(draws).where(draws.c.draw == draw, draws.c.seq > after).order_by(draws.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self._engine.connect() as conn:
            return [_record(r) for r in await conn.execute(query)]

    async def stock(self, draw: Draw) -> Stock:
        """What the ledger says the draw gave out."""
        d = draws.c
        query = (
            select(d.prize, func.count(), func.max(d.seq))
            .where(d.draw == draw.id)
            .group_by(d.prize)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        stock = Stock(seq=max((r[2] for r in rows), default=0))
        for prize_id, count, _ in rows:
            prize = draw.prize(prize_id)
            if prize is not None and prize.kind != "none":
                stock.used[prize_id] = count
                stock.spent += count * prize.cost_to_budget
        return stock

    async def ledger_problems(self, records: Sequence[DrawRecord]) -> list[str]:
        """Where the ledger's draw and prize entries disagree with the outcomes."""
        e = ledger_entries.c
        ids = [r.draw_id for r in records]
        entries: dict[tuple[str, str], int] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(e.kind, e.ref_id, e.points).where(
                    e.kind.in_(["draw", "prize"]), e.ref_id.in_(chunk)
                )
                for kind, ref_id, points in await conn.execute(query):
                    entries[(kind, ref_id)] = points
        problems = []
        for r in records:
            spent = entries.get(("draw", r.draw_id))
            if spent != -r.cost:
                problems.append(f"seq {r.seq} ({r.draw_id!r}): ledger spend {spent}, cost {r.cost}")
            prize = entries.get(("prize", r.draw_id))
            if r.points and prize != r.points:
                problems.append(
                    f"seq {r.seq} ({r.draw_id!r}): ledger prize {prize}, outcome {r.points} points"
                )
        return problems
