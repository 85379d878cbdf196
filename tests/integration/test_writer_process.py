"""The SQLite credit writer in its child process: rows land, a dead child fails only the
write in flight, the next write starts a new one, and closing ends it."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from points_service.adapters.sql.credit_writers import SqliteCreditWriter
from points_service.adapters.sql.engine import create_engine, migrate
from points_service.adapters.sql.ledger import MIN_GROUP, SqlLedger
from points_service.adapters.sql.writer_process import SqliteProcessWriter, WriterGone
from points_service.domain.ledger import WriteStatus
from tests.integration.test_sqlite_checkpoints import _writes


async def _database(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive either.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


async def test_writes_land_and_a_killed_child_is_replaced(tmp_path: Path) -> None:
    path = await _database(tmp_path)
    writer = SqliteProcessWriter(str(path))
    now = datetime.now(UTC)
    await writer.start()
    first_pid = writer.pid
    assert first_pid is not None and first_pid != os.getpid()
    try:
        batch = _writes(20, 0, now)
        inserted, known = await writer.write(batch, now)
        assert (inserted, known) == ({w.event.event_id for w in batch}, {})
        # The same events again: already there, with their body hashes.
        inserted, known = await writer.write(batch[:3], now)
        assert inserted == set()
        assert known == {w.event.event_id: w.decision.h for w in batch[:3]}

        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(WriterGone):
            await writer.write(_writes(5, 100, now), now)
        again = _writes(5, 200, now)
        inserted, _ = await writer.write(again, now)
        assert inserted == {w.event.event_id for w in again}
        assert writer.pid not in (None, first_pid)
    finally:
        second_pid = writer.pid
        await writer.close()
    assert second_pid is not None and not _alive(second_pid)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (25,)


async def test_the_group_committer_settles_from_the_pipe_and_survives_a_dead_child(
    tmp_path: Path,
) -> None:
    """The ledger hands credit batches to the running child (`submit`) and settles them
    from the reply: concurrent commits share batches and each gets its own statuses, an
    event committed again is EXISTING and its id with another body CONFLICT; a child
    killed under a write fails that write, and the next commit starts a new child."""
    path = await _database(tmp_path)
    writer = SqliteProcessWriter(str(path))
    await writer.start()
    ledger = SqlLedger(create_engine(f"sqlite+aiosqlite:///{path}"), writer)
    await ledger.start()
    now = datetime.now(UTC)
    batches: list[int] = []
    ledger.on_batch = lambda size, seconds: batches.append(size)
    try:
        writes = _writes(60, 0, now)
        outcomes = await asyncio.gather(*(ledger.commit([w]) for w in writes))
        assert outcomes == [[WriteStatus.INSERTED]] * 60
        assert sum(batches) == 60 and len(batches) < 60, "concurrent commits share batches"
        # One event twice in a commit: the ledger has it already.
        assert await ledger.commit([writes[1], writes[1]]) == [WriteStatus.EXISTING] * 2
        # Its id with another body: refused.
        other = msgspec.structs.replace(
            writes[0], decision=msgspec.structs.replace(writes[0].decision, h="f" * 32)
        )
        fresh = _writes(1, 60, now)[0]
        assert await ledger.commit([fresh, other]) == [WriteStatus.INSERTED, WriteStatus.CONFLICT]

        # Stopped, the child cannot answer: the write is surely in flight when it dies.
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        lost = asyncio.ensure_future(ledger.commit(_writes(1, 100, now)))
        await asyncio.sleep(0.2)
        assert not lost.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WriterGone):
            await lost
        again = _writes(3, 200, now)
        assert await ledger.commit(again) == [WriteStatus.INSERTED] * 3
        assert writer.pid not in (None, pid)
    finally:
        await ledger.stop()


async def test_waiting_commits_are_split_over_the_transactions_in_flight(
    tmp_path: Path,
) -> None:
    """Thirty commits waiting at once: the writer child takes three transactions at a
    time, so they go as several groups of about a third each (never fewer than
    MIN_GROUP a group while that many wait), not as one group of thirty; a writer with
    one transaction in flight still takes all that waits."""
    assert MIN_GROUP == 8, "the expected groups below are worked out for 8"
    path = await _database(tmp_path)
    now = datetime.now(UTC)
    for writer, expected in (
        (SqliteProcessWriter(str(path)), [10, 8, 8, 4]),
        (SqliteCreditWriter(str(path)), [30]),
    ):
        if isinstance(writer, SqliteProcessWriter):
            await writer.start()
        ledger = SqlLedger(create_engine(f"sqlite+aiosqlite:///{path}"), writer)
        await ledger.start()
        batches: list[int] = []
        ledger.on_batch = lambda size, seconds, batches=batches: batches.append(size)
        try:
            writes = _writes(30, len(expected) * 1000, now)
            outcomes = await asyncio.gather(*(ledger.commit([w]) for w in writes))
            assert outcomes == [[WriteStatus.INSERTED]] * 30
            assert sorted(batches, reverse=True) == expected, batches
        finally:
            await ledger.stop()


async def test_the_child_outlives_signals_meant_for_the_group(tmp_path: Path) -> None:
    """A stop signal sent to the whole process group (a terminal's Ctrl-C, `kill -TERM
    -PGID`, systemd's control-group kill) must not end the child under the parent's
    feet: the parent still has writes to flush through it. It ends on end of file."""
    path = await _database(tmp_path)
    writer = SqliteProcessWriter(str(path))
    now = datetime.now(UTC)
    await writer.start()
    pid = writer.pid
    assert pid is not None
    try:
        for number, signum in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
            os.kill(pid, signum)
            await asyncio.sleep(0.2)
            assert _alive(pid), f"the writer died of {signum.name}"
            batch = _writes(3, 10 * number, now)
            inserted, _ = await writer.write(batch, now)
            assert inserted == {w.event.event_id for w in batch}
            assert writer.pid == pid
    finally:
        await writer.close()
    assert not _alive(pid)


async def test_a_writer_that_cannot_open_its_file_says_so(tmp_path: Path) -> None:
    writer = SqliteProcessWriter(str(tmp_path / "no-such-dir" / "ledger.sqlite3"))
    with pytest.raises(WriterGone, match="did not start"):
        await writer.start()
    await writer.close()


_PARENT = """
import asyncio, sys
from points_service.adapters.sql.writer_process import SqliteProcessWriter
async def main():
    writer = SqliteProcessWriter(sys.argv[1])
    await writer.start()
    print(writer.pid, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_the_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    path = asyncio.run(_database(tmp_path))
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the writer outlived its parent"
    finally:
        parent.kill()
        parent.wait()
