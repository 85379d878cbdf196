"""Redis loses its data (FLUSHALL, or the embedded Redis's files deleted): the service puts
every informant's state back from the ledger as it is used, rebuilds the boards by
itself, and answers exactly what it answered before: balances, streaks, today's caps,
for-ever dedup, the boards, hidden informants still hidden."""

import json
import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis import Redis

from points_service.adapters.embedded_redis import EmbeddedRedis
from points_service.adapters.redis_limits import SYNC_SECONDS
from points_service.domain.calendar import Calendar
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import AUTH, api_client, redis_client, unique
from tests.http.server import ServerProcess
from tests.http.test_import import cli

SHANGHAI = Calendar.named("Asia/Shanghai")
BOARDS = [
    ("points", "all", "all"),
    ("points", "county:640104", "day"),
    ("points", "county:640105", "week"),
    ("shares", "province:640000", "all"),
    ("share_views", "all", "all"),
]


def _noon(days_ago: int) -> datetime:
    """12:00 in Asia/Shanghai, `days_ago` programme days before today."""
    today = SHANGHAI.day_number(datetime.now(UTC))
    return datetime.fromordinal(today - days_ago).replace(tzinfo=UTC) + timedelta(hours=4)


def _history(people: list[str]) -> list[dict[str, Any]]:
    """Nine days before today: a sign-in every day (the 7-day bonus), two shares a day;
    the first informant's share viewed by five people eight days ago."""
    events: list[dict[str, Any]] = []
    for who in people:
        for ago in range(9, 0, -1):
            at = _noon(ago)
            events.append(
                {"event_id": f"{who}-sign-{ago}", "informant_id": who, "action": "sign_in",
                 "occurred_at": at.isoformat()}
            )  # fmt: skip
            for k in range(2):
                events.append(
                    {"event_id": f"{who}-share-{ago}-{k}", "informant_id": who,
                     "action": "share", "content_id": f"c{ago}-{k}",
                     "occurred_at": (at + timedelta(minutes=k + 1)).isoformat()}
                )  # fmt: skip
    for n in range(5):
        events.append(
            {"event_id": f"{people[0]}-view-{n}", "informant_id": people[0],
             "action": "share_view", "share_id": "s1", "viewer_id": f"v{n}",
             "occurred_at": (_noon(8) + timedelta(minutes=30 + n)).isoformat()}
        )  # fmt: skip
    return events


def _now_event(event_id: str, who: str, action: str, **fields: str) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(seconds=5)
    return {
        "event_id": event_id,
        "informant_id": who,
        "action": action,
        "occurred_at": at.isoformat(),
        **fields,
    }


def _picture(http: httpx.Client, people: list[str]) -> dict[str, Any]:
    """Everything an app or a member of staff can read of these informants."""
    seen: dict[str, Any] = {}
    for who in people:
        seen[f"points {who}"] = http.get(f"/v1/informants/{who}/points").json()
        seen[f"ledger {who}"] = http.get(f"/v1/informants/{who}/ledger").json()
    for metric, scope, period in BOARDS:
        answer = http.get(
            f"/v1/leaderboards/{metric}", params={"scope": scope, "period": period, "limit": 50}
        ).json()
        seen[f"board {metric} {scope} {period}"] = [
            (e["informant_id"], e["rank"], e["score"], e.get("name"))
            for e in answer["entries"]
            if e["informant_id"] in people
        ]
    return seen


