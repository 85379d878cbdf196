"""Profiles and leaderboards end to end, on SQLite and on PostgreSQL, with a real Redis."""

import asyncio
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from points_service.adapters.redis_boards import RedisBoards, board_key
from points_service.domain.boards import Board
from points_service.http.app import create_app
from points_service.runtime import Runtime
from points_service.services.leaderboards import BoardFilter
from points_service.settings import Settings
from tests.conftest import AUTH, api_client, redis_client, unique
from tests.http.server import ServerProcess
from tests.http.test_events_api import body
from tests.http.test_metrics import samples, value

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
def settings(settings_with_cluster: Settings) -> Settings:
    """This suite also runs on a Redis Cluster."""
    return settings_with_cluster


SHANGHAI = ZoneInfo("Asia/Shanghai")


def today_key() -> str:
    return "day:" + datetime.now(SHANGHAI).date().isoformat()


async def profile(client: httpx.AsyncClient, who: str, **fields: Any) -> Any:
    r = await client.put(f"/v1/informants/{who}", json=fields)
    assert r.status_code in (200, 201), r.text
    return r


async def share(
    client: httpx.AsyncClient, who: str, content: str | None = None, **extra: Any
) -> Any:
    r = await client.post(
        "/v1/events", json=body(who, "share", content_id=content or unique("c"), **extra)
    )
    assert r.status_code == 200, r.text
    return r.json()


def normal(p: dict[str, Any]) -> dict[str, Any]:
    """Times compared as instants (the API answers in UTC)."""
    at = p.get("registered_at")
    return {**p, "registered_at": datetime.fromisoformat(at) if at else None}


async def test_profiles_are_validated_and_stored(client: Client) -> None:
    who = unique("u")
    fields = {
        "name": "张三",
        "province": "640000",
        "city": "640100",
        "county": "640104",
        "unit_name": "兴庆区科协",
        "type": "county",
        "institution_id": "inst-1",
        "certified": True,
        "registered_at": "2026-03-01T09:00:00+08:00",
    }
    r = await client.put(f"/v1/informants/{who}", json=fields)
    assert r.status_code == 201, r.text
    got = (await client.get(f"/v1/informants/{who}")).json()
    level = got.pop("level")  # read-only, beside the profile (tests/http/test_levels.py)
    assert (level["level"], level["experience"]) == (1, 0)
    assert normal(got) == normal({**fields, "informant_id": who, "status": "active"})
    assert (await client.put(f"/v1/informants/{who}", json=fields)).status_code == 200
    bad = [
        ({"province": "640100"}, "province"),
        ({"province": "640000", "city": "650100"}, "city"),
        ({"province": "640000", "city": "640100", "county": "640204"}, "county"),
        ({"county": "640104"}, "county"),
        ({"type": "alien"}, "type"),
        ({"status": "gone"}, "status"),
        ({"colour": "red"}, "colour"),
        ({"name": ""}, "name"),
    ]
    for payload, field in bad:
        r = await client.put(f"/v1/informants/{who}", json=payload)
        assert (r.status_code, r.json()["field"]) == (422, field), (payload, r.text)
    # nothing of the refused bodies was applied
    again = (await client.get(f"/v1/informants/{who}")).json()
    again.pop("level")
    assert normal(again) == normal(got)
    r = await client.get(f"/v1/informants/{unique('nobody')}")
    assert r.status_code == 404


