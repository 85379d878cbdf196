"""The points lottery through the HTTP API, on SQLite, PostgreSQL and a Redis Cluster:
draws and their refusals, replays, many concurrent draws against a small stock and
budget, and a closed window recomputed from its revealed seed by an outsider (from the
API alone) and by `points-service draws verify`, which fails once an outcome is changed."""

import asyncio
import hashlib
import hmac
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from points_service.adapters.sql.engine import create_engine, database_url
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import ROOT, api_client, redis_client, unique
from tests.http.server import environ, free_port
from tests.http.test_events_api import body
from tests.http.test_faults import pg_proxy, redis_proxy  # noqa: F401 - fixtures used by name

Client = AsyncTestClient  # type: ignore[type-arg]
NOW = datetime.now(UTC)
CLOSING_SECONDS = 20  # the closing draw's window ends this long after the app starts


@pytest.fixture
def settings(settings_with_cluster: Settings) -> Settings:
    """This suite also runs on a Redis Cluster."""
    return settings_with_cluster


def prize(pid: str, kind: str, weight: int, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "kind": kind, "weight": weight, **fields}


def draw_toml(
    draw_id: str, starts: datetime, ends: datetime, prizes: list[dict[str, Any]], **fields: Any
) -> str:
    head = {"id": draw_id, "cost": 20, "daily_limit": 3, "budget": 100_000, **fields}
    lines = ["[[draws]]"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in head.items()]
    lines += [f"starts = {starts.isoformat()}", f"ends = {ends.isoformat()}"]
    for p in prizes:
        lines.append("[[draws.prizes]]")
        lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in p.items()]
    return "\n".join(lines) + "\n"


