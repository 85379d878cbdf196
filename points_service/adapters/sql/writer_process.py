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
import os
import signal
import sqlite3
import struct
import sys
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import BinaryIO

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


class SqliteProcessWriter:
    """A `CreditWriter` whose transactions run in a child process (started on first use).

    Up to `in_flight` requests are on the pipe at once; the child answers them in order,
    each its own transaction, so one commits while the next is on its way."""

    in_flight = 3

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._proc: asyncio.subprocess.Process | None = None
        self._waiting: deque[asyncio.Future[WriteReply]] = deque()
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the child now rather than on the first write."""
        await self._running()

    async def _running(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            return proc
        async with self._lock:
            if self._proc is None or self._proc.returncode is not None:
                self._proc = await self._start()
                self._pump = asyncio.get_running_loop().create_task(self._answers(self._proc))
            return self._proc

    async def _start(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            self._path,
            self._synchronous,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            hello = await _read(proc)
        except WriterGone:
            await _reap(proc)
            raise
        if hello != READY:
            await _reap(proc)
            raise WriterGone(f"the SQLite writer did not start: {hello.decode(errors='replace')}")
        return proc

    async def _answers(self, proc: asyncio.subprocess.Process) -> None:
        """Hand each reply to the oldest request waiting; on end of file, fail them all."""
        try:
            while True:
                body = await _read(proc)
                if self._waiting:
                    future = self._waiting.popleft()
                    if not future.done():
                        future.set_result(_reply.decode(body))
        except WriterGone:
            # Synchronously, before any new child can be started: every request waiting
            # now was sent to this one.
            if self._proc is proc:
                self._proc = None
            while self._waiting:
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(WriterGone("the SQLite writer process exited mid-write"))
            await _reap(proc)

    async def write(
        self, credits: Sequence[CreditWrite], now: datetime
    ) -> tuple[set[str], dict[str, str]]:
        frame = _frame(_encode(WriteRequest(now, list(credits))))
        proc = await self._running()
        assert proc.stdin is not None
        future: asyncio.Future[WriteReply] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            proc.stdin.write(frame)
            await proc.stdin.drain()
        except ConnectionError:
            pass  # the reader sees the end of the pipe and fails the waiting future
        reply = await future
        if reply.error is not None:
            if reply.unavailable:
                raise WriterUnavailable(reply.error)
            raise RuntimeError(f"SQLite writer: {reply.error}")
        return set(reply.inserted), reply.known

    async def close(self) -> None:
        async with self._lock:
            proc, self._proc = self._proc, None
            pump, self._pump = self._pump, None
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()  # end of file: the child closes the database and exits
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                await _reap(proc)
            if pump is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump


async def _read(proc: asyncio.subprocess.Process) -> bytes:
    assert proc.stdout is not None
    try:
        (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
        return await proc.stdout.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise WriterGone("the SQLite writer process exited") from exc


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


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