async def test_ranks_ties_pages_neighbours_and_unranked(client: Client) -> None:
    inst = unique("inst")
    a, b, c, d = (f"{inst}-{x}" for x in "abcd")
    for who, name in ((a, "甲"), (b, "乙"), (c, "丙"), (d, "丁")):
        await profile(client, who, name=name, institution_id=inst, province="640000")
    for who, count in ((a, 2), (b, 2), (c, 1)):
        for _ in range(count):
            await share(client, who)
    scope = f"institution:{inst}"
    r = await client.get("/v1/leaderboards/shares", params={"scope": scope, "period": "day"})
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["period"]["key"] == today_key()
    start = datetime.fromisoformat(board["period"]["start"])
    assert start.utcoffset() == timedelta(hours=8)
    assert (start.hour, start.minute) == (0, 0)
    assert board["period"]["next_reset"] == board["period"]["end"]
    assert board["members"] == 3
    assert [(e["rank"], e["informant_id"], e["score"]) for e in board["entries"]] == [
        (1, a, 2),
        (1, b, 2),
        (3, c, 1),
    ]
    assert board["entries"][0]["name"] == "甲"
    assert board["next_cursor"] is None
    points = await client.get("/v1/leaderboards/points", params={"scope": scope, "period": "day"})
    assert [e["score"] for e in points.json()["entries"]] == [4, 4, 2]

    first = await client.get(
        "/v1/leaderboards/shares", params={"scope": scope, "period": today_key(), "limit": 2}
    )
    assert [e["informant_id"] for e in first.json()["entries"]] == [a, b]
    cursor = first.json()["next_cursor"]
    second = await client.get(
        "/v1/leaderboards/shares",
        params={"scope": scope, "period": today_key(), "limit": 2, "cursor": cursor},
    )
    assert [(e["rank"], e["informant_id"]) for e in second.json()["entries"]] == [(3, c)]

    r = await client.get(
        f"/v1/leaderboards/shares/informants/{c}",
        params={"scope": scope, "period": "day", "around": 1},
    )
    standing = r.json()
    assert (standing["rank"], standing["score"], standing["members"]) == (3, 1, 3)
    assert standing["percentile"] == pytest.approx(33.33)
    # at the bottom edge the window is padded upwards: still three entries
    assert [n["informant_id"] for n in standing["neighbours"]] == [a, b, c]
    # neighbours carry their profiles' display fields (on one node read with the window)
    assert [n["name"] for n in standing["neighbours"]] == ["甲", "乙", "丙"]
    assert {n["province"] for n in standing["neighbours"]} == {"640000"}
    await profile(client, b, name="乙二", institution_id=inst, province="640000")
    r = await client.get(
        f"/v1/leaderboards/shares/informants/{c}",
        params={"scope": scope, "period": "day", "around": 1},
    )
    assert [n["name"] for n in r.json()["neighbours"]] == ["甲", "乙二", "丙"]
    # a page shows the new name at once too (this worker forgets what it kept)
    r = await client.get("/v1/leaderboards/shares", params={"scope": scope, "period": "day"})
    assert [e["name"] for e in r.json()["entries"]] == ["甲", "乙二", "丙"]
    r = await client.get(
        f"/v1/leaderboards/shares/informants/{a}",
        params={"scope": scope, "period": "day", "around": 1},
    )
    assert [n["rank"] for n in r.json()["neighbours"]] == [1, 1, 3]
    r = await client.get(
        f"/v1/leaderboards/shares/informants/{d}", params={"scope": scope, "period": "day"}
    )
    assert (r.json()["rank"], r.json()["score"], r.json()["neighbours"]) == (None, 0, [])

    r = await client.get(
        "/v1/leaderboards/shares/ranks",
        params={"scope": scope, "period": "day", "ids": f"{a},{c},{d}"},
    )
    assert [(x["informant_id"], x["rank"], x["score"]) for x in r.json()["ranks"]] == [
        (a, 1, 2),
        (c, 3, 1),
        (d, None, 0),
    ]
    # the same events count on the province, week, month, year and all-time boards
    for period in ("week", "month", "year", "all"):
        r = await client.get(
            f"/v1/leaderboards/shares/informants/{a}",
            params={"scope": "province:640000", "period": period},
        )
        assert r.json()["score"] >= 2, (period, r.text)
    assert r.json()["period"] == {"key": "all", "start": None, "end": None, "next_reset": None}


