"""`points-service import --bulk` against the credit path's import of the same file: the
same summary, the same ledger row for row, Redis state and boards that agree with it,
and a service that answers the next live events the same way on either."""

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from points_service.adapters.sql.engine import create_engine, database_url
from points_service.adapters.sql.tables import balances, events, informant_days, ledger_entries
from points_service.domain.calendar import Calendar
from points_service.settings import Settings
from tests.conftest import AUTH, own_database, unique
from tests.http.server import ServerProcess
from tests.http.test_import import cli

PLACES = [("640100", "640104"), ("640100", "640105"), ("640200", "640202")]
CALENDAR = Calendar.named("Asia/Shanghai")
ACTIONS = ["sign_in", "login", "browse", "share", "share", "post", "like", "share_view"]


def generated(tag: str, people: list[str], days: int) -> list[dict[str, Any]]:
    """Up to a dozen events a day each over the last `days` days (today's morning too):
    repeated content, streaks and their breaks, share views of others' shares."""
    rng = random.Random(tag)
    # Today's events fall between the programme day's start and now, whatever the hour
    # (a fixed hour of the day would be still to come just after midnight).
    now = datetime.now(UTC)
    today = max(_day_start(now), now - timedelta(minutes=20))
    out: list[dict[str, Any]] = []
    for who in people:
        for back in range(days, -1, -1):
            if rng.random() < 0.2:
                continue  # a day off breaks the streak
            for k in range(rng.randint(1, 12)):
                action = rng.choice(ACTIONS)
                event: dict[str, Any] = {
                    "event_id": f"{who}-{back}-{k}",
                    "informant_id": who,
                    "action": action,
                    "occurred_at": (today - timedelta(days=back, seconds=-k)).isoformat(),
                }
                if action in ("browse", "share", "post", "like"):
                    event["content_id"] = f"c{rng.randint(1, 15)}"
                if action == "share_view":
                    event["share_id"] = f"sh{rng.randint(1, 5)}"
                    event["viewer_id"] = rng.choice([*people, "outsider"])
                out.append(event)
    return out


