"""How to earn, through the API on SQLite, PostgreSQL and a Redis Cluster: the catalogue
of the live rules (GET /v1/rules) and an informant's day against it (GET .../today),
each figure checked against the events this test sent and the rule files it wrote."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from points_service.settings import Settings
from tests.conftest import event_now as event
from tests.conftest import unique, with_rule_files
from tests.http.test_import import cli

Client = AsyncTestClient  # type: ignore[type-arg]
NOW = datetime.now(UTC)


def _at(delta: timedelta) -> str:
    return (NOW + delta).replace(microsecond=0).isoformat()


# Campaigns beside the shipped rules: one running (a count-capped quiz), one still to
# come, one over; a featured list running and one over.
CAMPAIGNS = f"""
[[rules]]
id = "quiz-week"
action = "like"
title = "Science quiz week: likes pay extra"
title_zh = "科普知识周 点赞加分"
points = 2
daily_count_cap = 3
distinct = {{ by = ["content_id"], within = "day" }}
starts = {_at(-timedelta(days=1))}
ends = {_at(timedelta(days=6))}

[[rules]]
id = "spring-posts"
action = "post"
title = "Spring posts"
title_zh = "春季发帖"
points = 4
starts = {_at(timedelta(days=30))}
ends = {_at(timedelta(days=60))}

[[rules]]
id = "old-campaign"
action = "browse"
title = "Over"
title_zh = "已结束"
points = 9
starts = {_at(-timedelta(days=60))}
ends = {_at(-timedelta(days=30))}

[[featured]]
name = "space-week"
title = "Space week"
title_zh = "航天周"
actions = ["share"]
factor = 3
content_ids = ["space-1", "space-2"]
starts = {_at(-timedelta(hours=2))}
ends = {_at(timedelta(days=2))}

[[featured]]
name = "last-year"
actions = ["share"]
factor = 2
content_ids = ["old-1"]
starts = {_at(-timedelta(days=400))}
ends = {_at(-timedelta(days=300))}
"""


# The shipped example draw has a fixed window: the test's own draws, one open, one to
# come, one over.
DRAWS = "".join(
    f"""
[[draws]]
id = "{name}"
title = "{name.title()} draw"
title_zh = "抽奖{n}"
cost = 10
daily_limit = 2
budget = 100
starts = {_at(start)}
ends = {_at(start + timedelta(days=3))}

[[draws.prizes]]
id = "p5"
kind = "points"
points = 5
quantity = 5
weight = 1

