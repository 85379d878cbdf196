"""Rate limits in Redis: a counter per key and window, shared by every worker and pod."""

import time
from importlib.resources import files

from points_service.adapters.script_pipeline import ScriptPipeline

_SCRIPT = (files("points_service.adapters") / "lua" / "rate.lua").read_text()


class RedisLimits:
    def __init__(self, scripts: ScriptPipeline, prefix: str) -> None:
        self._scripts = scripts
        self._prefix = prefix
        self._rate = scripts.register(_SCRIPT)

    async def hit(self, bucket: str, limit: int, window_ms: int) -> int:
        """Count a request against `limit` per window; 0 when allowed, else the
        milliseconds until the window ends. Every call of one window shares a key (its
        own hash tag), and calls of concurrent requests share a round trip."""
        window = int(time.time() * 1000) // window_ms
        key = f"{self._prefix}:rl:{{{bucket}}}:{window}"
        return int(await self._scripts.call(self._rate, [key], [limit, window_ms]))
