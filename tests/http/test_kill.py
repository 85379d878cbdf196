"""The service killed with SIGKILL in the middle of a load: every event that got a 2xx is
in the ledger exactly once, and retrying every event completes the rest exactly once."""

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select

from points_service.adapters.sql.engine import create_engine, database_url
from points_service.adapters.sql.tables import balances, events, ledger_entries
from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event
from points_service.settings import Settings
from tests.conftest import AUTH
from tests.http.server import ServerProcess
from tests.unit.test_engine import GRACE, RULES, SHANGHAI

EVENTS = 3000
KILL_AFTER = 1000


def make_events(run: str) -> list[dict[str, Any]]:
    rng = random.Random(7)
    at = datetime.now(UTC).isoformat()
    out = []
    for n in range(EVENTS):
        who = f"{run}-u{rng.randrange(150)}"
        action = rng.choice(["browse", "share", "post", "like", "login", "share_view"])
        e: dict[str, Any] = {
            "event_id": f"{run}-e{n}",
            "informant_id": who,
            "action": action,
            "occurred_at": at,
        }
        if action == "share_view":
            e |= {"share_id": f"s{rng.randrange(5)}", "viewer_id": f"v{rng.randrange(40)}"}
        elif action != "login":
            e["content_id"] = f"c{rng.randrange(30)}"
        out.append(e)
    return out


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


async def ledger_view(settings: Settings) -> tuple[set[str], dict[str, int], dict[str, int]]:
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    prefix = settings.redis_prefix
    try:
        async with engine.connect() as conn:
            ids = {
                r[0]
                for r in await conn.execute(
                    select(events.c.event_id).where(events.c.event_id.like(f"{prefix}%"))
                )
            }
            sums = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(ledger_entries.c.informant_id, func.sum(ledger_entries.c.points))
                    .where(ledger_entries.c.informant_id.like(f"{prefix}%"))
                    .group_by(ledger_entries.c.informant_id)
                )
            }
            held = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(balances.c.informant_id, balances.c.balance).where(
                        balances.c.informant_id.like(f"{prefix}%")
                    )
                )
            }
    finally:
        await engine.dispose()
    return ids, sums, held


def expected_balances(batch: list[dict[str, Any]]) -> dict[str, int]:
    states: dict[str, InformantState] = {}
    for raw in batch:
        e = msgspec.convert(raw, Event)
        plan = plan_event(e, RULES, SHANGHAI, e.occurred_at, GRACE)
        decide(plan, states.setdefault(e.informant_id, InformantState()))
    return {who: s.balance for who, s in states.items() if s.balance}


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