async def test_bad_board_parameters_are_a_422_naming_them(client: Client) -> None:
    cases = [
        ("/v1/leaderboards/karma", {}, "metric"),
        ("/v1/leaderboards/points", {"scope": "county:640100"}, "scope"),
        ("/v1/leaderboards/points", {"scope": "galaxy:1"}, "scope"),
        ("/v1/leaderboards/points", {"period": "day:2026-02-30"}, "period"),
        ("/v1/leaderboards/points", {"period": "fortnight"}, "period"),
        ("/v1/leaderboards/points", {"limit": 0}, "limit"),
        ("/v1/leaderboards/points", {"cursor": "abc"}, "cursor"),
        ("/v1/leaderboards/points/informants/x", {"around": 99}, "around"),
        ("/v1/leaderboards/points/ranks", {"ids": ","}, "ids"),
    ]
    for path, params, field in cases:
        r = await client.get(path, params=params)
        assert (r.status_code, r.json().get("field")) == (422, field), (path, params, r.text)


async def test_the_direct_path_and_litestars_router_answer_alike(client: Client) -> None:
    """The app's outer middleware answers the hot paths (http/hot.py's `hot_answer`)
    before Litestar's router; a path that Litestar would normalize first (a doubled
    slash) still goes through the router. Both give the same answers, refusals
    included."""
    who = unique("u")
    await share(client, who)
    cases: list[tuple[str, str, dict[str, Any], Any]] = [
        ("GET", "/v1/leaderboards/points", {"period": "day"}, None),
        ("GET", f"/v1/leaderboards/points/informants/{who}", {"around": 1}, None),
        ("GET", "/v1/leaderboards/points/ranks", {"ids": f"{who},nobody"}, None),
        ("GET", "/v1/leaderboards/karma", {}, None),
        ("GET", "/v1/leaderboards/points/informants/x", {"around": 99}, None),
        ("GET", "/v1/leaderboards/points/nowhere", {}, None),
        ("POST", "/v1/leaderboards/points", {}, {}),
        ("POST", "/v1/events", {}, {"event_id": "e1"}),
        ("POST", "/v1/events", {}, body(who, "browse", content_id=42)),
        ("GET", "/v1/events", {}, None),
    ]
    for method, path, params, payload in cases:
        answers = [
            await client.request(method, p, params=params, json=payload)
            for p in (path, path.replace("/v1/", "/v1//", 1))
        ]
        # (Litestar's mount hands on "/nowhere/": a 404's detail quotes the path it got.)
        direct, routed = (
            (a.status_code, a.json() if a.status_code != 404 else a.json()["code"],
             a.headers.get("allow"))
            for a in answers
        )  # fmt: skip
        assert direct == routed, (method, path)
        assert direct[0] in (200, 404, 405, 422), (method, path, direct)


async def _board(client: Client, metric: str, scope: str, period: str = "day") -> dict[str, int]:
    r = await client.get(
        f"/v1/leaderboards/{metric}", params={"scope": scope, "period": period, "limit": 1000}
    )
    assert r.status_code == 200, r.text
    return {e["informant_id"]: e["score"] for e in r.json()["entries"]}


async def test_moves_bans_and_reversals(client: Client) -> None:
    inst1, inst2 = unique("inst"), unique("inst")
    who = unique("u")
    await profile(client, who, institution_id=inst1)
    first = await share(client, who)
    await profile(client, who, institution_id=inst2)
    second = await share(client, who)
    # history stays where it was earned; new events count where the informant is now
    assert await _board(client, "shares", f"institution:{inst1}") == {who: 1}
    assert await _board(client, "shares", f"institution:{inst2}") == {who: 1}
    assert (await _board(client, "shares", "all", "all"))[who] == 2

    await profile(client, who, institution_id=inst2, status="banned")
    assert await _board(client, "shares", f"institution:{inst1}") == {}
    assert who not in await _board(client, "points", "all", "all")
    third = await share(client, who)  # credited in the ledger, shown on no board
    assert third["points"] == 2
    assert await _board(client, "shares", f"institution:{inst2}") == {}

    await profile(client, who, institution_id=inst2, status="active")
    assert await _board(client, "shares", f"institution:{inst1}") == {who: 1}
    assert await _board(client, "shares", f"institution:{inst2}") == {who: 2}
    assert (await _board(client, "points", "all", "all"))[who] == 6

    for event in (first, second):
        r = await client.post(f"/v1/events/{event['event_id']}/reversal", json={"reason": "test"})
        assert r.status_code == 200, r.text
    assert await _board(client, "shares", f"institution:{inst1}") == {}
    assert await _board(client, "shares", f"institution:{inst2}") == {who: 1}
    # a replayed reversal takes nothing more
    r = await client.post(f"/v1/events/{second['event_id']}/reversal", json={"reason": "test"})
    assert r.json()["replayed"] is True
    assert await _board(client, "shares", f"institution:{inst2}") == {who: 1}


