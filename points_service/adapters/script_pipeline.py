"""Script calls from concurrent requests, coalesced into pipelines.

Each request awaits its own EVALSHA, but the calls made in one turn of the event loop go
out together: the socket write (and, through redis-py, the connection checkout and retry
wrapper) is paid once per pipeline, not once per call. Under light load a pipeline holds
one call and nothing waits for a timer; under heavy load a pipeline goes out as soon as
it holds `FLUSH_AT` requests' calls, without waiting for the turn to end.

On one Redis node the pipelines go out on a lean connection of their own (redis_pipe.py):
written in the turn after the calls were made, answered straight from the socket read,
with any number in flight. Every call of this process then reaches Redis in the order it
was made, which `ordered` reports. On a cluster (or over TLS) they go through redis-py,
one pipeline at a time.

A script the lean connection has not loaded yet is loaded by a SCRIPT LOAD at the head of
the pipeline that first calls it: an EVALSHA refused with NOSCRIPT and sent again would
run after the calls behind it (a new or restarted Redis that knows some scripts and not
others, e.g. loaded by another worker).
"""

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import NoScriptError, ResponseError

from points_service.adapters.redis_client import RedisClient
from points_service.adapters.redis_pipe import RedisPipe

_PLAIN = (Connection, UnixDomainSocketConnection)
_Call = tuple[str, Sequence[str], Sequence[Any]]
_Queued = tuple[list[_Call], "asyncio.Future[list[Any]]"]


# The longest a call made with `call_later` waits for company (see ScriptPipeline).
DEFER_SECONDS = 0.005

# Requests' calls that go out at once, mid-turn, on one node. A turn of a busy loop
# starts the requests of every connection that spoke: when all their calls waited for
# the turn's end, Redis idled while the worker started them, then the worker while Redis
# answered them all, and their answers came back as one convoy. Sent sixteen at a time,
# Redis works on the first while the worker starts the rest: rank reads on a 1,000,000-
# member board went from 3,850-4,620 to 5,250-6,000 requests/s under wrk -c64, three
# alternated rounds, the worker 95-98 % busy instead of 76-80 % (bench/RESULTS.md).
FLUSH_AT = 16


class Script:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _missing_script(reply: Any) -> bool:
    return isinstance(reply, NoScriptError) or (
        isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")
    )


def _settle(batch: Sequence[_Queued], results: Sequence[Any]) -> None:
    """Hand each caller its share of a pipeline's replies (or its first error)."""
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
            future.set_result(list(mine))


