"""`points-service import` and `import-informants`, run as an operator runs them, then
read back through the API of a service on the same storage."""

import json
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from points_service.settings import Settings
from tests.conftest import AUTH, unique
from tests.http.server import ServerProcess, environ, free_port

SHANGHAI_NOON = timedelta(hours=4)  # 12:00 in Asia/Shanghai, as UTC


def cli(
    settings: Settings, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "points_service.cli", *args],
        env=environ(settings, free_port()),
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def history(who: str, start: date, days: int) -> list[dict[str, object]]:
    """A sign-in every day, and three shares of which one repeats the day's first."""
    events: list[dict[str, object]] = []
    for n in range(days):
        at = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=n)
        at += SHANGHAI_NOON
        events.append(
            {"event_id": f"{who}-s{n}", "informant_id": who, "action": "sign_in",
             "occurred_at": at.isoformat()}
        )  # fmt: skip
        for k, content in enumerate((f"c{n}a", f"c{n}b", f"c{n}a")):
            events.append(
                {"event_id": f"{who}-h{n}-{k}", "informant_id": who, "action": "share",
                 "content_id": content, "occurred_at": (at + timedelta(minutes=k + 1)).isoformat()}
            )  # fmt: skip
    return events


def test_a_year_of_history_comes_in_once_and_in_order(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    people = [unique("h") for _ in range(3)]
    profiles = tmp_path / "people.csv"
    profiles.write_text(
        "\ufeffinformant_id,name,province,city,county,certified,registered_at\n"
        + "".join(
            f"{who},信息员{n},640000,640100,640104,true,2025-01-01T09:00:00+08:00\n"
            for n, who in enumerate(people)
        )
        + "bad-one,坏,640000,640100,650104,true,\n",
        encoding="utf-8",
    )
    done = cli(settings, "import-informants", str(profiles))
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "read 4, created 3, updated 0, rejected 1"
    assert "line 5: 422 (county)" in done.stderr

    events = [e for who in people for e in history(who, date(2025, 3, 1), 35)]
    random.Random(3).shuffle(events)  # the import puts them in time order itself
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    lines.insert(10, "{not json")
    lines.insert(20, json.dumps({**events[0], "event_id": "odd", "action": "dance"}))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    done = cli(settings, "import", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == (
        f"read {len(events) + 2:,}, credited {len(events):,} "
        f"({3 * (35 * 5 + 10 + 30 + 35 * 4):,} points), duplicates 0, rejected 2"
    )
    assert "line 11: 400" in done.stderr
    assert "line 21: 422 (action)" in done.stderr
    # the boards hold every credit, the last batch's too (its writes are not dropped
    # when the import stops and closes its Redis connection)
    checked = cli(settings, "leaderboards", "reconcile")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # again, from stdin: every event is a duplicate and nothing is credited twice
    clean = "\n".join(json.dumps(e) for e in events).encode()
    done = cli(settings, "import", "-", stdin=clean)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"read {len(events):,}, credited 0 (0 points), duplicates {len(events):,}, rejected 0"
    )

    server = ServerProcess(settings, tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            for who in people:
                # 35 sign-ins (5 each) with streak bonuses at 7 and 30 days, and two
                # distinct shares a day (2 each; the repeat is a duplicate)
                points = http.get(f"/v1/informants/{who}/points").json()
                assert points["balance"] == 35 * 5 + 10 + 30 + 35 * 4, points
                assert points["streak"] == 0  # broken since: its last day was long ago
            board = http.get(
                "/v1/leaderboards/shares",
                params={"scope": "county:640104", "period": "month:2025-03", "limit": 10},
            ).json()
            assert {e["informant_id"]: e["score"] for e in board["entries"]} == dict.fromkeys(
                people, 31 * 2
            )
            assert {e.get("name") for e in board["entries"]} == {f"信息员{n}" for n in range(3)}
    finally:
        server.stop()


def test_a_command_without_its_board_files_says_so(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    """Run from elsewhere than the project (the directories are relative), a command
    names the missing directory and exits 2; no traceback."""
    missing = tmp_path / "no-boards"
    (tmp_path / "one.jsonl").write_text("")
    for args in (("import", str(tmp_path / "one.jsonl")), ("reports", "export")):
        done = cli(replace(isolated_settings, leaderboards_dir=missing), *args)
        assert done.returncode == 2, done.stderr
        assert f"error: {missing}: not a directory" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
