"""Closing periods: final standings to SQL and served from there, expired boards unlinked.
Real Redis, real SQLite and PostgreSQL; the clock is the one thing the test controls."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from points_service.adapters.redis_boards import RedisBoards
from points_service.adapters.redis_client import connect
from points_service.adapters.rule_files import load_board_dir
from points_service.adapters.sql.engine import create_engine, database_url, migrate
from points_service.adapters.sql.profiles import SqlLedgerTotals, SqlStandings
from points_service.domain.boards import NOWHERE, Board
from points_service.domain.calendar import Calendar
from points_service.domain.engine import Decision
from points_service.services.leaderboards import Leaderboards
from points_service.settings import Settings
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
DAY = Board("points", "all", "day:2026-01-05")
WEEK = Board("points", "all", "week:2026-W02")  # Monday 5 January to Sunday 11 January
DAY_N = date(2026, 1, 5).toordinal()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)  # noon in Shanghai

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def boards(
    isolated_settings: Settings,
) -> AsyncIterator[tuple[Leaderboards, Clock, RedisBoards]]:
    engine = create_engine(database_url(isolated_settings.database_url, isolated_settings.data_dir))
    await migrate(engine)
    redis = connect(REDIS_URL)
    store = RedisBoards(redis, prefix=isolated_settings.redis_prefix)
    clock = Clock()
    service = Leaderboards(
        store,
        SqlLedgerTotals(engine),
        load_board_dir(ROOT / "leaderboards"),
        Calendar.named("Asia/Shanghai"),
        timedelta(hours=72),
        clock,
        standings=SqlStandings(engine),
    )
    try:
        yield service, clock, store
    finally:
        await redis.aclose()
        await engine.dispose()


async def test_a_closed_period_is_served_from_its_final_standings(
    boards: tuple[Leaderboards, Clock, RedisBoards],
) -> None:
    service, clock, store = boards
    day = date(2026, 1, 5).toordinal()
    await service.credited(
        [
            (who, NOWHERE, Decision(h="h", p=p, b=p, l=[], c=[0, 0, 0], sk=0, v="t", day=day))
            for who, p in {"a": 5, "b": 9, "c": 5, "d": 1}.items()
        ]
    )

    # The write named its boards in the registry, for closing to find: no process has
    # to live on to tell it (a worker restarted, an import's command that ended).
    await service.drain()
    assert {DAY, WEEK} <= set(await store.registered())
    assert (await service.close_periods()).closed == 0  # still open
    page = await service.top("points", "all", DAY.period, 10, None)
    assert not page.final
    assert [(e.rank, e.informant_id, e.score) for e in page.entries] == [
        (1, "b", 9), (2, "a", 5), (2, "c", 5), (4, "d", 1),
    ]  # fmt: skip

    # The day ends at 16:00 UTC; 72 hours of grace later it is final.
    clock.now = datetime(2026, 1, 5, 16, 0, tzinfo=UTC) + timedelta(hours=72)
    report = await service.close_periods()
    assert (report.closed, report.removed) == (1, 0)  # the week is still open
    await store.add({DAY: {"d": 100}})  # a stray write after closing changes nothing
    page = await service.top("points", "all", DAY.period, 2, None)
    assert page.final and page.members == 4
    assert [(e.rank, e.informant_id) for e in page.entries] == [(1, "b"), (2, "a")]
    rest = await service.top("points", "all", DAY.period, 2, page.next_cursor)
    assert [(e.rank, e.informant_id, e.score) for e in rest.entries] == [(2, "c", 5), (4, "d", 1)]
    assert rest.next_cursor is None
    standing = await service.standing("points", "all", DAY.period, "c", 1)
    assert (standing.rank, standing.score, [n.informant_id for n in standing.neighbours]) == (
        2, 5, ["a", "c", "d"],
    )  # fmt: skip
    ranks = await service.ranks("points", "all", DAY.period, ["d", "zz"])
    assert [(r.rank, r.score) for r in ranks.ranks] == [(4, 1), (None, 0)]
    assert (await service.close_periods()).closed == 0  # written once

    # Two days of retention after closing: then the Redis board goes, the answer stays.
    clock.now += timedelta(days=2, seconds=1)
    report = await service.close_periods()
    assert report.removed == 1
    assert DAY not in await store.boards()
    assert DAY not in await store.registered()
    assert WEEK in await store.boards()
    page = await service.top("points", "all", DAY.period, 10, None)
    assert [e.informant_id for e in page.entries] == ["b", "a", "c", "d"]


async def test_boards_nobody_named_are_named_once_per_redis(
    boards: tuple[Leaderboards, Clock, RedisBoards],
) -> None:
    """Boards from before board writes named themselves (or written by hand) are found
    by one SCAN, the first time a service starts on this Redis, and named for closing."""
    service, _clock, store = boards
    await service.credited(
        [("a", NOWHERE, Decision(h="h", p=3, b=3, l=[], c=[0, 0, 0], sk=0, v="t", day=DAY_N))]
    )
    await service.drain()
    written = set(await store.registered())
    assert DAY in written
    old = Board("points", "all", "day:2025-12-31")  # written behind the registry's back
    redis = connect(REDIS_URL)
    try:
        await redis.zadd(store.key(old), {"z": -4})
        assert old not in await store.registered()
        assert await service.name_unnamed() == 1
        assert set(await store.registered()) == written | {old}
        assert await service.name_unnamed() is None  # once: the note says it was done
    finally:
        await redis.aclose()