ROLLUPS = """
SELECT informant_id, day, province, city, county, institution_id, points, shares,
       share_views, posts
FROM informant_days
"""
FROM_EVENTS = """
SELECT informant_id, day, coalesce(province, ''), coalesce(city, ''), coalesce(county, ''),
       coalesce(institution_id, ''), sum(points), sum(shares), sum(share_views), sum(posts)
FROM events e
WHERE NOT late AND NOT EXISTS (
    SELECT 1 FROM ledger_entries r WHERE r.kind = 'reversal' AND r.ref_id = e.event_id
)
GROUP BY 1, 2, 3, 4, 5, 6
HAVING sum(points) + sum(shares) + sum(share_views) + sum(posts) > 0
"""


async def test_rebuild_reproduces_the_live_boards_and_reconcile_agrees(
    isolated_settings: Settings,
) -> None:
    app = create_app(isolated_settings, CollectorRegistry())
    rng = random.Random(7)
    async with api_client(app, timeout=60) as client:
        people = [unique("w") for _ in range(12)]
        counties = ["640104", "640105", "640106"]
        for who in people:
            county = rng.choice(counties)
            await profile(
                client, who, province="640000", city="640100", county=county,
                institution_id=rng.choice(["i1", "i2"]),
            )  # fmt: skip
        sent: list[dict[str, Any]] = []
        for step in range(160):
            who = rng.choice(people)
            roll = rng.random()
            if roll < 0.05:  # a move
                await profile(
                    client, who, province="640000", city="640100",
                    county=rng.choice(counties), institution_id=rng.choice(["i1", "i2"]),
                )  # fmt: skip
                continue
            if roll < 0.08:  # a ban, or a restore
                status = rng.choice(["banned", "hidden", "active", "active"])
                current = (await client.get(f"/v1/informants/{who}")).json()
                current.pop("informant_id")
                current.pop("level")  # read-only: not part of the profile a PUT sends
                await profile(client, who, **{**current, "status": status})
                continue
            if roll < 0.14 and sent:  # a replay
                r = await client.post("/v1/events", json=rng.choice(sent))
                assert r.status_code == 200 and r.json()["replayed"], r.text
                continue
            if roll < 0.18 and sent:  # a reversal
                event = rng.choice(sent)
                r = await client.post(f"/v1/events/{event['event_id']}/reversal", json={})
                assert r.status_code == 200, r.text
                continue
            ago = rng.choice([0, 0, 0, 1, 30, 100])  # hours: today, yesterday, late
            occurred = (datetime.now(UTC) - timedelta(hours=ago)).isoformat()
            action = rng.choice(["share", "share", "post", "browse", "share_view"])
            extra: dict[str, Any] = {"content_id": f"c{rng.randint(1, 30)}"}
            if action == "share_view":
                extra = {"share_id": f"s{step}", "viewer_id": rng.choice(people)}
            event = body(who, action, occurred_at=occurred, **extra)
            r = await client.post("/v1/events", json=event)
            assert r.status_code == 200, r.text
            sent.append(event)

    # The operator's side: a runtime of its own (as the CLI has), on the same storage.
    runtime = await Runtime.start(isolated_settings, CollectorRegistry())
    try:
        # The daily rollups kept by every commit equal a GROUP BY over the event log.
        async with runtime.ledger.engine.connect() as conn:
            rolled = {tuple(r) for r in await conn.execute(text(ROLLUPS)) if any(r[6:])}
            grouped = {tuple(r) for r in await conn.execute(text(FROM_EVENTS))}
        assert rolled == grouped
        assert rolled, "the workload credited something"
        everything = BoardFilter()
        assert await runtime.leaderboards.reconcile(everything) == []
        store = RedisBoards(runtime.redis, prefix=isolated_settings.redis_prefix)
        before = {b: await store.members(b) for b in await store.boards(scan=True)}
        assert before, "the workload put members on boards"
        # Every board the service wrote is named in the registry (rebuild, reconcile and
        # closing read it, not a SCAN); a name may outlive its board (a ban, a reversal).
        named = set(await store.boards())
        assert before.keys() <= named

        # Redis drifts (a lost write, a stray increment): reconcile names it, rebuild fixes
        # it. A board written behind the service's back is not named: only --scan finds it.
        some_board = sorted(before, key=str)[0]
        victim = next(iter(before[some_board]))
        await runtime.redis.zincrby(store.key(some_board), -5, victim)
        stray = some_board._replace(scope="county:640199")
        await runtime.redis.zadd(store.key(stray), {"ghost": -3})
        differences = await runtime.leaderboards.reconcile(everything)
        assert {(d.board, d.informant_id) for d in differences} == {(some_board, victim)}
        differences = await runtime.leaderboards.reconcile(everything, scan=True)
        assert {(d.board, d.informant_id) for d in differences} == {
            (some_board, victim),
            (stray, "ghost"),
        }
        report = await runtime.leaderboards.rebuild(everything, scan=True)
        # removed: the stray board, and the names whose boards are gone
        assert (report.boards, report.removed) == (len(before), 1 + len(named - before.keys()))
        after = {b: await store.members(b) for b in await store.boards(scan=True)}
        assert after == before
        assert set(await store.boards()) == before.keys()
        assert await runtime.leaderboards.reconcile(everything, scan=True) == []
    finally:
        await runtime.stop()