[[draws.prizes]]
id = "none"
kind = "none"
weight = 3
"""
    for n, (name, start) in enumerate(
        [("open", -timedelta(days=1)), ("later", timedelta(days=5)), ("over", -timedelta(days=9))]
    )
)


@pytest.fixture
def settings(settings_with_cluster: Settings, tmp_path: Path) -> Settings:
    return with_rule_files(settings_with_cluster, tmp_path, campaigns=CAMPAIGNS, draws=DRAWS)


async def send(client: Client, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post("/v1/events/batch", json={"events": list(events)})
    assert r.status_code == 200, r.text
    items = r.json()["results"]
    assert all(i["status"] == 200 for i in items), items
    return [i["result"] for i in items]


async def test_the_catalogue_shows_the_live_rules_with_their_labels(client: Client) -> None:
    r = await client.get("/v1/rules")
    assert r.status_code == 200, r.text
    got = r.json()
    live = (await client.get("/v1/admin/rules")).json()
    assert got["version"] == live["version"] and got["timezone"] == "Asia/Shanghai"
    rules = {x["id"]: x for x in got["rules"]}
    # the shipped seven, the running campaign and the one to come; not the one over
    assert set(rules) == {
        "login", "sign_in", "browse", "share", "share_view", "post", "like",
        "quiz-week", "spring-posts",
    }  # fmt: skip
    assert rules["sign_in"]["title_zh"] == "签到" and rules["sign_in"]["once_per_day"]
    assert rules["sign_in"]["streak_milestones"] == [
        {"days": 7, "bonus": 10},
        {"days": 30, "bonus": 30},
        {"days": 100, "bonus": 100},
        {"days": 365, "bonus": 365},
    ]
    assert rules["sign_in"]["today_only"] and not rules["sign_in"]["campaign"]
    share = rules["share"]
    assert (share["points"], share["daily_points_cap"], share["distinct_by"]) == (
        2,
        20,
        ["content_id"],
    )
    assert share["counts"] == ["shares"] and share["title"] == "Share content"
    assert rules["share_view"]["excludes_self"]
    assert rules["share_view"]["distinct_within"] == "ever"
    assert (rules["quiz-week"]["campaign"], rules["quiz-week"]["active"]) == (True, True)
    assert (rules["spring-posts"]["campaign"], rules["spring-posts"]["active"]) == (True, False)
    featured = {f["name"]: f for f in got["featured"]}
    assert set(featured) == {"example-featured", "space-week"}
    assert featured["space-week"]["title_zh"] == "航天周" and featured["space-week"]["active"]
    assert featured["space-week"]["content_ids"] == ["space-1", "space-2"]
    assert [x["level"] for x in got["levels"]] == list(range(1, len(got["levels"]) + 1))
    assert [(d["id"], d["status"], d["cost"]) for d in got["draws"]] == [
        ("open", "open", 10),
        ("later", "upcoming", 10),
    ]  # not the one over

    tag = r.headers["etag"]
    assert got["version"] in tag
    again = await client.get("/v1/rules", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    other = await client.get("/v1/rules", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


async def test_today_counts_what_was_earned_and_what_is_left(client: Client) -> None:
    who = unique("t")
    empty = await client.get(f"/v1/informants/{who}/today")
    assert empty.status_code == 200, empty.text
    blank = empty.json()
    assert blank["balance"] == 0 and blank["streak"] == {
        "days": 0,
        "done_today": False,
        "next_milestone": {"rule": "sign_in", "days": 7, "bonus": 10, "days_left": 7},
    }
    actions = {a["action"]: a for a in blank["actions"]}
    assert actions["browse"]["points_left"] == 10 and actions["sign_in"]["points_left"] == 5
    assert actions["like"]["points_left"] is None  # quiz-week has a count limit, no cap

    await send(
        client,
        event(who, "sign_in"),
        *(event(who, "browse", content_id=f"b{n}") for n in range(4)),
        event(who, "browse", content_id="b0"),  # a duplicate: counts nothing
        event(who, "share", content_id="space-1"),  # featured x3: 6
        *(event(who, "share", content_id=f"s{n}") for n in range(7)),  # 14: 20, capped
        *(event(who, "like", content_id=f"l{n}") for n in range(4)),
    )
    today = (await client.get(f"/v1/informants/{who}/today")).json()
    actions = {a["action"]: a for a in today["actions"]}
    assert actions["sign_in"] == {
        "action": "sign_in",
        "count": 1,
        "points": 5,
        "points_left": 0,
        "rules": [
            {
                "rule": "sign_in", "title": "Daily check-in", "title_zh": "签到", "count": 1,
                "points": 5, "daily_points_cap": None, "points_left": 0,
                "daily_count_cap": None, "count_left": 0,
            }
        ],
    }  # fmt: skip
    assert (actions["browse"]["count"], actions["browse"]["points"]) == (5, 4)
    assert actions["browse"]["rules"][0]["count"] == 4  # the duplicate is not counted
    assert actions["browse"]["points_left"] == 6
    assert (actions["share"]["points"], actions["share"]["points_left"]) == (20, 0)
    like = {r["rule"]: r for r in actions["like"]["rules"]}
    assert (like["like"]["points"], like["like"]["points_left"]) == (4, 1)
    assert (like["quiz-week"]["count"], like["quiz-week"]["count_left"]) == (4, 0)  # 4th: 0
    assert (like["quiz-week"]["points"], like["quiz-week"]["points_left"]) == (6, 0)
    assert "post" in actions and actions["post"]["points"] == 0
    assert today["balance"] == 5 + 4 + 20 + 4 + 6
    assert today["streak"] == {
        "days": 1,
        "done_today": True,
        "next_milestone": {"rule": "sign_in", "days": 7, "bonus": 10, "days_left": 6},
    }
    assert [r["id"] for r in today["campaigns"]["rules"]] == ["quiz-week"]
    assert sorted(f["name"] for f in today["campaigns"]["featured"]) == [
        "example-featured",
        "space-week",
    ]
    assert today["level"]["experience"] == today["balance"]

    # the figures agree with the points answer
    points = (await client.get(f"/v1/informants/{who}/points")).json()
    for action, figures in points["today"].items():
        if action in actions:
            assert (figures["count"], figures["points"]) == (
                actions[action]["count"],
                actions[action]["points"],
            )


async def test_a_streak_counts_towards_its_next_milestone(
    client: Client, settings: Settings
) -> None:
    """Six days of sign-ins come in as history (the import); today's makes seven."""
    who = unique("st")
    lines = [
        json.dumps(event(who, "sign_in", occurred_at=(NOW - timedelta(days=d)).isoformat()))
        for d in range(6, 0, -1)
    ]
    done = cli(settings, "import", "-", stdin="\n".join(lines).encode())
    assert done.returncode == 0, done.stdout + done.stderr
    today = (await client.get(f"/v1/informants/{who}/today")).json()
    assert today["streak"] == {
        "days": 6,
        "done_today": False,
        "next_milestone": {"rule": "sign_in", "days": 7, "bonus": 10, "days_left": 1},
    }
    [answer] = await send(client, event(who, "sign_in"))
    assert answer["points"] == 5 + 10
    today = (await client.get(f"/v1/informants/{who}/today")).json()
    assert today["streak"] == {
        "days": 7,
        "done_today": True,
        "next_milestone": {"rule": "sign_in", "days": 30, "bonus": 30, "days_left": 23},
    }
