"""Per-key rate limits counted in Redis: two workers' counts add up in one window."""

import asyncio
import time
import uuid

from points_service.adapters.redis_client import connect
from points_service.adapters.redis_limits import RedisLimits
from points_service.adapters.script_pipeline import ScriptPipeline
from tests.conftest import REDIS_URL


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
