"""Per-key rate limits counted in Redis: two workers' counts add up in one window."""

import asyncio
import time
import uuid

from msgspec.structs import replace

from points_service.adapters.redis_client import connect
from points_service.adapters.redis_limits import RedisLimits
from points_service.adapters.redis_state import RedisState
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.engine import EventPlan, plan_event
from points_service.domain.events import Event
from points_service.domain.state import THROTTLED, Applied, RateWindow, Throttled
from tests.conftest import REDIS_URL
from tests.unit.test_engine import GRACE, RULES, SHANGHAI, START


async def test_two_workers_share_a_keys_budget(redis_prefix_root: str) -> None:
    prefix = f"{redis_prefix_root}:rl{uuid.uuid4().hex[:8]}"
    clients = [connect(REDIS_URL) for _ in range(2)]
    pipelines = [ScriptPipeline(c) for c in clients]
    workers = [RedisLimits(p, prefix, per_key=100) for p in pipelines]
    try:
        # Start at the beginning of a window, so the whole test fits in one.
        await asyncio.sleep(1 - time.time() % 1 + 0.01)
        for _ in range(40):  # 40 + 40: within 100
            assert workers[0].admit("app") == 0
            assert workers[1].admit("app") == 0
        await asyncio.sleep(0.1)  # both have sent their counts (every 50 ms at most)
        admitted = 0
        for _ in range(20):  # 20 more each: 120 asked, 100 allowed
            for w in workers:
                if w.admit("app") == 0:
                    admitted += 1
            await asyncio.sleep(0.005)  # the counts travel as the requests would
        assert 20 <= admitted <= 20 + 2 * 10, admitted  # overshoot: a tenth per worker
        refused = workers[0].admit("app")
        assert 0 < refused <= 1  # seconds until the window ends
        assert workers[0].admit("other") == 0  # another key's budget is its own
    finally:
        for w in workers:
            await w.close()
        for p in pipelines:
            await p.close()
        for c in clients:
            await c.aclose()


async def test_an_informants_rate_window_in_the_credit_script(redis_prefix_root: str) -> None:
    """apply.lua counts an informant's new events per window: past the limit an event is
    refused without a trace (its retry is judged anew), a replay is answered whatever the
    count, a dry run is not counted, and the next window starts from nothing."""
    client = connect(REDIS_URL)
    store = RedisState(
        client,
        prefix=f"{redis_prefix_root}:ri{uuid.uuid4().hex[:8]}",
        day_ttl_seconds=3600,
        idem_ttl_seconds=3600,
        scripts=ScriptPipeline(client),
    )

    def plan(n: int, dry: bool = False) -> EventPlan:
        event = Event(
            event_id=f"e{n}",
            informant_id="u1",
            action="browse",
            occurred_at=START,
            content_id=f"c{n}",
            dry_run=dry,
        )
        return plan_event(event, RULES, SHANGHAI, START, GRACE)

    try:
        window = RateWindow(limit=3, number=1000, retry_after=20)
        first = await store.apply("u1", [plan(n) for n in range(5)], window)
        assert [type(r) for r in first] == [Applied] * 3 + [Throttled] * 2
        replay = await store.apply("u1", [plan(0), plan(9, dry=True)], window)
        assert [(type(r), getattr(r, "replayed", None)) for r in replay] == [
            (Applied, True),
            (Applied, False),
        ]
        assert await store.apply("u1", [plan(3)], window) == [THROTTLED]
        # Nothing of the refused events was kept: in the next window they are new.
        later = await store.apply("u1", [plan(3), plan(4)], replace(window, number=1001))
        assert [(type(r), getattr(r, "replayed", None)) for r in later] == [(Applied, False)] * 2
        # No window given (history being replayed): no limit.
        unlimited = await store.apply("u1", [plan(n) for n in range(10, 20)])
        assert all(isinstance(r, Applied) and not r.replayed for r in unlimited)
        assert (await store.snapshot("u1", 0)).balance == sum(
            r.decision.p for r in [*first, *later, *unlimited] if isinstance(r, Applied)
        )
    finally:
        await store.close()


def test_a_rate_window_names_its_number_and_the_seconds_left() -> None:
    assert RateWindow.at(120, 60, 6000.0) == RateWindow(120, 100, 60)
    assert RateWindow.at(120, 60, 6059.2) == RateWindow(120, 100, 1)
    assert RateWindow.at(120, 60, 6030.5) == RateWindow(120, 100, 30)