class Draws:
    """The test's own draws (ids unique to the test: the PostgreSQL ledger is shared)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.plain = f"plain-{tag}"
        self.sure = f"sure-{tag}"  # always a points prize of 7
        self.tiny = f"tiny-{tag}"  # small stock and budget
        self.limited = f"limited-{tag}"  # costs 1, twice a day, never wins
        self.upcoming = f"upcoming-{tag}"
        self.closing = f"closing-{tag}"
        self.closes_at = datetime.now(UTC) + timedelta(seconds=CLOSING_SECONDS)

    def toml(self) -> str:
        now = datetime.now(UTC)
        open_from, open_to = now - timedelta(hours=1), now + timedelta(days=1)
        mixed = [
            prize("points-50", "points", 30, points=50, quantity=5),
            prize("mug", "item", 20, value=10, quantity=3, title="A mug"),
            prize("nothing", "none", 50),
        ]
        return "".join(
            [
                draw_toml(self.plain, open_from, open_to, mixed),
                draw_toml(
                    self.sure,
                    open_from,
                    open_to,
                    [
                        prize("points-7", "points", 1, points=7, quantity=100),
                        prize("none", "none", 0),
                    ],
                ),
                # 3 x 40 + 1 x 20 of a 150 budget: the stock outlasts the budget.
                draw_toml(
                    self.tiny,
                    open_from,
                    open_to,
                    [
                        prize("points-40", "points", 50, points=40, quantity=3),
                        prize("badge", "item", 30, value=20, quantity=10),
                        prize("none", "none", 20),
                    ],
                    cost=5,
                    daily_limit=100,
                    budget=150,
                ),
                draw_toml(
                    self.limited,
                    open_from,
                    open_to,
                    [
                        prize("points-1", "points", 0, points=1, quantity=1),
                        prize("none", "none", 1),
                    ],
                    cost=1,
                    daily_limit=2,
                ),
                draw_toml(self.upcoming, now + timedelta(days=1), now + timedelta(days=2), mixed),
                draw_toml(self.closing, open_from, self.closes_at, mixed, daily_limit=50),
            ]
        )


@pytest.fixture
def draws() -> Draws:
    return Draws()


@pytest.fixture
def lottery_settings(settings: Settings, draws: Draws, tmp_path: Path) -> Settings:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "draws.toml").write_text(draws.toml())
    return replace(settings, rules_dir=rules)


@pytest.fixture
async def client(lottery_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(lottery_settings, CollectorRegistry())
    async with api_client(app, timeout=60) as c:
        yield c


async def fund(client: Client, informants: list[str], shares: int) -> None:
    """`shares` shares each: 2 points a share (up to 20 points a day)."""
    events = [body(who, "share", content_id=f"c{n}") for who in informants for n in range(shares)]
    r = await client.post("/v1/events/batch", json={"events": events})
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


async def balance(client: Client, who: str) -> tuple[int, int]:
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    return points["balance"], points["earned"]


async def test_a_draw_spends_gives_replays_and_refuses(client: Client, draws: Draws) -> None:
    who, poor = unique("u"), unique("u")
    await fund(client, [who], 10)  # 20 points
    url = f"/v1/informants/{who}/draws"
    first = await client.post(url, json={"draw_id": "d1-" + who, "draw": draws.sure})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["prize"]["id"], answer["points"], answer["cost"]) == ("points-7", 7, 20)
    assert (answer["seq"], answer["balance"], answer["replayed"]) == (1, 7, False)
    # A points prize credits the balance at once; it was won, not earned.
    assert await balance(client, who) == (7, 20)
    ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert [(e["kind"], e["points"]) for e in ledger[:2]] == [("prize", 7), ("draw", -20)]

    again = await client.post(url, json={"draw_id": "d1-" + who, "draw": draws.sure})
    assert again.status_code == 200
    assert again.json() == {**answer, "replayed": True}
    reused = await client.post(url, json={"draw_id": "d1-" + who, "draw": draws.plain})
    assert (reused.status_code, reused.json()["code"]) == (409, "draw_id_reused")
    elsewhere = await client.post(
        f"/v1/informants/{poor}/draws", json={"draw_id": "d1-" + who, "draw": draws.sure}
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "draw_id_reused")

    short = await client.post(url, json={"draw_id": "d2-" + who, "draw": draws.sure})
    assert (short.status_code, short.json()["code"]) == (409, "insufficient_balance")
    assert await balance(client, who) == (7, 20)  # nothing half-applied

    for payload, field in [
        ({"draw": draws.sure}, "draw_id"),
        ({"draw_id": "x", "draw": "Not A Draw"}, "draw"),
        ({"draw_id": "", "draw": draws.sure}, "draw_id"),
        ({"draw_id": "x", "draw": draws.sure, "points": 1}, "points"),
    ]:
        r = await client.post(url, json=payload)
        assert (r.status_code, r.json().get("field")) == (422, field), r.text
    missing = await client.post(url, json={"draw_id": "x", "draw": "no-such-draw"})
    assert missing.status_code == 404
    early = await client.post(url, json={"draw_id": "d3-" + who, "draw": draws.upcoming})
    assert (early.status_code, early.json()["code"]) == (409, "draw_not_open")
    assert await balance(client, who) == (7, 20)


async def test_the_daily_limit_holds(client: Client, draws: Draws) -> None:
    who = unique("u")
    await fund(client, [who], 3)  # 6 points; the limited draw costs 1, twice a day
    codes = []
    for n in range(4):
        r = await client.post(
            f"/v1/informants/{who}/draws", json={"draw_id": f"{who}-{n}", "draw": draws.limited}
        )
        codes.append(r.json()["code"] if r.status_code != 200 else r.json()["prize"]["id"])
    assert codes == ["none", "none", "daily_limit_reached", "daily_limit_reached"], codes
    assert await balance(client, who) == (4, 6)


async def test_concurrent_draws_never_pass_stock_budget_or_balance(
    client: Client, draws: Draws
) -> None:
    people = [unique("u") for _ in range(20)]
    await fund(client, people, 10)  # 20 points each: 4 draws at 5, more after a prize
    before = {who: await balance(client, who) for who in people}

    async def one(n: int) -> Any:
        who = people[n % len(people)]
        return await client.post(
            f"/v1/informants/{who}/draws", json={"draw_id": f"{draws.tiny}-{n}", "draw": draws.tiny}
        )

    answers = await asyncio.gather(*(one(n) for n in range(200)))
    assert {r.status_code for r in answers} <= {200, 409}, {r.status_code for r in answers}
    won = Counter(r.json()["prize"]["id"] for r in answers if r.status_code == 200)
    refused = Counter(r.json()["code"] for r in answers if r.status_code == 409)
    assert set(refused) <= {"insufficient_balance", "budget_exhausted", "sold_out"}, refused
    # Some 80 affordable draws at odds of 4 in 5 to win spend the 150 long before the end.
    assert refused["budget_exhausted"] + refused["sold_out"] > 0, refused
    assert won["points-40"] <= 3 and won["points-40"] * 40 + won["badge"] * 20 <= 150, won
    seqs = sorted(r.json()["seq"] for r in answers if r.status_code == 200)
    assert seqs == list(range(1, len(seqs) + 1))  # one order, no gaps

    info = (await client.get(f"/v1/draws/{draws.tiny}")).json()
    assert info["draws"] == len(seqs) and info["budget_spent"] <= 150
    assert {p["id"]: p["given"] for p in info["prizes"]} == {
        "points-40": won["points-40"],
        "badge": won["badge"],
        "none": 0,
    }
    for who in people:
        mine = [
            r.json() for r in answers if r.status_code == 200 and r.json()["informant_id"] == who
        ]
        now_balance, earned = await balance(client, who)
        assert now_balance >= 0
        assert earned == before[who][1]  # prizes are not earned
        assert now_balance == before[who][0] - 5 * len(mine) + sum(d["points"] for d in mine)
        ledger = (await client.get(f"/v1/informants/{who}/ledger?limit=500")).json()["entries"]
        assert sum(e["points"] for e in ledger) == now_balance

    # Draws again, one by one: replays answer as before; new ones find nothing left.
    for n, first in enumerate(answers[:20]):
        again = await one(n)
        if first.status_code == 200:
            assert again.json() == {**first.json(), "replayed": True}
    late = await client.post(
        f"/v1/informants/{people[0]}/draws",
        json={"draw_id": f"{draws.tiny}-late", "draw": draws.tiny},
    )
    if late.status_code == 409:
        assert late.json()["code"] in {"budget_exhausted", "sold_out", "insufficient_balance"}


def verify(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "points_service.cli", "draws", "verify", *args],
        env=environ(settings, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outsider_replay(
    info: dict[str, Any], seed: bytes, results: list[dict[str, Any]]
) -> list[tuple[str, bool]]:
    """What anyone can recompute from GET /v1/draws/{draw} and its results."""
    prizes = info["prizes"]
    used: Counter[str] = Counter()
    spent = 0
    outcomes = []
    for r in sorted(results, key=lambda r: r["seq"]):
        mac = hmac.new(seed, r["draw_id"].encode(), hashlib.sha256).digest()
        pick = int.from_bytes(mac, "big") % info["total_weight"]
        running = 0
        for p in prizes:
            running += p["weight"]
            if pick < running:
                break
        fallback = p["kind"] != "none" and (
            used[p["id"]] >= p["quantity"] or p["value"] > info["budget"] - spent
        )
        if fallback:
            p = next(q for q in prizes if q["kind"] == "none")
        if p["kind"] != "none":
            used[p["id"]] += 1
            spent += p["value"]
        outcomes.append((p["id"], fallback))
    return outcomes


async def test_a_closed_window_is_verified_and_tampering_is_found(
    client: Client, draws: Draws, lottery_settings: Settings
) -> None:
    info = (await client.get(f"/v1/draws/{draws.upcoming}")).json()
    assert (info["status"], info["seed"]) == ("upcoming", None)
    assert len(info["seed_sha256"]) == 64

    people = [unique("u") for _ in range(4)]
    await fund(client, people, 10)
    before = (await client.get(f"/v1/draws/{draws.closing}")).json()
    assert (before["status"], before["seed"]) == ("open", None)
    hidden = await client.get(f"/v1/draws/{draws.closing}/results")
    assert (hidden.status_code, hidden.json()["code"]) == (409, "draw_not_closed")
    given = []
    for n in range(8):
        who = people[n % 4]
        r = await client.post(
            f"/v1/informants/{who}/draws",
            json={"draw_id": f"{draws.closing}-{n}", "draw": draws.closing},
        )
        if r.status_code == 200:
            given.append(r.json())
    assert given, "some draws were given"
    still_open = verify(lottery_settings, draws.closing)
    assert still_open.returncode == 2, still_open.stdout + still_open.stderr

    # Wait for the window to close (the draw's own clock: no timing is measured).
    await asyncio.sleep(max(0.0, (draws.closes_at - datetime.now(UTC)).total_seconds()) + 0.5)
    closed = await client.post(
        f"/v1/informants/{people[0]}/draws",
        json={"draw_id": f"{draws.closing}-late", "draw": draws.closing},
    )
    assert (closed.status_code, closed.json()["code"]) == (409, "draw_closed")
    after = (await client.get(f"/v1/draws/{draws.closing}")).json()
    assert after["status"] == "closed" and after["seed"] is not None
    seed = bytes.fromhex(after["seed"])
    assert hashlib.sha256(seed).hexdigest() == before["seed_sha256"] == after["seed_sha256"]
    assert hashlib.sha256(after["definition"].encode()).hexdigest() == after["definition_sha256"]
    results = (await client.get(f"/v1/draws/{draws.closing}/results?limit=3")).json()
    rows = results["results"]
    while results["next_cursor"]:
        results = (
            await client.get(f"/v1/draws/{draws.closing}/results?cursor={results['next_cursor']}")
        ).json()
        rows += results["results"]
    assert [(r["draw_id"], r["prize"]) for r in rows] == [
        (g["draw_id"], g["prize"]["id"]) for g in sorted(given, key=lambda g: g["seq"])
    ]
    assert outsider_replay(after, seed, rows) == [(r["prize"], r["fallback"]) for r in rows]

    done = verify(lottery_settings, draws.closing)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(given)} outcome(s) recomputed from the seed: verified" in done.stdout

    # Change one recorded outcome: verify must say so, and fail.
    victim = rows[0]
    other = next(p["id"] for p in after["prizes"] if p["id"] != victim["prize"])
    engine = create_engine(database_url(lottery_settings.database_url, lottery_settings.data_dir))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE draws SET prize = :p WHERE draw_id = :d"),
                {"p": other, "d": victim["draw_id"]},
            )
    finally:
        await engine.dispose()
    tampered = verify(lottery_settings, draws.closing)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "MISMATCH" in tampered.stdout and victim["draw_id"] in tampered.stdout


async def test_a_lost_stock_hash_is_put_back_from_the_ledger(
    client: Client, draws: Draws, lottery_settings: Settings
) -> None:
    people = [unique("u") for _ in range(3)]
    await fund(client, people, 10)
    for n, who in enumerate(people[:2]):
        r = await client.post(
            f"/v1/informants/{who}/draws",
            json={"draw_id": f"{draws.plain}-{n}", "draw": draws.plain},
        )
        assert r.status_code == 200, r.text
    before = (await client.get(f"/v1/draws/{draws.plain}")).json()
    redis = redis_client(lottery_settings)
    try:
        assert (
            await redis.delete(f"{lottery_settings.redis_prefix}:draw:{{{draws.plain}}}:stock") == 1
        )
    finally:
        await redis.aclose()
    r = await client.post(
        f"/v1/informants/{people[2]}/draws",
        json={"draw_id": f"{draws.plain}-2", "draw": draws.plain},
    )
    assert r.status_code == 200 and r.json()["seq"] == 3, r.text
    after = (await client.get(f"/v1/draws/{draws.plain}")).json()
    given = {p["id"]: p["given"] for p in before["prizes"]}
    given[r.json()["prize"]["id"]] += r.json()["prize"]["kind"] != "none"
    assert {p["id"]: p["given"] for p in after["prizes"]} == given


@pytest.mark.parametrize("lost", ["redis", "database"])
async def test_storage_away_is_a_503_with_nothing_spent(
    base_settings: Settings, draws: Draws, tmp_path: Path, request: pytest.FixtureRequest, lost: str
) -> None:
    proxy, url = request.getfixturevalue("redis_proxy" if lost == "redis" else "pg_proxy")
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "draws.toml").write_text(draws.toml())
    settings = replace(base_settings, rules_dir=rules, db_pool_size=2)
    if lost == "redis":
        settings = replace(settings, redis_url=url)
    else:
        settings = replace(settings, database_url=url)
    async with api_client(create_app(settings, CollectorRegistry()), timeout=60) as client:
        who = unique("u")
        await fund(client, [who], 10)
        attempt = {"draw_id": f"{who}-1", "draw": draws.sure}
        proxy.cut()
        refused = await client.post(f"/v1/informants/{who}/draws", json=attempt)
        assert (refused.status_code, refused.headers["retry-after"]) == (503, "1")
        proxy.restore()
        assert await balance(client, who) == (20, 20)  # nothing was spent
        done = await client.post(f"/v1/informants/{who}/draws", json=attempt)
        assert done.status_code == 200, done.text
        assert (done.json()["seq"], done.json()["balance"], done.json()["replayed"]) == (
            1,
            7,
            False,
        )
        ledger = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
        assert sum(e["points"] for e in ledger) == 7


async def test_draws_reload_with_the_rules_and_a_broken_file_keeps_them(
    client: Client, draws: Draws, lottery_settings: Settings
) -> None:
    path = lottery_settings.rules_dir / "draws.toml"
    good = path.read_text()
    path.write_text(good.replace("cost = 20", "cost = 0", 1))
    broken = await client.post("/v1/admin/rules/reload")
    assert broken.status_code == 422
    assert any(
        p.startswith(f"draws.toml: draw '{draws.plain}': field `cost`")
        for p in broken.json()["problems"]
    ), broken.json()
    assert (await client.get(f"/v1/draws/{draws.plain}")).json()["cost"] == 20  # still served

    extra = f"extra-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    path.write_text(
        good
        + draw_toml(
            extra,
            now - timedelta(hours=1),
            now + timedelta(hours=1),
            [prize("p", "points", 1, points=1, quantity=1), prize("none", "none", 1)],
        )
    )
    fixed = await client.post("/v1/admin/rules/reload")
    assert fixed.status_code == 200 and fixed.json()["problems"] == []
    assert (await client.get(f"/v1/draws/{extra}")).json()["status"] == "open"


async def _sql(settings: Settings, *statements: str) -> None:
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _refuse_draw_rows(settings: Settings, draw_id: str, refuse: bool) -> None:
    """A trigger in the real database that refuses the outcome row of one draw id: the
    draw's ledger commit fails after Redis has given its outcome."""
    name = "refuse_" + draw_id.replace("-", "_")
    if settings.database_url is None:
        await _sql(
            settings,
            f"CREATE TRIGGER {name} BEFORE INSERT ON draws WHEN NEW.draw_id = '{draw_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            if refuse
            else f"DROP TRIGGER {name}",
        )
    elif refuse:
        await _sql(
            settings,
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON draws FOR EACH ROW "
            f"WHEN (NEW.draw_id = '{draw_id}') EXECUTE FUNCTION {name}()",
        )
    else:
        await _sql(settings, f"DROP TRIGGER {name} ON draws", f"DROP FUNCTION {name}()")


