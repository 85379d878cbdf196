"""Anti-abuse end to end: events that look like machines raise flags with evidence; an
admin reverses the credits of a flag's window in one call, or clears a false alarm; a
flagged informant is left out of the nominations until cleared; a rescan never reopens
what an admin decided."""

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import ROOT, api_client, unique
from tests.http.test_events_api import Client, body

THRESHOLDS = """
scan_every_seconds = 3600  # the test scans by hand
[share_view_velocity]
seconds = 60
views = 5
[viewer_spread]
hours = 24
sharers = 3
[burst]
seconds = 10
events = 8
"""


def rules_with_thresholds(tmp: Path) -> Path:
    rules = tmp / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "abuse.toml").write_text(THRESHOLDS)
    return rules


async def flags_of(client: Client, informant: str) -> list[dict[str, Any]]:
    answer = await client.get("/v1/admin/flags", params={"informant_id": informant})
    assert answer.status_code == 200, answer.text
    flags: list[dict[str, Any]] = answer.json()["flags"]
    return flags


async def profile(client: Client, informant: str, status: str = "active") -> None:
    record = {"name": informant[:20], "province": "640000", "certified": True, "status": status}
    answer = await client.put(f"/v1/informants/{informant}", json=record)
    assert answer.status_code in (200, 201), answer.text


async def test_flags_reversal_clearing_and_nominations(settings: Settings, tmp_path: Path) -> None:
    tuned = replace(settings, rules_dir=rules_with_thresholds(tmp_path))
    async with api_client(create_app(tuned, CollectorRegistry()), timeout=60) as client:
        fast, busy, honest, banned = (unique(n) for n in ("fast", "busy", "honest", "banned"))
        spread = [unique("c") for _ in range(4)]
        for who in (fast, busy, honest, *spread):
            await profile(client, who)
        await profile(client, banned, status="banned")
        # `fast`'s share is viewed 7 times in a moment by 7 viewers (5 a minute at most).
        sent = [body(fast, "share", content_id="a1"), body(honest, "share", content_id="a1")]
        sent += [body(fast, "share_view", share_id="s-fast", viewer_id=f"v{n}") for n in range(7)]
        # `busy` sends 10 events in a second (8 in 10 s at most).
        sent += [body(busy, "browse", content_id=f"b{n}") for n in range(10)]
        # One viewer views the shares of four informants (3 at most).
        sent += [
            body(who, "share_view", share_id=f"s-{who}", viewer_id="v-spread") for who in spread
        ]
        sent += [body(banned, "login")]
        for event in sent:
            assert (await client.post("/v1/events", json=event)).status_code == 200
        before = (await client.get(f"/v1/informants/{fast}/points")).json()["balance"]
        assert before == 2 + 7

        scan = await client.post("/v1/admin/abuse/scan", json={"hours": 1})
        assert scan.status_code == 200, scan.text
        assert scan.json()["events"] >= 7 + 10  # the rows of those over a threshold
        [velocity] = await flags_of(client, fast)
        assert (velocity["kind"], velocity["subject"], velocity["status"]) == (
            "share_view_velocity",
            "s-fast",
            "open",
        )
        assert velocity["evidence"]["most_within_window"] == 7
        assert velocity["evidence"]["threshold"] == 5
        [burst] = await flags_of(client, busy)
        assert (burst["kind"], burst["evidence"]["most_within_window"]) == ("burst", 10)
        for who in spread:
            [flag] = await flags_of(client, who)
            assert (flag["kind"], flag["subject"], flag["evidence"]["sharers"]) == (
                "viewer_spread",
                "v-spread",
                4,
            )
        [seen_banned] = await flags_of(client, banned)
        assert (seen_banned["kind"], seen_banned["evidence"]["events"]) == ("banned_activity", 1)
        assert await flags_of(client, honest) == []

        # Flagged informants are left out of the nominations; the honest one is in.
        year = datetime.now(UTC).year
        nominated = await client.get("/v1/awards/top_ten/nominations", params={"year": year})
        ids = {r["informant_id"] for r in nominated.json()["nominations"]}
        assert honest in ids and fast not in ids

        # One call reverses the credits of the window's share views, and only those.
        done = await client.post(
            f"/v1/admin/flags/{velocity['flag_id']}/reversal", json={"note": "bot views"}
        )
        assert done.status_code == 200, done.text
        assert (done.json()["reversed_events"], done.json()["points"]) == (7, 7)
        assert done.json()["flag"]["status"] == "reversed"
        assert done.json()["flag"]["resolved_by"] == "test-admin"
        after = (await client.get(f"/v1/informants/{fast}/points")).json()["balance"]
        assert after == before - 7
        again = await client.post(f"/v1/admin/flags/{velocity['flag_id']}/reversal")
        assert (again.json()["reversed_events"], again.json()["already_reversed"]) == (0, 7)
        assert (await client.get(f"/v1/informants/{fast}/points")).json()["balance"] == after

        # A false alarm, cleared: nominated again, and a rescan does not raise it anew.
        cleared = await client.post(
            f"/v1/admin/flags/{burst['flag_id']}/clear", json={"note": "a fast reader"}
        )
        assert (cleared.status_code, cleared.json()["status"]) == (200, "cleared")
        assert (await client.post("/v1/admin/abuse/scan", json={"hours": 1})).status_code == 200
        assert [f["status"] for f in await flags_of(client, busy)] == ["cleared"]
        assert [f["status"] for f in await flags_of(client, fast)] == ["reversed"]
        refused = await client.post(f"/v1/admin/flags/{burst['flag_id']}/reversal")
        assert (refused.status_code, refused.json()["field"]) == (409, "flag_id")

        missing = await client.get("/v1/admin/flags/999999999")
        assert missing.status_code == 404
        bad = await client.get("/v1/admin/flags", params={"status": "maybe"})
        assert (bad.status_code, bad.json()["field"]) == (422, "status")
        metrics = (await client.get("/metrics")).text
        assert 'points_abuse_flags_total{kind="share_view_velocity"} 1.0' in metrics
