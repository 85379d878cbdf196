"""A lean pipelined connection to one Redis node, for the credit path's script calls.

redis-py's pipeline cost the web worker about a quarter of its time per event once the
ledger write had left the loop (bench/RESULTS.md): a retry wrapper, a connection checkout,
command packing in Python, and a parse call with callbacks per reply. Scripts are all the
hot path sends, so this connection does only that: commands packed by hiredis (C), written
as they come on one socket, and replies parsed by hiredis and handed back in order (Redis
answers in the order it was asked). Many requests' pipelines share the socket in flight.

It never retries: a board increment sent twice would count twice. A lost connection fails
every call waiting on it (the API answers 503) and the next call connects again. A call
unanswered after `timeout` seconds closes the connection, which fails it the same way.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[str | bytes | int]


Answer = Callable[[list[Any] | Exception], None]


class _Waiting:
    __slots__ = ("answer", "count", "replies", "since")

    def __init__(self, count: int, answer: Answer, since: float) -> None:
        self.count = count
        self.answer = answer
        self.replies: list[Any] = []
        self.since = since


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: "RedisPipe") -> None:
        self._pipe = pipe

    def data_received(self, data: bytes) -> None:
        self._pipe._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe._lost(self, exc)


class RedisPipe:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._db, self._username, self._password = db, username, password
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[_Waiting] = deque()
        self._connecting = asyncio.Lock()
        self._watchdog: asyncio.TimerHandle | None = None
        # Counts the connections made: what one connection's server was told (the scripts
        # it loaded) may not hold for the next, which may reach a restarted Redis.
        self.connections = 0

    @classmethod
    def for_pool(cls, kwargs: Mapping[str, Any]) -> "RedisPipe":
        """From a redis-py connection pool's `connection_kwargs` (TCP or Unix socket)."""
        return cls(
            host=kwargs.get("host", "127.0.0.1"),
            port=int(kwargs.get("port", 6379)),
            path=kwargs.get("path"),
            db=int(kwargs.get("db", 0) or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            timeout=float(kwargs.get("socket_timeout") or 5.0),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 2.0),
        )

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> None:
        if not self.connected:
            await self._connect()

    def submit(self, commands: Sequence[Command], answer: Answer) -> None:
        """Write `commands` now; `answer` is called, from the loop's read of the socket,
        with their replies in order (error replies as ResponseError values), or with the
        exception that lost them. Needs a connection (`connected`)."""
        if not commands:
            # Nothing goes out, so no reply would ever come for it: it would sit at the
            # head of the queue and take the next caller's replies.
            answer([])
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            raise RedisConnectionError("not connected to Redis")
        loop = asyncio.get_running_loop()
        self._waiting.append(_Waiting(len(commands), answer, loop.time()))
        # hiredis's stub types the command as a 1-tuple; it takes any length.
        pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command
        transport.write(b"".join([pack(tuple(c)) for c in commands]))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout, self._check)

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to `commands`, in order; error replies are ResponseError values."""
        await self.connect()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        def answer(replies: list[Any] | Exception) -> None:
            if future.done():
                return
            if isinstance(replies, Exception):
                future.set_exception(replies)
            else:
                future.set_result(replies)

        self.submit(commands, answer)
        return await future

    async def _connect(self) -> None:
        async with self._connecting:
            if self.connected:
                return
            loop = asyncio.get_running_loop()
            protocol = _Protocol(self)
            try:
                async with asyncio.timeout(self._connect_timeout):
                    if self._path:
                        transport, _ = await loop.create_unix_connection(
                            lambda: protocol, self._path
                        )
                    else:
                        transport, _ = await loop.create_connection(
                            lambda: protocol, self._host, self._port
                        )
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc!r}") from exc
            self._reader = hiredis.Reader(replyError=ResponseError)
            self._transport, self._protocol = transport, protocol
            self.connections += 1
            hello: list[Command] = []
            if self._password:
                auth: Command = ("AUTH", self._password)
                hello.append(("AUTH", self._username, self._password) if self._username else auth)
            if self._db:
                hello.append(("SELECT", self._db))
            if hello:
                for reply in await self.execute(hello):
                    if isinstance(reply, ResponseError):
                        transport.close()
                        raise RedisConnectionError(f"Redis refused the connection: {reply}")

    def _received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while (reply := self._reader.gets()) is not False:
            if not waiting:  # nothing asked for it: the stream is out of step
                self._abort("a reply nobody asked for")
                return
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                head.answer(head.replies)

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._transport = self._protocol = None
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc!r}"))

    def _fail(self, error: Exception) -> None:
        while self._waiting:
            self._waiting.popleft().answer(error)

    def _abort(self, why: str) -> None:
        transport = self._transport
        self._transport = self._protocol = None
        self._fail(RedisTimeoutError(f"Redis connection closed: {why}"))
        if transport is not None:
            transport.abort()

    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        age = loop.time() - self._waiting[0].since
        if age >= self._timeout:
            self._abort(f"no answer in {self._timeout:g} s")
            return
        self._watchdog = loop.call_later(self._timeout - age, self._check)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        transport = self._transport
        self._transport = self._protocol = None
        self._fail(RedisConnectionError("the connection was closed"))
        if transport is not None:
            transport.close()
