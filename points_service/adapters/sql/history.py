"""What the ledger kept of informants, read back to rebuild their Redis state."""

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import date
from typing import Any, Final

import msgspec
from sqlalchemy import Select, or_, select, text, union
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_service.adapters.sql.profiles import PROFILE_COLUMNS, profile_of
from points_service.adapters.sql.tables import balances, events, informants
from points_service.domain.engine import Decision
from points_service.domain.events import Event
from points_service.domain.profiles import Profile
from points_service.domain.recovery import History, PastEvent, Totals

_decision = msgspec.json.Decoder(Decision)
_CHUNK = 500  # ids per IN list


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


async def _rows(
    conn: AsyncConnection, ids: Sequence[str], query: Callable[[Sequence[str]], Select[Any]]
) -> list[Any]:
    """The rows of `query(chunk)` for every chunk of ids (one IN list each)."""
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows.extend(await conn.execute(query(chunk)))
    return rows


# Whether each informant has an event: one index probe each (LIMIT 1 in a lateral join),
# whatever the planner's statistics say of a table an import is filling.
_PG_ANY_EVENT: Final = text(
    "SELECT t.informant_id FROM unnest(CAST(:ids AS text[])) AS i(id) CROSS JOIN LATERAL "
    "(SELECT informant_id FROM events WHERE informant_id = i.id LIMIT 1) AS t"
)
_SQLITE_ANY_EVENT: Final = text(
    "SELECT DISTINCT informant_id FROM events "
    "WHERE informant_id IN (SELECT value FROM json_each(:ids))"
)


class SqlStateHistory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self, ids: Sequence[str], *, since: date, actions: Collection[str]) -> History:
        """What the ledger kept of these informants, on one connection."""
        async with self._engine.connect() as conn:
            past = await self._past_events(conn, ids, since, actions)
            totals = await self._totals(conn, ids)
            profiles = await self._profiles(conn, ids)
        return History(past, totals, profiles)

    async def newcomers(self, ids: Sequence[str]) -> dict[str, Profile | None]:
        """The profiles of those informants the ledger holds no event and no balance of
        (index look-ups only, for a bulk import's every chunk)."""
        async with self._engine.connect() as conn:
            if self._engine.dialect.name == "postgresql":
                ids_param: list[str] | str = list(ids)
                query = _PG_ANY_EVENT
            else:
                ids_param = msgspec.json.encode(list(ids)).decode()
                query = _SQLITE_ANY_EVENT
            seen = {row.informant_id for row in await conn.execute(query, {"ids": ids_param})}
            seen.update(await self._totals(conn, ids))
            profiles = await self._profiles(conn, ids)
        return {i: profiles.get(i) for i in ids if i not in seen}

    async def _past_events(
        self, conn: AsyncConnection, ids: Sequence[str], since: date, actions: Collection[str]
    ) -> dict[str, list[PastEvent]]:
        """On-time events of these informants from `since` on, and those of `actions`
        whenever they happened."""
        e = events.c

        def query(chunk: Sequence[str]) -> Select[Any]:
            when = e.day >= since
            if actions:
                when = or_(when, e.action.in_(sorted(actions)))
            return select(
                e.event_id, e.informant_id, e.action, e.occurred_at, e.content_id,
                e.share_id, e.viewer_id, e.attributes, e.decision,
            ).where(e.informant_id.in_(chunk), e.late.is_(False), when)  # fmt: skip

        found: dict[str, list[PastEvent]] = {i: [] for i in ids}
        for row in await _rows(conn, ids, query):
            event = Event(
                event_id=row.event_id,
                informant_id=row.informant_id,
                action=row.action,
                occurred_at=row.occurred_at,
                content_id=row.content_id,
                share_id=row.share_id,
                viewer_id=row.viewer_id,
                attributes=row.attributes or {},
            )
            found[row.informant_id].append(PastEvent(event, _decision.decode(row.decision)))
        return found

    async def _totals(self, conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Totals]:
        b = balances.c
        rows = await _rows(
            conn,
            ids,
            lambda chunk: select(b.informant_id, b.balance, b.earned).where(
                b.informant_id.in_(chunk)
            ),
        )
        return {row.informant_id: Totals(row.balance, row.earned) for row in rows}

    async def _profiles(self, conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Profile]:
        p = informants.c
        rows = await _rows(
            conn,
            ids,
            lambda chunk: select(p.informant_id, *(p[c] for c in PROFILE_COLUMNS)).where(
                p.informant_id.in_(chunk)
            ),
        )
        return {row.informant_id: profile_of(row) for row in rows}

    async def informant_ids(self) -> AsyncIterator[str]:
        """Everyone the ledger or the profiles know, in id order."""
        query = union(
            select(events.c.informant_id.label("informant_id")).distinct(),
            select(balances.c.informant_id),
            select(informants.c.informant_id),
        )
        async with self._engine.connect() as conn:
            result = await conn.stream(
                select(query.subquery().c.informant_id).order_by("informant_id")
            )
            async for row in result:
                yield row.informant_id
