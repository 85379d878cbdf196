"""The move the runbook describes: a programme on the embedded defaults (SQLite, embedded
Redis) moves to PostgreSQL and a Redis of its own. `copy-ledger` copies every row; the
service on the new stores answers exactly as before, from its first request."""

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import PG_ADMIN_URL, _admin, api_client, unique
from tests.http.test_import import cli
from tests.http.test_redis_loss import _now_event

Client = AsyncTestClient  # type: ignore[type-arg]


async def _picture(client: Any, people: list[str], institution: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for who in people:
        for what in ("points", "ledger", ""):
            seen[f"{what} {who}"] = (await client.get(f"/v1/informants/{who}/{what}")).json()
    seen["institution"] = (await client.get(f"/v1/institutions/{institution}")).json()
    seen["members"] = (await client.get(f"/v1/institutions/{institution}/members")).json()
    board = await client.get(
        "/v1/leaderboards/points", params={"scope": f"institution:{institution}", "limit": 10}
    )
    seen["board"] = [(e["informant_id"], e["rank"], e["score"]) for e in board.json()["entries"]]
    return seen


async def test_copy_ledger_moves_sqlite_to_postgres(base_settings: Settings) -> None:
    sqlite = base_settings  # the SQLite file in the test's data dir
    people = [unique("m") for _ in range(3)]
    institution = unique("inst")
    app = create_app(sqlite, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        made = await client.put(
            f"/v1/institutions/{institution}",
            json={"name": "银川一中", "province": "640000", "city": "640100", "county": "640104"},
        )
        assert made.status_code == 201, made.text
        for n, who in enumerate(people):
            put = await client.put(
                f"/v1/informants/{who}",
                json={"name": f"信息员{n}", "province": "640000", "city": "640100",
                      "county": "640104", "institution_id": institution, "certified": True},
            )  # fmt: skip
            assert put.status_code in (200, 201), put.text
        events = [
            _now_event(f"{who}-{n}", who, action, content_id=f"c{n}")
            for k, who in enumerate(people)
            for n, action in enumerate(["share", "browse", "post", "like", "share"][: k + 3])
        ]
        answered = (await client.post("/v1/events/batch", json={"events": events})).json()
        assert answered["accepted"] == len(events), answered
        spent = await client.post(
            f"/v1/informants/{people[0]}/redemptions",
            json={"redemption_id": "r1", "points": 2, "item": "pen"},
        )
        assert spent.status_code == 200, spent.text
        clawed = await client.post(f"/v1/events/{people[1]}-0/reversal", json={})
        assert clawed.status_code == 200, clawed.text
        before = await _picture(client, people, institution)

    target = f"points_test_move_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{target}"')
    target_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{target}"
    try:
        done = await asyncio.to_thread(cli, sqlite, "copy-ledger", target_url)
        assert done.returncode == 0, done.stderr
        assert "ledger_entries: " in done.stdout and "informants: 3 rows" in done.stdout
        assert "equal on both sides" in done.stderr
        again = await asyncio.to_thread(cli, sqlite, "copy-ledger", target_url)
        assert again.returncode == 1
        assert "the target database already holds rows in `" in again.stderr

        # The new stores: PostgreSQL, and a Redis (prefix) that holds nothing yet.
        moved = replace(
            sqlite,
            database_url=target_url,
            redis_prefix=f"{sqlite.redis_prefix}-moved",
            rebuild_on_redis_loss=True,
        )
        app = create_app(moved, CollectorRegistry())
        async with api_client(app, timeout=60) as client:
            for _ in range(100):  # the boards are rebuilt as the service starts
                after = await _picture(client, people, institution)
                if after["board"] == before["board"]:
                    break
                await asyncio.sleep(0.1)
            assert after == before
            # The ids go on after the copied ones: new entries are written, not refused.
            spent = await client.post(
                f"/v1/informants/{people[0]}/redemptions",
                json={"redemption_id": "r2", "points": 1, "item": "pen"},
            )
            assert spent.status_code == 200, spent.text
            ledger = (await client.get(f"/v1/informants/{people[0]}/ledger")).json()["entries"]
            assert [e["points"] for e in ledger][:2] == [-1, -2]
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