async def test_a_draw_whose_commit_failed_reaches_the_ledger_without_a_retry(
    client: Client, draws: Draws, lottery_settings: Settings
) -> None:
    who = unique("u")
    await fund(client, [who], 10)  # 20 points
    draw_id = f"{who}-pending"
    await _refuse_draw_rows(lottery_settings, draw_id, True)
    try:
        failed = await client.post(
            f"/v1/informants/{who}/draws", json={"draw_id": draw_id, "draw": draws.sure}
        )
        assert failed.status_code >= 500, failed.text
    finally:
        await _refuse_draw_rows(lottery_settings, draw_id, False)
    # No retry from the client: the service writes it once the database takes it (the
    # database round of its health loop, every few seconds).
    entries: list[dict[str, Any]] = []
    for _ in range(60):
        r = await client.get(f"/v1/informants/{who}/ledger")
        entries = [e for e in r.json()["entries"] if e["ref_id"] == draw_id]
        if entries:
            break
        await asyncio.sleep(0.5)
    assert sorted((e["kind"], e["points"]) for e in entries) == [("draw", -20), ("prize", 7)]
    assert await balance(client, who) == (7, 20)
    everything = (await client.get(f"/v1/informants/{who}/ledger")).json()["entries"]
    assert sum(e["points"] for e in everything) == 7
    again = await client.post(
        f"/v1/informants/{who}/draws", json={"draw_id": draw_id, "draw": draws.sure}
    )
    assert again.status_code == 200 and again.json()["seq"] >= 1, again.text
    assert await balance(client, who) == (7, 20)  # once
