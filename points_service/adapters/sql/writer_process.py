"""The SQLite credit writer in a process of its own.

On the event loop, the SQLite transaction of a group commit was the largest single cost
of crediting an event: about a sixth of the web worker's time for single events and over
a third for batches (bench/RESULTS.md). It cannot go to a thread: every statement gives
the GIL up and must win it back from the busy loop, which made commits 5-10x slower. A
child process has a GIL and a core of its own, so the loop only encodes the writes
(msgpack, ~2 us each) and waits on a pipe while the child runs the very same
`SqliteCreditWriter` transaction (and its checkpointer thread).

Durability is unchanged: the child answers after COMMIT returns, and only then does the
request get its 2xx. The child ignores stop signals (they often reach the whole process
group) and ends on end-of-file: when the web worker closes the pipe, or dies, the child
finishes or abandons its transaction (an unacknowledged one) and exits. If the child dies, the write
in flight fails (the request answers 503 and is taken back in Redis) and the next write
starts a new child.

Frames on both pipes are a 4-byte big-endian length and a msgpack body. The child's
protocol goes out on a duplicate of its stdout; its stdout itself is pointed at stderr,
so nothing it logs can corrupt a frame.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import BinaryIO, cast

import msgspec

from points_service.adapters.collector import settle_collector
from points_service.adapters.sql.credit_writers import SqliteCreditWriter
from points_service.domain.ledger import CreditWrite

_HEADER = struct.Struct(">I")


class WriteRequest(msgspec.Struct, array_like=True):
    now: datetime
    credits: list[CreditWrite]


class WriteReply(msgspec.Struct, array_like=True):
    inserted: list[str] = []
    known: dict[str, str] = {}
    error: str | None = None
    unavailable: bool = False  # the database is locked or out of reach: a 503, not a 500


class WriterGone(ConnectionError):
    """The writer process is not there (it exited, or could not start)."""


class WriterUnavailable(ConnectionError):
    """The writer could not reach the database (locked, disk I/O): try again."""


_encode = msgspec.msgpack.Encoder().encode
_request = msgspec.msgpack.Decoder(WriteRequest)
_reply = msgspec.msgpack.Decoder(WriteReply)
READY = b"ready"


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


Answer = Callable[[WriteReply | BaseException], None]


class _Child(asyncio.SubprocessProtocol):
    """The parent's end of the pipes: frames are cut from the child's stdout as they
    arrive and each reply is handed, in the same callback, to the oldest write waiting
    (no task wakes up in between: on a busy loop every such wake-up waits its turn)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.hello: asyncio.Future[bytes] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.waiting: deque[Answer] = deque()
        self.transport: asyncio.SubprocessTransport | None = None
        self.gone = False
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transport has the interface without being a subclass
        self.transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1 or isinstance(data, str):
            return
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            body = bytes(buffer[_HEADER.size : _HEADER.size + size])
            del buffer[: _HEADER.size + size]
            if not self.hello.done():
                self.hello.set_result(body)
            elif self.waiting:
                _answer(self.waiting.popleft(), _reply.decode(body))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:  # end of the child's replies: nothing waiting will be answered
            self._lose(WriterGone("the SQLite writer process exited mid-write"))

    def process_exited(self) -> None:
        self._lose(WriterGone("the SQLite writer process exited mid-write"))
        if not self.exited.done():
            self.exited.set_result(None)

    def _lose(self, error: WriterGone) -> None:
        self.gone = True
        if not self.hello.done():
            self.hello.set_exception(WriterGone("the SQLite writer process exited"))
        while self.waiting:
            _answer(self.waiting.popleft(), error)


def _answer(answer: Answer, outcome: WriteReply | BaseException) -> None:
    # Called from the pipe's read: what the caller does with it must not reach the
    # transport (it would end the connection).
    try:
        answer(outcome)
    except Exception:  # pragma: no cover - an answer must not raise; log it and go on
        logging.getLogger(__name__).exception("a ledger write's answer failed")


def outcome(reply: WriteReply | BaseException) -> tuple[set[str], dict[str, str]]:
    """(inserted, known) of a reply; raises what the write failed with."""
    if isinstance(reply, BaseException):
        raise reply
    if reply.error is not None:
        if reply.unavailable:
            raise WriterUnavailable(reply.error)
        raise RuntimeError(f"SQLite writer: {reply.error}")
    return set(reply.inserted), reply.known


