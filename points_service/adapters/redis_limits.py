"""Per-key rate limits counted in Redis, without a Redis round trip per request.

A round trip per request cost the credit path 12 % of its single-event rate and the
batch path 30 % (bench/RESULTS.md): the tiny counter call queued behind the large credit
scripts of other requests. So each worker counts a key's requests itself and adds them to
the key's counter for the current one-second window in Redis as it goes: whenever its
unsent count reaches a tenth of the limit, and at least every `SYNC_SECONDS`. The window's
total in Redis (every worker and pod together) plus this worker's unsent count decides.
A key may overshoot by what the other workers have not sent yet: at most a tenth of the
limit each, for a fraction of a second.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass
from importlib.resources import files

from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.adapters.unavailable import UNAVAILABLE

_SCRIPT = (files("points_service.adapters") / "lua" / "rate.lua").read_text()
_NONCE = "return redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) and 1 or 0"
WINDOW_MS = 1000
SYNC_SECONDS = 0.05


@dataclass(slots=True)
class _Window:
    index: int
    unsent: int = 0
    total: int = 0  # the window's count in Redis as last heard
    sending: bool = False


class RedisLimits:
    def __init__(self, scripts: ScriptPipeline, prefix: str, per_key: int) -> None:
        self._scripts = scripts
        self._prefix = prefix
        self._per_key = per_key
        self._step = max(1, per_key // 10)
        self._rate = scripts.register(_SCRIPT)
        self._nonce = scripts.register(_NONCE)
        self._windows: dict[str, _Window] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None

    def admit(self, key_name: str) -> float:
        """Count one request of this key; 0 when it is within the limit, else the seconds
        until the window ends (the client's Retry-After)."""
        now = time.time()
        index = int(now * 1000) // WINDOW_MS
        window = self._windows.get(key_name)
        if window is None or window.index != index:
            window = self._windows[key_name] = _Window(index)
        if window.total + window.unsent >= self._per_key:
            return (index + 1) * WINDOW_MS / 1000 - now
        window.unsent += 1
        if window.unsent >= self._step:
            self._send(key_name, window)
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())
        return 0.0

    def _send(self, key_name: str, window: _Window) -> None:
        if window.sending or not window.unsent:
            return
        window.sending = True
        count, window.unsent = window.unsent, 0
        task = asyncio.get_running_loop().create_task(self._add(key_name, window, count))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, key_name: str, window: _Window, count: int) -> None:
        key = f"{self._prefix}:rl:{{key:{key_name}}}:{window.index}"
        try:
            window.total = int(await self._scripts.call(self._rate, [key], [count, WINDOW_MS]))
        except UNAVAILABLE:
            pass  # Redis away: the requests themselves answer 503; the limit waits
        finally:
            window.sending = False

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(SYNC_SECONDS)
        finally:
            self._flusher = None
        for key_name, window in list(self._windows.items()):
            self._send(key_name, window)

    async def first_use(self, key_name: str, nonce: str, seconds: int) -> bool:
        """Whether this key has not sent this nonce within `seconds` (signed requests);
        remembers it. Both are of safe characters (checked before), so the Redis key
        cannot reach another's."""
        key = f"{self._prefix}:nonce:{{key:{key_name}}}:{nonce}"
        return bool(await self._scripts.call(self._nonce, [key], [seconds]))

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
