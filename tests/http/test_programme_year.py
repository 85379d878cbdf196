"""A generated programme year: a couple of hundred informants across counties and
institutions, imported through the CLI, then nominations, a monthly report and a member
table checked against figures computed here from the event list itself."""

import asyncio
import json
import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client, unique
from tests.http.test_import import cli

COUNTIES = [("640100", "640104"), ("640100", "640105"), ("640200", "640202")]
YEAR = [date(2025, 1, 1) + timedelta(days=n) for n in range(365)]


def test_a_generated_year(isolated_settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(2025)
    tag = unique("y")
    people = []
    for n in range(200):
        city, county = COUNTIES[n % 3]
        people.append(
            {
                "id": f"{tag}-{n:03d}",
                "city": city,
                "county": county,
                "institution": f"{tag}-i{n % 6}",
                "certified": n % 10 != 0,  # every tenth is not real-name certified
                "registered": date(2024, 1, 1) + timedelta(days=rng.randrange(500)),
                "share_days": sorted(rng.sample(YEAR, rng.randint(20, 360))),
                "post_days": sorted(rng.sample(YEAR, rng.randint(0, 30))),
            }
        )
    rows = ["informant_id,name,province,city,county,institution_id,certified,registered_at"]
    rows += [
        f"{p['id']},n{p['id'][-3:]},640000,{p['city']},{p['county']},{p['institution']},"
        f"{str(p['certified']).lower()},{p['registered']}T09:00:00+08:00"
        for p in people
    ]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    assert cli(isolated_settings, "import-informants", str(tmp_path / "people.csv")).returncode == 0
    events = []
    for p in people:
        for d in p["share_days"]:
            events.append({"event_id": f"{p['id']}-s{d}", "informant_id": p["id"],
                           "action": "share", "content_id": f"c{d}",
                           "occurred_at": f"{d}T10:00:00+08:00"})  # fmt: skip
        for d in p["post_days"]:
            events.append({"event_id": f"{p['id']}-p{d}", "informant_id": p["id"],
                           "action": "post", "content_id": f"p{d}",
                           "occurred_at": f"{d}T11:00:00+08:00"})  # fmt: skip
    rng.shuffle(events)
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    # In bulk, as a region's records come in (test_bulk_import.py holds it to the credit
    # path's import); the figures below are checked against the event list, not either.
    done = cli(isolated_settings, "import", "--bulk", str(tmp_path / "events.jsonl"))
    assert done.returncode == 0, done.stderr
    assert f"credited {len(events):,} " in done.stdout, done.stdout

    # Independent figures, from the lists above and the default rules: a share is 2 points
    # and one share, a post 3 points (one of each a day stays under every cap).
    shares = {p["id"]: len(p["share_days"]) for p in people}
    posts = {p["id"]: len(p["post_days"]) for p in people}
    points = {w: 2 * shares[w] + 3 * posts[w] for w in shares}
    days = {p["id"]: set(p["share_days"]) | set(p["post_days"]) for p in people}
    months = {w: len({d.month for d in ds}) for w, ds in days.items()}
    registered = {p["id"]: p["registered"] for p in people}
    eligible = [p["id"] for p in people if p["certified"]]
    top_ten = sorted(eligible, key=lambda w: (-shares[w], -len(days[w]), registered[w], w))[:10]
    outstanding = sorted(
        (w for w in eligible if shares[w] >= 310 and months[w] >= 10),
        key=lambda w: (-points[w], -shares[w], -len(days[w]), registered[w], w),
    )
    assert outstanding, "the generated year has outstanding informants"
    june = {w for w, ds in days.items() if any(d.month == 6 for d in ds)}
    june_shares = {p["id"]: sum(d.month == 6 for d in p["share_days"]) for p in people}
    institution = f"{tag}-i0"
    members = [p["id"] for p in people if p["institution"] == institution]

    async def check() -> None:
        app = create_app(isolated_settings, CollectorRegistry())
        async with api_client(app, timeout=60) as client:
            got = (await client.get("/v1/awards/top_ten/nominations", params={"year": 2025})).json()
            assert [r["informant_id"] for r in got["nominations"]] == top_ten
            got = (
                await client.get("/v1/awards/outstanding/nominations", params={"year": 2025})
            ).json()
            assert [r["informant_id"] for r in got["nominations"]] == outstanding
            assert [r["metrics"]["points"] for r in got["nominations"]] == [
                points[w] for w in outstanding
            ]

            report = (
                await client.get(
                    "/v1/reports/monthly", params={"month": "2025-06", "region": "640000"}
                )
            ).json()
            figures = report["figures"]
            assert figures["active"] == len(june)
            assert figures["sharing"] == sum(1 for w in june_shares if june_shares[w])
            assert figures["shares"] == sum(june_shares.values())
            by_city: dict[str, int] = defaultdict(int)
            for p in people:
                by_city[p["city"]] += june_shares[p["id"]]
            assert {c["region"]: c["figures"]["shares"] for c in report["children"]} == by_city

            r = await client.put(f"/v1/institutions/{institution}", json={"name": "一号机构"})
            assert r.status_code == 201, r.text
            table = (
                await client.get(
                    f"/v1/institutions/{institution}/members",
                    params={"period": "year:2025", "limit": 500},
                )
            ).json()
            assert table["totals"]["members"] == len(members)
            got_rows = {m["informant_id"]: m for m in table["members"]}
            for w in members:
                assert (got_rows[w]["shares"], got_rows[w]["posts"], got_rows[w]["points"]) == (
                    shares[w], posts[w], points[w],
                )  # fmt: skip
                assert got_rows[w]["last_activity"] == max(days[w]).isoformat()

    asyncio.run(check())  # the test is sync: the CLI runs in subprocesses above
