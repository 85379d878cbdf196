"""The service killed with SIGKILL in the middle of a load, once and then again and again:
every event that got a 2xx is in the ledger exactly once, and retrying every event
completes the rest exactly once.

`make_events`, `ledger_view` and `expected_balances` live in tests/http/fault_load.py
(imported here, where other tests have found them)."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from points_service.settings import Settings
from tests.conftest import AUTH
from tests.http.fault_load import (
    FaultLoad,
    backend,
    expected_balances,
    ledger_view,
    make_events,
)
from tests.http.server import ServerProcess

EVENTS = 3000
KILL_AFTER = 1000


async def send_all(
    url: str, batch: list[dict[str, Any]], acked: set[str], stop_after: int | None
) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for e in batch:
        queue.put_nowait(e)
    done = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty() and not done.is_set():
            e = queue.get_nowait()
            try:
                r = await client.post(f"{url}/v1/events", json=e)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                acked.add(e["event_id"])
                if stop_after is not None and len(acked) >= stop_after:
                    done.set()

    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(32)))


@pytest.mark.slow
async def test_sigkill_under_load_loses_nothing_acknowledged(
    settings: Settings, tmp_path: Path
) -> None:
    batch = make_events(settings.redis_prefix)
    server = ServerProcess(settings, tmp_path / "server.log")
    server.start()
    acked: set[str] = set()
    try:
        await send_all(server.url, batch, acked, stop_after=KILL_AFTER)
        server.kill()
        ids, _, _ = await ledger_view(settings)
        assert acked, "no event was acknowledged before the kill"
        missing = acked - ids
        assert not missing, f"{len(missing)} acknowledged events are not in the ledger"

        server.start()
        retried: set[str] = set()
        await send_all(server.url, batch, retried, stop_after=None)
        assert len(retried) == EVENTS
        ids, sums, held = await ledger_view(settings)
        assert ids == {e["event_id"] for e in batch}
        assert sums == held  # the balances table agrees with the entries, entry by entry
        assert sums == expected_balances(batch)  # and nothing was credited twice
    finally:
        server.stop()


KILLS = 3
KILL_EVERY = 600  # acknowledged events between kills, out of EVENTS


@pytest.mark.slow
async def test_sigkill_again_and_again_under_load(settings: Settings, tmp_path: Path) -> None:
    """Killed after every KILL_EVERY acknowledged events, KILLS times, and started again
    each time while the load goes on (refused connections meanwhile): nothing
    acknowledged is missing from the ledger at any kill, and once every unacknowledged
    event is retried, the ledger holds each event once and the engine's balances."""
    server = ServerProcess(settings, tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    label = f"SIGKILL x{KILLS} under load ({backend(settings)})"
    load = FaultLoad(server.port, make_events(settings.redis_prefix, EVENTS), label, pause=1.0)

    async def kills() -> None:
        for n in range(1, KILLS + 1):
            await load.acknowledged(n * KILL_EVERY)
            await load.kill_and_restart(server, settings)

    await load.exercise(kills(), server, settings)
    assert [r.lost for r in load.figures.rounds] == [0] * KILLS
