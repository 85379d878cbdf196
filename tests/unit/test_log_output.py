"""The log output holds the lines of one event-loop turn and writes them together; the
access line is built without the processor chain but says what a structlog line says."""

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog

from points_service.adapters.logging import _TurnBuffered, access_line, configure_logging


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    yield read, write
    os.close(read)
    os.close(write)


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


async def test_lines_of_one_turn_go_out_together_in_order(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = _TurnBuffered(write)
    for n in range(50):
        out.write(b"line %d\n" % n)
        out.flush()
    assert _drain(read) == b""  # held until the turn ends
    await asyncio.sleep(0)
    assert _drain(read) == b"".join(b"line %d\n" % n for n in range(50))
    out.write(b"next\n")
    await asyncio.sleep(0)
    assert _drain(read) == b"next\n"


async def test_lines_from_another_thread_go_out_at_once(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = _TurnBuffered(write)
    worker = threading.Thread(target=out.write, args=(b"from a thread\n",))
    worker.start()
    worker.join()
    assert _drain(read) == b"from a thread\n"


def test_without_a_loop_lines_go_out_at_once(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = _TurnBuffered(write)
    out.write(b"no loop\n")
    assert _drain(read) == b"no loop\n"


def _log_in_a_last_turn(out: _TurnBuffered, line: bytes) -> None:
    """One turn of a new loop: the line is held and its release scheduled, then the loop
    stops before the turn that would run it."""
    loop = asyncio.new_event_loop()
    loop.call_soon(out.write, line)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()


def test_a_line_held_by_a_loop_that_stopped_goes_out_with_the_next_loop_or_at_exit(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    out = _TurnBuffered(write)
    _log_in_a_last_turn(out, b"held\n")
    assert _drain(read) == b""

    async def log_again() -> None:
        out.write(b"later\n")
        await asyncio.sleep(0)

    asyncio.run(log_again())
    assert _drain(read) == b"held\nlater\n"

    out_at_exit = _TurnBuffered(write)
    _log_in_a_last_turn(out_at_exit, b"at exit\n")
    out_at_exit.release()  # what atexit does
    assert _drain(read) == b"at exit\n"


def test_the_access_line_follows_the_level_and_carries_the_bound_context(
    capfd: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging(level="WARNING", fmt="json")
        access_line(method="GET", status=200)
        assert capfd.readouterr().err == ""
        configure_logging(level="INFO", fmt="json")
        structlog.contextvars.bind_contextvars(request_id="r-1")
        access_line(method="GET", status=200)
        [line] = capfd.readouterr().err.splitlines()
        found = json.loads(line)
        stamp = found.pop("timestamp")
        assert found == {
            "request_id": "r-1",
            "method": "GET",
            "status": 200,
            "event": "request",
            "level": "info",
        }
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        configure_logging()