async def test_top_pages_are_served_again_for_the_page_ttl(settings: Settings) -> None:
    app = create_app(replace(settings, board_page_ttl=0.5), CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        inst = unique("inst")
        who = f"{inst}-a"
        await profile(client, who, institution_id=inst)
        await share(client, who)
        params = {"scope": f"institution:{inst}", "period": "all"}
        first = (await client.get("/v1/leaderboards/shares", params=params)).json()
        assert [e["score"] for e in first["entries"]] == [1]
        await share(client, who)
        again = (await client.get("/v1/leaderboards/shares", params=params)).json()
        assert again == first  # the same page, within the TTL
        # a standing is never cached
        r = await client.get(f"/v1/leaderboards/shares/informants/{who}", params=params)
        assert r.json()["score"] == 2
        await asyncio.sleep(0.6)
        later = (await client.get("/v1/leaderboards/shares", params=params)).json()
        assert [e["score"] for e in later["entries"]] == [2]


async def at_once(port: int, path: str, count: int) -> list[bytes]:
    """GET `path` on `count` connections at once: each request is written only when all
    the connections are open, so the server reads them all in a turn or two. The
    bodies, each a 200."""
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(count))
    )
    auth = "".join(f"{k}: {v}\r\n" for k, v in AUTH.items())
    request = f"GET {path} HTTP/1.1\r\nhost: t\r\n{auth}connection: close\r\n\r\n".encode()
    for _, writer in opened:
        writer.write(request)
    bodies = []
    for reader, writer in opened:
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        bodies.append(body)
        writer.close()
    return bodies


