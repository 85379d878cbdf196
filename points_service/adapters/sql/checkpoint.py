"""WAL checkpoints for the SQLite ledger, mostly off the event loop.

The credit writer commits on the event loop (credit_writers.py). SQLite's automatic
checkpoint runs inside the commit that takes the log past its threshold: it copies the
pages the log holds into the database file and syncs both. Under load that took 5-30 ms
here, and occasionally 100-200 ms, with the loop serving nobody meanwhile: it was the
tail of the latency at moderate load.

`Checkpointer` is a thread with its own connection that runs a PASSIVE checkpoint (which
never waits for the writer) every `interval` seconds. The writer keeps its automatic
checkpoint, but by the time that comes round the thread has copied nearly every frame,
so it copies a few and the log starts again from its beginning. A checkpointing thread
alone cannot bound the log under continuous writes: a WAL restarts only when a writer
finds it entirely copied, and a commit lands during nearly every checkpoint. The sqlite3
module releases the GIL for the whole checkpoint, so the thread does not hold up the
loop.
"""

import sqlite3
import threading
import time

import structlog

_log = structlog.get_logger("points_service.sqlite")


class Checkpointer:
    def __init__(self, path: str, interval: float = 0.02) -> None:
        self._path = path
        self._interval = interval
        self._stopping = threading.Event()
        self.checkpoints = 0  # completed without SQLITE_BUSY
        self.slowest = 0.0  # seconds
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # timeout=0: PASSIVE takes no lock a writer holds, so nothing to wait for.
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        try:
            while not self._stopping.wait(self._interval):
                started = time.perf_counter()
                try:
                    busy, _frames, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                except sqlite3.Error as exc:  # e.g. the file went away: try again later
                    _log.warning("sqlite_checkpoint_failed", error=str(exc))
                    continue
                self.slowest = max(self.slowest, time.perf_counter() - started)
                if busy:
                    continue
                self.checkpoints += 1
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
