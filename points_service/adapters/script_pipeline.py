"""Script calls from concurrent requests, coalesced into pipelines.

Each request awaits its own EVALSHA, but the calls queued while a pipeline is on the wire
go out together in the next one: the connection checkout, retry wrapper and socket write
are paid once per pipeline, not once per call (they were a quarter of the web worker's
CPU per event). Under light load a pipeline holds one call and nothing waits for a timer.
"""

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from points_service.adapters.redis_client import RedisClient

_Call = tuple[str, Sequence[str], Sequence[Any]]
_Queued = tuple[list[_Call], "asyncio.Future[list[Any]]"]


class Script:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class ScriptPipeline:
    def __init__(
        self, client: RedisClient, *, max_calls: int = 1000, cluster: bool = False
    ) -> None:
        self._redis = client
        self._cluster = cluster
        self._max_calls = max_calls
        self._queue: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scripts: dict[str, Script] = {}

    def register(self, text: str) -> Script:
        script = Script(text)
        self._scripts[script.sha] = script
        return script

    async def call(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        [result] = await self.call_many([(script, keys, args)])
        return result

    async def call_many(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="redis-script-pipeline")
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append(([(s.sha, keys, args) for s, keys, args in calls], future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[_Queued] = []
                size = 0
                while self._queue and size < self._max_calls:
                    batch.append(self._queue.popleft())
                    size += len(batch[-1][0])
                try:
                    results = await self._send([c for calls, _ in batch for c in calls])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                position = 0
                for calls, future in batch:
                    mine = results[position : position + len(calls)]
                    position += len(calls)
                    if future.done():
                        continue
                    failed = next((r for r in mine if isinstance(r, Exception)), None)
                    if failed is not None:
                        future.set_exception(failed)
                    else:
                        future.set_result(mine)

    async def _evalsha_each(self, batch: Sequence[_Call]) -> list[Any]:
        """A cluster client refuses scripts in pipelines: the calls go out concurrently,
        each to the node that holds its slot."""
        return list(
            await asyncio.gather(
                *(self._redis.evalsha(sha, len(keys), *keys, *args) for sha, keys, args in batch),
                return_exceptions=True,
            )
        )

    async def _pipelined(self, batch: Sequence[_Call]) -> list[Any]:
        if self._cluster:
            return await self._evalsha_each(batch)
        async with self._redis.pipeline(transaction=False) as pipe:
            for sha, keys, args in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def _send(self, batch: Sequence[_Call]) -> list[Any]:
        results = await self._pipelined(batch)
        missing = [
            i
            for i, r in enumerate(results)
            if isinstance(r, NoScriptError)
            or (isinstance(r, ResponseError) and str(r).startswith("NOSCRIPT"))
        ]
        if missing:
            # A fresh or flushed Redis: load the scripts, then send those calls again.
            for sha in {batch[i][0] for i in missing}:
                await self._redis.script_load(self._scripts[sha].text)
            again = await self._pipelined([batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results