def _wait_for_log(log: Path, text: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count(text) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear {count} time(s) in the log")


def _restored(http: httpx.Client, kind: str = "history") -> float:
    metrics = http.get("/metrics").text
    found = re.search(rf'^points_state_restored_total\{{kind="{kind}"\}} (\S+)$', metrics, re.M)
    assert found, "points_state_restored_total is exported"
    return float(found.group(1))


@pytest.mark.parametrize("loss", ["flushall", "files_deleted"])
def test_a_redis_that_lost_its_data_is_rebuilt_from_the_ledger(
    base_settings: Settings, tmp_path: Path, loss: str
) -> None:
    # The embedded defaults: an SQLite ledger and the embedded Redis in the data dir.
    settings = replace(base_settings, redis_url=None, rebuild_on_redis_loss=True)
    a, b, _, hidden = people = [unique("r") for _ in range(4)]
    profiles = tmp_path / "people.jsonl"
    profiles.write_text(
        "".join(
            json.dumps(
                {
                    "informant_id": who,
                    "name": f"信息员{n}",
                    "province": "640000",
                    "city": "640100",
                    "county": "640104" if n % 2 == 0 else "640105",
                    "certified": True,
                    "status": "hidden" if who == hidden else "active",
                },
                ensure_ascii=False,
            )
            + "\n"
            for n, who in enumerate(people)
        )
    )
    done = cli(settings, "import-informants", str(profiles))
    assert done.returncode == 0, done.stderr
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(e) + "\n" for e in _history(people)))
    done = cli(settings, "import", str(history))
    assert done.returncode == 0, done.stderr

    log = tmp_path / "server.log"
    server = ServerProcess(settings, log)
    server.start()
    try:
        # The first start finds no marker in Redis and rebuilds the boards once.
        _wait_for_log(log, "redis_marker_missing_rebuilt", 1)
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            today = [
                _now_event(f"{a}-sign-0", a, "sign_in"),
                _now_event(f"{b}-sign-0", b, "sign_in"),
                _now_event(f"{hidden}-share-0", hidden, "share", content_id="t1"),
                *(
                    _now_event(f"{a}-browse-{n}", a, "browse", content_id=f"b{n}")
                    for n in range(12)
                ),
            ]
            answered = http.post("/v1/events/batch", json={"events": today}).json()
            assert answered["accepted"] == len(today), answered
            spent = http.post(
                f"/v1/informants/{a}/redemptions",
                json={"redemption_id": f"{a}-r1", "points": 7, "item": "book"},
            )
            assert spent.status_code == 200, spent.text
            clawed = http.post(f"/v1/events/{b}-share-2-0/reversal", json={"reason": "test"})
            assert clawed.status_code == 200, clawed.text
            before = _picture(http, people)
            points_a = before[f"points {a}"]
            assert points_a["today"]["browse"] == {"count": 12, "points": 10}
            assert points_a["streak"] == 10
            assert before["board points all all"], "the listed informants are on the board"
            for key, rows in before.items():
                if key.startswith("board"):
                    assert hidden not in {row[0] for row in rows}, key

            # The loss.
            if loss == "flushall":
                # The rate limiter adds each key's requests to Redis up to SYNC_SECONDS
                # after them: let the last of those land first, or it can land between
                # the flush and the count below (seen in 2 runs of ~100).
                time.sleep(SYNC_SECONDS * 4)
                redis = Redis(unix_socket_path=str(EmbeddedRedis(settings.data_dir).socket))
                assert redis.flushall()
                assert redis.dbsize() == 0
                redis.close()
            else:
                server.stop()
                shutil.rmtree(settings.data_dir / "redis")
                server.start()

            # Balances, streaks and today's counters, put back as they are read.
            for who in people:
                assert http.get(f"/v1/informants/{who}/points").json() == before[f"points {who}"]
            assert _restored(http) >= 3  # a, b, hidden (c too, if read before the boards)
            # The boards and the profiles' copy, rebuilt by the service itself.
            _wait_for_log(log, "redis_marker_missing_rebuilt", 2)
            assert _picture(http, people) == before

            # The rules still see the whole past: caps, daily and for-ever dedup, replays.
            again = [
                _now_event(f"{a}-browse-12", a, "browse", content_id="b12"),
                _now_event(f"{a}-sign-0b", a, "sign_in"),
                _now_event(f"{a}-view-9", a, "share_view", share_id="s1", viewer_id="v3"),
                _now_event(f"{a}-view-10", a, "share_view", share_id="s1", viewer_id="v9"),
                today[0],  # a retry of this morning's sign-in
            ]
            answered = http.post("/v1/events/batch", json={"events": again}).json()
            assert answered["accepted"] == len(again), answered
            items = answered["results"]
            reasons = [(i["result"]["points"], i["result"]["lines"][0]["reason"]) for i in items]
            assert reasons == [
                (0, "daily_cap"),
                (0, "duplicate"),
                (0, "duplicate"),
                (1, "credited"),
                (5, "credited"),
            ]
            assert items[-1]["result"]["replayed"] is True
            after = http.get(f"/v1/informants/{a}/points").json()
            assert after["balance"] == points_a["balance"] + 1
            # A reversal repeated after the loss claws back nothing more.
            # Once the marker is back, every known informant has its state again, so a
            # new informant's first event needs no look in the ledger.
            new_before = _restored(http, "new")
            newcomer = unique("n")
            first = http.post("/v1/events", json=_now_event(f"{newcomer}-1", newcomer, "login"))
            assert first.json()["points"] == 1, first.text
            assert _restored(http, "new") == new_before
            clawed_again = http.post(f"/v1/events/{b}-share-2-0/reversal", json={})
            assert clawed_again.json()["replayed"] is True
            points_b = http.get(f"/v1/informants/{b}/points").json()
            assert points_b["balance"] == before[f"points {b}"]["balance"]

        # The operator's checks agree: Redis equals the ledger.
        state = cli(settings, "state", "reconcile")
        assert (state.returncode, state.stderr.strip()) == (0, "no differences"), state.stderr
        boards = cli(settings, "leaderboards", "reconcile")
        assert boards.returncode == 0, boards.stdout + boards.stderr
    finally:
        server.stop()