def _fail(batch: Sequence[_Queued], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def _unobserved(seconds: float, ok: bool) -> None:
    pass


class ScriptPipeline:
    def __init__(
        self,
        client: RedisClient,
        *,
        max_calls: int = 1000,
        cluster: bool = False,
        defer_seconds: float = DEFER_SECONDS,
        flush_at: int = FLUSH_AT,
    ) -> None:
        """`defer_seconds`: how long a call made with `call_later` may wait for the
        next calls to go out with. A single event's board increments are made after its
        commit, apart from every other call: alone they were a second write and a second
        read per event, in this process and in Redis. Riding with the next event's call,
        they took ~8 % off the web worker's CPU and ~11 % off Redis's at 1,000 single
        events/s (six alternated pairs, bench/RESULTS.md)."""
        self._defer_seconds = defer_seconds
        self._flush_at = flush_at
        self._redis = client
        self._cluster = cluster
        self._max_calls = max_calls
        self._queue: deque[_Queued] = deque()
        self._scripts: dict[str, Script] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # redis-py path: one task drains the queue, a pipeline at a time
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # lean path: a flush is scheduled for the end of the loop's turn
        self._pipe: RedisPipe | None = None
        self._flush_due = False
        # Calls that may wait (see call_later): the timer that sends them if nothing else
        # goes out first.
        self._deferred: asyncio.TimerHandle | None = None
        # The scripts loaded on the lean connection (see _send_queued), and which of the
        # pipe's connections that was.
        self._loaded: set[str] = set()
        self._loaded_on = 0
        # Told of every round trip: (seconds, ok). Metrics; never on the answer's path.
        self.on_roundtrip: Callable[[float, bool], None] = _unobserved
        pool = getattr(client, "connection_pool", None)
        if not cluster and pool is not None and pool.connection_class in _PLAIN:
            self._pipe = RedisPipe.for_pool(pool.connection_kwargs)

    @property
    def ordered(self) -> bool:
        """Whether calls reach Redis in the order this process made them: a write made
        before a read is then seen by it without awaiting the write's answer."""
        return self._pipe is not None

    def register(self, text: str) -> Script:
        script = Script(text)
        self._scripts[script.sha] = script
        return script

    async def call(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        [result] = await self.call_many([(script, keys, args)])
        return result

    def call_many(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> "asyncio.Future[list[Any]]":
        """Queue the calls; the future has their results in order. They are sent whether
        or not it is awaited."""
        loop = asyncio.get_running_loop()
        future = self._enqueue(loop, calls)
        if future.done():
            return future
        if self._pipe is not None:
            if len(self._queue) >= self._flush_at:
                self._send_queued()  # see FLUSH_AT; the end of the turn sends the rest
            elif not self._flush_due:
                self._flush_due = True
                loop.call_soon(self._flush)
        else:
            if self._task is None or self._task.done():
                self._task = loop.create_task(self._run(), name="redis-script-pipeline")
            self._wake.set()
        return future

    def call_later(
        self, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> "asyncio.Future[list[Any]]":
        """Queue calls that nobody waits on (board increments): on one node they go out
        with the next calls made (in the same socket write, answered in the same read),
        or after `defer_seconds` if none come first; `flush` sends them at once.
        Elsewhere, as `call_many`."""
        if self._pipe is None:
            return self.call_many(calls)
        loop = asyncio.get_running_loop()
        future = self._enqueue(loop, calls)
        if not future.done() and not self._flush_due and self._deferred is None:
            self._deferred = loop.call_later(self._defer_seconds, self._send_queued)
        return future

    def _enqueue(
        self,
        loop: asyncio.AbstractEventLoop,
        calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]],
    ) -> "asyncio.Future[list[Any]]":
        """Queue the calls; no calls: a future done already, nothing queued."""
        future: asyncio.Future[list[Any]] = loop.create_future()
        if calls:
            self._queue.append(([(s.sha, keys, args) for s, keys, args in calls], future))
        else:
            future.set_result([])
        return future

    def flush(self) -> None:
        """Send what is queued now (before a read made elsewhere must see it)."""
        if self._pipe is not None and self._queue:
            self._send_queued()

    def _take(self) -> list[_Queued]:
        batch: list[_Queued] = []
        size = 0
        while self._queue and size < self._max_calls:
            batch.append(self._queue.popleft())
            size += len(batch[-1][0])
        return batch

    def _spawn(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the lean path (one node) ------------------------------------------------------

    def _flush(self) -> None:
        """The flush scheduled for the end of the turn (call_many)."""
        self._flush_due = False
        self._send_queued()

    def _send_queued(self) -> None:
        """Send what is queued."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        pipe = self._pipe
        assert pipe is not None
        if not pipe.connected:
            # Rare (start, or after Redis came back): connect, then send in order.
            self._spawn(self._connect_then_flush(pipe))
            return
        if self._loaded_on != pipe.connections:
            self._loaded, self._loaded_on = set(), pipe.connections
        started = time.perf_counter()
        while self._queue:
            batch = self._take()
            calls = [c for queued, _ in batch for c in queued]
            commands = _evalsha(calls)
            # A script this connection has not loaded goes first, in the same write: were
            # an EVALSHA refused (a new or restarted Redis) while a later one in the
            # pipeline ran, the refused call, sent again, would run after it.
            new = {sha for sha, _, _ in calls if sha in self._scripts} - self._loaded
            if new:
                self._loaded |= new
                commands[:0] = [("SCRIPT", "LOAD", self._scripts[sha].text) for sha in new]
            answer = partial(self._answered, batch, calls, started, len(commands) - len(calls))
            try:
                pipe.submit(commands, answer)
            except Exception as exc:
                _fail(batch, exc)

    async def _connect_then_flush(self, pipe: RedisPipe) -> None:
        started = time.perf_counter()
        try:
            await pipe.connect()
        except Exception as exc:
            self.on_roundtrip(time.perf_counter() - started, False)
            while self._queue:
                _fail(self._take(), exc)
            return
        self._send_queued()

    def _answered(
        self,
        batch: list[_Queued],
        calls: list[_Call],
        started: float,
        loads: int,
        replies: list[Any] | Exception,
    ) -> None:
        self.on_roundtrip(time.perf_counter() - started, not isinstance(replies, Exception))
        if not isinstance(replies, Exception) and loads:
            del replies[:loads]  # SCRIPT LOAD's (an error: the EVALSHA after says it too)
        if isinstance(replies, Exception):
            _fail(batch, replies)
        elif any(_missing_script(r) for r in replies):
            # SCRIPT FLUSH on a live connection: load again before the next pipeline. (The
            # calls of this one that ran may have run ahead of those refused.)
            self._loaded.clear()
            self._spawn(self._load_and_settle(batch, calls, list(replies)))
        else:
            _settle(batch, replies)

    async def _load_and_settle(
        self, batch: list[_Queued], calls: list[_Call], replies: list[Any]
    ) -> None:
        try:
            await self._reload_missing(calls, replies)
        except Exception as exc:
            _fail(batch, exc)
            return
        _settle(batch, replies)

    # --- the redis-py path (a cluster, TLS) ---------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                started = time.perf_counter()
                try:
                    results = await self._send([c for calls, _ in batch for c in calls])
                except Exception as exc:
                    self.on_roundtrip(time.perf_counter() - started, False)
                    _fail(batch, exc)
                    continue
                self.on_roundtrip(time.perf_counter() - started, True)
                _settle(batch, results)

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
        if self._pipe is not None:
            return await self._pipe.execute(_evalsha(batch))
        if self._cluster:
            return await self._evalsha_each(batch)
        async with self._redis.pipeline(transaction=False) as pipe:
            for sha, keys, args in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def _send(self, batch: Sequence[_Call]) -> list[Any]:
        results = await self._pipelined(batch)
        await self._reload_missing(batch, results)
        return results

    async def _reload_missing(self, batch: Sequence[_Call], results: list[Any]) -> None:
        """A fresh or flushed Redis: load the scripts, then send those calls again, and
        put their results in place."""
        missing = [i for i, r in enumerate(results) if _missing_script(r)]
        if not missing:
            return
        for sha in {batch[i][0] for i in missing}:
            await self._redis.script_load(self._scripts[sha].text)
        again = await self._pipelined([batch[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result

    async def close(self) -> None:
        self.flush()  # what waits in call_later goes out rather than nowhere
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pipe is not None:
            await self._pipe.close()


def _evalsha(calls: Sequence[_Call]) -> list[tuple[Any, ...]]:
    return [("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in calls]
