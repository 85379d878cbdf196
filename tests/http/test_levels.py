"""Experience levels through the API, on SQLite, PostgreSQL and a Redis Cluster: the level
and the progress to the next in the credit answer, the points answer and the profile; a
level reached is reported by the event that reached it (and by its replays) and is a
`level` ledger entry, once; spending never lowers a level, reversals and a Redis loss
recompute it from the ledger."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from points_service.settings import Settings
from tests.conftest import event_now as event
from tests.conftest import redis_client, unique, with_rule_files
from tests.http.test_import import cli

Client = AsyncTestClient  # type: ignore[type-arg]

LEVELS = """
[[levels]]
level = 1
at = 0
title = "Newcomer"
title_zh = "科普新人"

[[levels]]
level = 2
at = 10
title = "Apprentice"
title_zh = "科普学徒"

[[levels]]
level = 3
at = 20
title = "Pioneer"
title_zh = "科普先锋"

[[levels]]
level = 4
at = 1000
title = "Ambassador"
title_zh = "科普大使"
"""


@pytest.fixture
def settings(settings_with_cluster: Settings, tmp_path: Path) -> Settings:
    """The shipped rules with small levels (10 and 20 experience), on every backend."""
    return with_rule_files(settings_with_cluster, tmp_path, levels=LEVELS)


async def post(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/events", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def level_entries(client: Client, who: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/informants/{who}/ledger", params={"limit": 200})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["kind"] == "level"]


async def test_levels_are_reached_reported_once_in_the_ledger_and_recomputed(
    client: Client, settings: Settings
) -> None:
    who = unique("lv")
    first = await post(client, event(who, "sign_in"))
    assert first["points"] == 5
    assert first["level"] == {
        "level": 1,
        "title": "Newcomer",
        "title_zh": "科普新人",
        "experience": 5,
        "next_level": {"level": 2, "title": "Apprentice", "title_zh": "科普学徒", "at": 10},
        "to_next": 5,
        "progress": 0.5,
    }
    assert first["levels_reached"] == []

    browses = [event(who, "browse", content_id=f"c{n}") for n in range(5)]
    answers = [await post(client, b) for b in browses]
    assert [a["levels_reached"] for a in answers[:4]] == [[]] * 4
    assert answers[4]["levels_reached"] == [
        {"level": 2, "title": "Apprentice", "title_zh": "科普学徒", "at": 10}
    ]
    assert answers[4]["level"]["level"] == 2 and answers[4]["level"]["to_next"] == 10
    replay = await post(client, browses[4])  # the first answer, again
    assert replay == {**answers[4], "replayed": True}

    # a batch of ten shares (+20): the one that crosses 20 reports level 3
    shares = [event(who, "share", content_id=f"s{n}") for n in range(10)]
    r = await client.post("/v1/events/batch", json={"events": shares})
    assert r.status_code == 200, r.text
    results = [item["result"] for item in r.json()["results"]]
    reached = [(n, x["levels_reached"]) for n, x in enumerate(results) if x["levels_reached"]]
    assert reached == [(4, [{"level": 3, "title": "Pioneer", "title_zh": "科普先锋", "at": 20}])]
    assert results[-1]["level"]["experience"] == 30

    entries = await level_entries(client, who)
    assert sorted((e["ref_id"], e["points"], e["detail"]) for e in entries) == [
        (f"{who}:2", 0, "科普学徒"),
        (f"{who}:3", 0, "科普先锋"),
    ]

    # spending does not lower the level; the points answer and the profile carry it
    r = await client.post(
        f"/v1/informants/{who}/redemptions",
        json={"redemption_id": unique("r"), "points": 25, "item": "mug"},
    )
    assert r.status_code == 200, r.text
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["balance"], points["earned"], points["level"]["level"]) == (5, 30, 3)
    r = await client.put(f"/v1/informants/{who}", json={"name": "王芳", "province": "640000"})
    assert r.status_code in (200, 201), r.text
    profile = (await client.get(f"/v1/informants/{who}")).json()
    assert profile["level"]["level"] == 3 and profile["level"]["title_zh"] == "科普先锋"

    # reversals take their experience back: below 20, level 2 again
    for share in shares[:6]:
        r = await client.post(f"/v1/events/{share['event_id']}/reversal", json={"reason": "t"})
        assert r.status_code == 200, r.text
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["earned"], points["level"]["level"], points["level"]["to_next"]) == (18, 2, 2)

    # reaching level 3 again is reported again, but the ledger keeps the first time only
    again = await post(client, event(who, "post", content_id="p1"))
    assert [x["level"] for x in again["levels_reached"]] == [3]
    assert len(await level_entries(client, who)) == 2

    # Redis loses everything: the level comes back from the ledger with the state
    redis = redis_client(settings)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*", count=500)]
        for key in keys:
            await redis.delete(key)
    finally:
        await redis.aclose()
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    assert (points["earned"], points["level"]["level"]) == (21, 3)


async def test_concurrent_events_report_a_level_exactly_once(client: Client) -> None:
    who = unique("lc")
    await post(client, event(who, "sign_in"))  # 5
    bodies = [event(who, "browse", content_id=f"c{n}") for n in range(10)]  # +10: 15
    answers = await asyncio.gather(*(post(client, b) for b in bodies))
    reached = [a["levels_reached"] for a in answers if a["levels_reached"]]
    assert reached == [[{"level": 2, "title": "Apprentice", "title_zh": "科普学徒", "at": 10}]]
    assert [e["ref_id"] for e in await level_entries(client, who)] == [f"{who}:2"]


async def test_dry_runs_report_without_recording(client: Client) -> None:
    who = unique("ld")
    dry = await post(client, {**event(who, "sign_in"), "dry_run": True})
    assert dry["dry_run"] and dry["level"]["experience"] == 5
    assert await level_entries(client, who) == []


def test_rules_check_validates_the_levels_file(settings: Settings) -> None:
    ok = cli(settings, "rules", "check", str(settings.rules_dir))
    assert ok.returncode == 0 and "4 levels" in ok.stdout, ok.stdout + ok.stderr
    (settings.rules_dir / "levels.toml").write_text(
        LEVELS.replace("at = 20", "at = 5").replace("level = 4", "level = 5"), encoding="utf-8"
    )
    bad = cli(settings, "rules", "check", str(settings.rules_dir))
    assert bad.returncode == 1
    assert "levels.toml: level '3': field `at`: must be above the previous level's 10" in bad.stderr
    assert "levels.toml: level '5': field `level`: levels are numbered 1, 2, 3" in bad.stderr