async def _forget(settings: Settings, people: list[str]) -> None:
    """These informants' keys gone, as after a flush (each informant's keys: one slot)."""
    redis = redis_client(settings)
    try:
        for who in people:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:{{{who}}}:*")]
            assert keys
            await redis.unlink(*keys)
    finally:
        await redis.aclose()


async def test_state_rebuild_and_reconcile_on_every_store(
    isolated_settings_with_cluster: Settings,
) -> None:
    """The operator's commands, on SQLite, PostgreSQL and a Redis Cluster: `state
    reconcile` finds what differs, `state rebuild` puts back what is missing, and
    `--force` overwrites what is wrong."""
    settings = isolated_settings_with_cluster
    people = [unique("q") for _ in range(3)]
    app = create_app(settings, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        events = [
            _now_event(f"{who}-{action}-{n}", who, action, content_id=f"c{n}")
            for who in people
            for n, action in enumerate(["share", "share", "browse", "post", "like"])
        ] + [_now_event(f"{people[0]}-sign", people[0], "sign_in")]
        answered = (await client.post("/v1/events/batch", json={"events": events})).json()
        assert answered["accepted"] == len(events), answered
        spent = await client.post(
            f"/v1/informants/{people[1]}/redemptions",
            json={"redemption_id": f"{people[1]}-r", "points": 3, "item": "pen"},
        )
        assert spent.status_code == 200, spent.text
        before = [(await client.get(f"/v1/informants/{w}/points")).json() for w in people]
        assert [p["balance"] for p in before] == [2 + 2 + 1 + 3 + 1 + 5, 9 - 3, 9]
        checked = cli(settings, "state", "reconcile")
        assert (checked.returncode, checked.stderr.strip()) == (0, "no differences")

        await _forget(settings, people)
        checked = cli(settings, "state", "reconcile")
        # Missing states are put back when used: reported, not a failure.
        assert checked.returncode == 0, checked.stderr
        assert "3 informant(s) differ (3 with no state in Redis)" in checked.stderr
        assert sorted(line.split(":")[0] for line in checked.stdout.splitlines()) == sorted(people)
        rebuilt = cli(settings, "state", "rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "3 written from the ledger, 0 already in Redis" in rebuilt.stderr
        checked = cli(settings, "state", "reconcile")
        assert (checked.returncode, checked.stderr.strip()) == (0, "no differences")
        assert [(await client.get(f"/v1/informants/{w}/points")).json() for w in people] == before

        # A state that is wrong, not missing: only `--force` overwrites it.
        redis = redis_client(settings)
        await redis.hset(f"{settings.redis_prefix}:{{{people[2]}}}:s", "b", 999)
        await redis.aclose()
        checked = cli(settings, "state", "reconcile")
        assert checked.returncode == 1
        assert checked.stdout.startswith(f"{people[2]}: redis balance 999, earned 9,")
        rebuilt = cli(settings, "state", "rebuild")
        assert "0 written from the ledger, 3 already in Redis" in rebuilt.stderr
        rebuilt = cli(settings, "state", "rebuild", "--force")
        assert "3 written from the ledger, 0 already in Redis" in rebuilt.stderr
        checked = cli(settings, "state", "reconcile")
        assert (checked.returncode, checked.stderr.strip()) == (0, "no differences")
        assert [(await client.get(f"/v1/informants/{w}/points")).json() for w in people] == before
