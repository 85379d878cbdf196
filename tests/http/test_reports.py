"""The monthly report of a region and of an institution, from imported history, checked
against figures worked out by hand from the events and profiles below."""

import csv
import io
import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client, unique
from tests.http.test_import import cli


def event(who: str, action: str, when: str, n: int) -> dict[str, object]:
    extra = {} if action in ("login", "sign_in") else {"content_id": f"c{n}"}
    return {"event_id": f"{who}-{n}", "informant_id": who, "action": action,
            "occurred_at": f"{when}T10:00:00+08:00", **extra}  # fmt: skip


async def test_the_monthly_report(isolated_settings: Settings, tmp_path: Path) -> None:
    tag = unique("r")
    p1, p2, p3, p4 = (f"{tag}-{n}" for n in range(1, 5))
    profiles = [
        # who, city, county, registered, institution
        (p1, "640100", "640104", "2025-06-10", "X"),  # new in June, shares in June
        (p2, "640100", "640104", "2024-01-01", ""),  # dormant since January, posts in June
        (p3, "640100", "640105", "2024-05-01", ""),  # never active: dormant
        (p4, "640200", "640202", "2025-02-01", "X"),  # silent until a share in June
    ]
    lines = ["informant_id,province,city,county,registered_at,institution_id"]
    lines += [f"{w},640000,{c},{k},{r}T09:00:00+08:00,{i}" for w, c, k, r, i in profiles]
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n")
    assert cli(isolated_settings, "import-informants", str(tmp_path / "people.csv")).returncode == 0
    events = [
        event(p1, "share", "2025-06-12", 1),
        event(p2, "share", "2025-01-15", 2),
        event(p2, "post", "2025-06-20", 3),
        event(p4, "share", "2025-06-05", 4),
        event(p4, "share", "2025-07-01", 5),  # July: not in June's report
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert cli(isolated_settings, "import", str(tmp_path / "events.jsonl")).returncode == 0

    out = tmp_path / "june.csv"
    done = cli(isolated_settings, "reports", "export", "--month", "2025-06", "--region",
               "640000", "--format", "csv", "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [row[0] for row in exported[1:]] == ["640000", "640100", "640200"]

    app = create_app(isolated_settings, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        r = await client.get("/v1/reports/monthly", params={"month": "2025-06", "region": "640000"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["level"] == "province"
        assert report["month"]["start"] == "2025-06-01T00:00:00+08:00"
        assert report["figures"] == {
            "new_registrations": 1, "registrations": 4, "active": 3, "sharing": 2,
            "shares": 2, "share_views": 0, "posts": 1, "dormant": 1, "reactivated": 2,
        }  # fmt: skip
        # p4 was dormant too on 1 June (registered in February, never active since)
        # year to date (1 January to 30 June) against rules/targets.toml
        assert report["progress"] == {
            "registrations": 2,  # p4 in February and p1 in June 2025
            "shares": 3,  # p2 in January, p1 and p4 in June
            "informants_at_share_target": 0,
            "targets": {"registrations": 100000, "shares": 20000000, "shares_per_informant": 310},
        }
        children = {c["region"]: c for c in report["children"]}
        assert set(children) == {"640100", "640200"}
        assert children["640100"]["figures"] == {
            "new_registrations": 1, "registrations": 3, "active": 2, "sharing": 1,
            "shares": 1, "share_views": 0, "posts": 1, "dormant": 1, "reactivated": 1,
        }  # fmt: skip
        assert children["640100"]["ranks"]["active"] == 1
        assert children["640200"]["ranks"]["active"] == 2
        assert children["640100"]["ranks"]["shares"] == children["640200"]["ranks"]["shares"] == 1
        # per 10,000 residents (rules/population.toml: Ningxia, 2020 census)
        assert report["population"] == 7202654
        assert children["640100"]["registrations_per_10k"] == round(3 * 10_000 / 2859074, 4)
        assert children["640200"]["registrations_per_10k"] == round(1 * 10_000 / 751389, 4)
        assert children["640200"]["ranks"]["registrations_per_10k"] == 1
        assert children["640100"]["ranks"]["registrations_per_10k"] == 2

        r = await client.get("/v1/reports/monthly", params={"month": "2025-06", "institution": "X"})
        figures = r.json()["figures"]
        assert (figures["registrations"], figures["active"], figures["shares"]) == (2, 2, 2)

        r = await client.get(
            "/v1/reports/monthly", params={"month": "2025-06", "region": "640100", "format": "csv"}
        )
        table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert table[0][:3] == ["地区", "新注册", "累计注册"]
        assert [row[0] for row in table[1:]] == ["640100", "640104", "640105"]

        for params, field in (
            ({"month": "2025-13", "region": "640000"}, "month"),
            ({"month": "2025-06"}, "region"),
            ({"month": "2025-06", "region": "64"}, "region"),
            ({"month": "2025-06", "region": "640000", "format": "pdf"}, "format"),
        ):
            r = await client.get("/v1/reports/monthly", params=params)
            assert (r.status_code, r.json()["field"]) == (422, field), (params, r.text)