async def rows(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """What the ledger holds, without what only says when it was written."""
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    e, le, b, d = events.c, ledger_entries.c, balances.c, informant_days.c
    queries = {
        "events": select(
            e.event_id, e.informant_id, e.action, e.day, e.points, e.shares,
            e.share_views, e.posts, e.late, e.imported, e.rule_version, e.decision,
            e.province, e.city, e.county, e.institution_id, e.body_hash,
        ).order_by(e.event_id),
        "entries": select(
            le.informant_id, le.kind, le.ref_id, le.points, le.day, le.detail
        ).order_by(le.kind, le.ref_id),
        "balances": select(b.informant_id, b.balance, b.earned, b.spent).order_by(
            b.informant_id
        ),
        "days": select(informant_days).order_by(d.informant_id, d.day, d.county),
    }  # fmt: skip
    try:
        async with engine.connect() as conn:
            return {k: [tuple(r) for r in await conn.execute(q)] for k, q in queries.items()}
    finally:
        await engine.dispose()


def answers(settings: Settings, log: Path, sent: list[dict[str, Any]]) -> list[Any]:
    server = ServerProcess(settings, log)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            out = []
            for event in sent:
                got = http.post("/v1/events", json=event)
                assert got.status_code in (200, 201), got.text
                body = got.json()
                out.append((body["points"], body["balance"], body["lines"], body["streak"]))
            for who in {e["informant_id"] for e in sent}:
                points = http.get(f"/v1/informants/{who}/points").json()
                points.pop("as_of", None)
                out.append(points)
            return out
    finally:
        server.stop()


async def test_bulk_import_records_what_the_credit_path_records(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    a = isolated_settings
    async with own_database(
        replace(a, data_dir=tmp_path / "b", redis_prefix=f"{a.redis_prefix}-b")
    ) as b:
        b.data_dir.mkdir()
        tag = unique("bk")
        people = [f"{tag}-{n}" for n in range(12)]
        profiles = tmp_path / "people.csv"
        profiles.write_text(
            "informant_id,name,province,city,county,institution_id,certified,status\n"
            + "".join(
                f"{who},n{n},640000,{PLACES[n % 3][0]},{PLACES[n % 3][1]},{tag}-i{n % 2},"
                f"true,{'hidden' if n == 5 else 'active'}\n"
                for n, who in enumerate(people[:-1])  # the last one has no profile
            )
        )
        history = generated(tag, people, 40)
        # One informant the ledger knows already: part of their history came in before.
        early = [e for e in history if e["informant_id"] == people[0]][:20]
        (tmp_path / "early.jsonl").write_text("\n".join(json.dumps(e) for e in early) + "\n")
        # An event id the ledger holds for another informant, one an informant uses twice
        # for different events (the later refused), a line twice (a duplicate), and two
        # lines that are not events at all.
        theirs = [e for e in history if e["informant_id"] == people[4]]
        # (Before their later events: both paths look the ids up first, so the refused
        # event never weighs on the caps or dedup of the ones after it.)
        alone = datetime.fromisoformat(theirs[5]["occurred_at"]) + timedelta(milliseconds=500)
        history.append({"event_id": early[5]["event_id"], "informant_id": people[4],
                        "action": "browse", "content_id": "c1",
                        "occurred_at": alone.isoformat()})  # fmt: skip
        later = datetime.fromisoformat(theirs[9]["occurred_at"]) + timedelta(milliseconds=500)
        history.append({**theirs[9], "event_id": theirs[3]["event_id"],
                        "occurred_at": later.isoformat()})  # fmt: skip
        history.append(dict(theirs[7]))
        random.Random(1).shuffle(history)
        lines = [json.dumps(e) for e in history]
        lines[50:50] = ["{not json", json.dumps({**history[0], "action": "dance"})]
        lines[60:60] = [json.dumps({**history[1], "event_id": "bare", "action": "share",
                                    "content_id": None})]  # fmt: skip
        lines[70:70] = [json.dumps({**history[2], "event_id": "dry", "dry_run": True})]
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join(lines) + "\n")

        summaries = []
        for settings, flags in ((a, []), (b, ["--bulk"])):
            assert cli(settings, "import-informants", str(profiles)).returncode == 0
            assert cli(settings, "import", str(tmp_path / "early.jsonl")).returncode == 0
            done = cli(settings, "import", str(path), *flags)
            assert done.returncode == 1, done.stderr  # the refused lines
            summaries.append(done.stdout.strip())
            assert "line 51: 400" in done.stderr
            assert "line 52: 422 (action)" in done.stderr
            assert "line 61: 422 (content_id)" in done.stderr  # a share needs its content
            assert done.stderr.count("409 (event_id)") == 2, done.stderr
        assert summaries[1].startswith(summaries[0] + ";"), summaries
        assert "duplicates 21," in summaries[0]  # the early twenty and the repeated line
        assert summaries[0].endswith(", dry runs 1 (judged, not recorded)"), summaries
        assert summaries[1].endswith(
            "informants known already (through the credit path) 1, "
            "states put back from the ledger 0"
        )

        credit_path, bulk = await rows(a), await rows(b)
        for table in credit_path:
            assert bulk[table] == credit_path[table], table
        assert len(bulk["events"]) == len(history) - 3  # the duplicate, the reused ids

        # Redis agrees with the ledger: states, and every board still kept.
        for args in (("state", "reconcile"), ("leaderboards", "reconcile")):
            checked = cli(b, *args)
            assert checked.returncode == 0, checked.stdout + checked.stderr

        # The next events are judged the same on either: today's counters and dedup
        # members, streaks, balances came over.
        today = [e for e in history if e["occurred_at"] >= _today()]
        assert today, "the history reaches into today"
        sent = [
            {**e, "event_id": f"again-{n}", "occurred_at": _now()}
            for n, e in enumerate(today[:30])
        ] + [
            {"event_id": f"new-{who}", "informant_id": who, "action": "sign_in",
             "occurred_at": _now()}
            for who in people
        ]  # fmt: skip
        assert answers(a, tmp_path / "a.log", sent) == answers(b, tmp_path / "b.log", sent)


def _day_start(moment: datetime) -> datetime:
    """The start of the programme day (Asia/Shanghai) holding `moment`, in UTC."""
    return CALENDAR.day_start(CALENDAR.day_of(moment)).astimezone(UTC)


def _today() -> str:
    return _day_start(datetime.now(UTC)).isoformat()


def _now() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