async def test_a_page_that_expires_under_load_is_built_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Requests that miss the page cache together share one build of the page (a real
    server: the test client answers one request at a time); when the build fails, each
    request is answered on its own."""
    server = ServerProcess(replace(settings, board_page_ttl=0.3), tmp_path / "server.log")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as http:

            async def pages(how: str) -> float:
                found = samples((await http.get("/metrics")).text)
                return value(found, "points_leaderboard_pages_total", how=how)

            inst = unique("inst")
            for n in range(3):
                await profile(http, f"{inst}-{n}", institution_id=inst)
                for _ in range(n + 1):
                    await share(http, f"{inst}-{n}")
            params = {"scope": f"institution:{inst}", "period": "all"}
            path = f"/v1/leaderboards/shares?scope=institution:{inst}&period=all"
            rounds = 5
            for expected in range(3, 3 + rounds):
                answers = await at_once(server.port, path, 32)
                assert len(set(answers)) == 1  # one page for all
                assert [e["score"] for e in json.loads(answers[0])["entries"]] == [
                    expected, 2, 1,
                ]  # fmt: skip
                await share(http, f"{inst}-2")
                await asyncio.sleep(0.35)  # the page expires
            # one build a round; without the sharing, requests that overlapped built it
            # again (overlap depends on timing, but 32 at once, five times, always did)
            assert await pages("built") == rounds
            assert await pages("shared") >= 1
            shared = await pages("shared")
            # a build that fails: every request is refused on its own, nothing is kept
            bad = await asyncio.gather(
                *(http.get("/v1/leaderboards/shares", params=params | {"limit": "x"})
                  for _ in range(16))
            )  # fmt: skip
            assert {r.status_code for r in bad} == {422}
            assert {r.json()["field"] for r in bad} == {"limit"}
            assert (await pages("built"), await pages("shared")) == (rounds, shared)
            r = await http.get("/v1/leaderboards/shares", params=params | {"limit": "2"})
            assert [e["score"] for e in r.json()["entries"]] == [3 + rounds, 2]
    finally:
        server.stop()


async def test_a_started_service_names_the_boards_nobody_named(settings: Settings) -> None:
    """A board in Redis that the registry lacks (written before board writes named their
    boards, or by hand) is named by the service's first closing round, for closing and
    rebuild to find."""
    ghost = Board("points", f"institution:{unique('old')}", "all")
    redis = redis_client(settings)
    try:
        await redis.zadd(board_key(settings.redis_prefix, ghost), {"z": -4})
        app = create_app(settings, CollectorRegistry())
        async with api_client(app, timeout=60):
            store = RedisBoards(redis, prefix=settings.redis_prefix)
            for _ in range(100):
                if ghost in await store.registered():
                    break
                await asyncio.sleep(0.05)
            assert ghost in await store.registered()
    finally:
        await redis.delete(board_key(settings.redis_prefix, ghost))
        await redis.aclose()


async def test_pages_read_members_written_by_hand(client: Client, settings: Settings) -> None:
    """A page, and a standing's window, come from Redis as one text, a line per member and
    per score. A member the service never writes (with a newline in it) is still read
    whole, and a score past 10^17, which Redis writes as a double with 17 digits, comes
    back exact (cjson's 14 digits rounded it, and failed the standing)."""
    odd = Board("points", f"institution:{unique('odd')}", "all")
    big = Board("points", f"institution:{unique('big')}", "all")
    redis = redis_client(settings)
    try:
        await redis.zadd(board_key(settings.redis_prefix, odd), {"a\nb": -5, "c": -3, "d": -3})
        await redis.zadd(board_key(settings.redis_prefix, big), {"x": -7, "y": -7, "z": -(2**60)})
        for board, rows in (
            (odd, [(1, "a\nb", 5), (2, "c", 3), (2, "d", 3)]),
            (big, [(1, "z", 2**60), (2, "x", 7), (2, "y", 7)]),
        ):
            r = await client.get(
                "/v1/leaderboards/points", params={"scope": board.scope, "period": "all"}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["members"] == 3
            assert [(e["rank"], e["informant_id"], e["score"]) for e in page["entries"]] == rows
            r = await client.get(
                "/v1/leaderboards/points",
                params={"scope": board.scope, "period": "all", "limit": 1, "cursor": "1"},
            )
            assert [(e["rank"], e["informant_id"]) for e in r.json()["entries"]] == [rows[1][:2]]
            r = await client.get(
                f"/v1/leaderboards/points/informants/{rows[1][1]}",
                params={"scope": board.scope, "period": "all", "around": 1},
            )
            standing = r.json()
            assert (standing["rank"], standing["score"]) == (2, rows[1][2])
            assert [
                (e["rank"], e["informant_id"], e["score"]) for e in standing["neighbours"]
            ] == rows
    finally:
        await redis.delete(
            board_key(settings.redis_prefix, odd), board_key(settings.redis_prefix, big)
        )
        await redis.aclose()
