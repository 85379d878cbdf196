"""SIGTERM in the middle of a load, on the embedded defaults: the service stops taking
requests, finishes those in flight, flushes its group commit and stops the embedded
Redis cleanly (exit 0). Every acknowledged event is in the ledger, and after a restart
the embedded Redis (from its append-only file) knows every one of them."""

import asyncio
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from points_service.settings import Settings
from tests.conftest import AUTH
from tests.http.server import ServerProcess
from tests.http.test_embedded import embedded_redis_answers
from tests.http.test_kill import ledger_view, make_events

STOP_AFTER = 800  # acknowledged events before SIGTERM


async def _load(
    url: str, batch: list[dict[str, Any]], acked: set[str], answers: list[int], go: asyncio.Event
) -> None:
    queue = list(reversed(batch))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            e = queue.pop()
            try:
                r = await client.post(f"{url}/v1/events", json=e)
            except httpx.HTTPError:
                await asyncio.sleep(0.01)  # refused: the server is going or gone
                continue
            answers.append(r.status_code)
            if r.status_code == 200:
                acked.add(e["event_id"])
                if len(acked) >= STOP_AFTER:
                    go.set()

    async with httpx.AsyncClient(headers=AUTH, timeout=20) as client:
        await asyncio.gather(*(worker(client) for _ in range(32)))


async def test_sigterm_under_load_loses_nothing_acknowledged(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(base_settings, redis_url=None, data_dir=tmp_path / "var")
    server = ServerProcess(settings, tmp_path / "server.log", POINTS_LOG_LEVEL="INFO")
    batch = make_events(settings.redis_prefix)
    server.start()
    assert server.process is not None
    acked: set[str] = set()
    answers: list[int] = []
    go = asyncio.Event()
    load = asyncio.create_task(_load(server.url, batch, acked, answers, go))
    await asyncio.wait_for(go.wait(), timeout=120)
    server.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = await asyncio.to_thread(server.process.wait, 60)
    took = time.monotonic() - started
    await load
    log = (tmp_path / "server.log").read_text()
    assert code == 0, log[-3000:]
    assert '"event":"stopped"' in log, log[-3000:]  # the lifespan's shutdown ran
    assert took < 30, f"shutdown took {took:.1f} s"
    assert not embedded_redis_answers(settings.data_dir), "the embedded Redis outlived it"
    assert "Redis is now ready to exit" in (settings.data_dir / "redis" / "redis.log").read_text()
    assert set(answers) <= {200, 503}, sorted(set(answers))
    assert len(acked) >= STOP_AFTER and len(acked) < len(batch), "SIGTERM came too late"

    ids, _, _ = await ledger_view(settings)
    missing = acked - ids
    assert not missing, f"{len(missing)} acknowledged events are not in the ledger"

    server = ServerProcess(settings, tmp_path / "server.log")
    server.start()
    try:
        async with httpx.AsyncClient(headers=AUTH, base_url=server.url, timeout=20) as client:
            sample = [e for e in batch if e["event_id"] in acked][:200]
            again = [await client.post("/v1/events", json=e) for e in sample]
    finally:
        server.stop()
    assert all(r.status_code == 200 and r.json()["replayed"] for r in again), [
        r.text for r in again if not r.json().get("replayed")
    ][:3]