class SqliteProcessWriter:
    """A `CreditWriter` whose transactions run in a child process (started on first use).

    Up to `in_flight` requests are on the pipe at once; the child answers them in order,
    each its own transaction, so one commits while the next is on its way. `submit`
    hands a write over without a coroutine: the group committer uses it so that a reply
    settles its requests in the very callback that reads it."""

    in_flight = 3

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._child: _Child | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        child = self._child
        if child is None or child.transport is None:
            return None
        return child.transport.get_pid()

    @property
    def running(self) -> bool:
        """Whether `submit` can hand a write over now."""
        return self._child is not None and not self._child.gone

    async def start(self) -> None:
        """Start the child now rather than on the first write."""
        await self._running()

    async def _running(self) -> _Child:
        child = self._child
        if child is not None and not child.gone:
            return child
        async with self._lock:
            if self._child is None or self._child.gone:
                if self._child is not None:
                    await _reap(self._child)
                self._child = None
                self._child = await self._start()
            return self._child

    async def _start(self) -> _Child:
        loop = asyncio.get_running_loop()
        _, child = await loop.subprocess_exec(
            lambda: _Child(loop),
            sys.executable,
            "-m",
            __name__,
            self._path,
            self._synchronous,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        try:
            hello = await child.hello
        except WriterGone:
            await _reap(child)
            raise
        if hello != READY:
            await _reap(child)
            raise WriterGone(f"the SQLite writer did not start: {hello.decode(errors='replace')}")
        return child

    def submit(self, credits: Sequence[CreditWrite], now: datetime, answer: Answer) -> None:
        """Send a write to the running child (`running`); `answer` is called with its
        reply, or with the error that lost it, from the loop's read of the pipe."""
        child = self._child
        if child is None or child.gone or child.transport is None:
            answer(WriterGone("the SQLite writer process is not running"))
            return
        stdin = cast(asyncio.WriteTransport, child.transport.get_pipe_transport(0))
        frame = _frame(_encode(WriteRequest(now, list(credits))))
        child.waiting.append(answer)
        try:
            stdin.write(frame)
        except (ConnectionError, RuntimeError) as exc:  # the pipe is closed already
            child.waiting.remove(answer)
            answer(WriterGone(f"the SQLite writer's pipe is closed: {exc!r}"))
        # A pipe that breaks later is seen by the read side, which fails what waits.

    async def write(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        await self._running()
        future: asyncio.Future[WriteReply | BaseException] = (
            asyncio.get_running_loop().create_future()
        )

        def answer(reply: WriteReply | BaseException) -> None:
            if not future.done():
                future.set_result(reply)

        self.submit(credits, now, answer)
        return outcome(await future)

    async def close(self) -> None:
        async with self._lock:
            child, self._child = self._child, None
            if child is None or child.transport is None:
                return
            stdin = child.transport.get_pipe_transport(0)
            if stdin is not None:
                stdin.close()  # end of file: the child closes the database and exits
            try:
                await asyncio.wait_for(asyncio.shield(child.exited), timeout=10)
            except TimeoutError:
                await _reap(child)
            child.transport.close()


async def _reap(child: _Child) -> None:
    if child.transport is None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.transport.kill()
    await child.exited
    child.transport.close()


# --- the child ------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(path: str, synchronous: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer write requests until end of file."""

    def send(payload: bytes) -> None:
        replies.write(_frame(payload))
        replies.flush()

    writer = SqliteCreditWriter(path, synchronous=synchronous)
    try:
        writer.open()
    except sqlite3.Error as exc:
        send(f"cannot open {path}: {exc}".encode())
        return
    settle_collector()
    send(READY)
    try:
        while (header := _read_exact(requests, _HEADER.size)) is not None:
            body = _read_exact(requests, _HEADER.unpack(header)[0])
            if body is None:
                break
            request = _request.decode(body)
            try:
                inserted, known = writer.write_now(request.credits, request.now)
                reply = WriteReply(sorted(inserted), known)
            except sqlite3.OperationalError as exc:
                reply = WriteReply(error=str(exc), unavailable=True)
            except Exception as exc:  # answered, so the request fails cleanly
                reply = WriteReply(error=repr(exc))
            send(_encode(reply))
    finally:
        writer.close_now()


def main(argv: Sequence[str]) -> None:
    path, synchronous = argv
    # Stop signals often reach the whole process group (Ctrl-C in a terminal, `kill
    # -TERM -PGID`, systemd's control-group kill, a closed terminal's SIGHUP): the
    # parent shuts down, flushes its queue through this process, then closes the pipe,
    # which is what ends it. Dying on the signal would fail the writes still in flight.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(BrokenPipeError):
        serve(path, synchronous, sys.stdin.buffer, replies)


if __name__ == "__main__":
    main(sys.argv[1:])
