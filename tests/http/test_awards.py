"""Award nominations from an imported year, checked against the expectation computed
here from the event list itself."""

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook
from prometheus_client import CollectorRegistry

from points_service.http.app import create_app
from points_service.settings import Settings
from tests.conftest import api_client, unique
from tests.http.test_import import cli


def shares_on(who: str, days: list[date]) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"{who}-{d.isoformat()}",
            "informant_id": who,
            "action": "share",
            "content_id": f"c-{d.isoformat()}",
            "occurred_at": (datetime(d.year, d.month, d.day, 2, tzinfo=UTC)).isoformat(),
        }
        for d in days
    ]


def first_days(months: range, per_month: int) -> list[date]:
    return [date(2025, m, 1) + timedelta(days=k) for m in months for k in range(per_month)]


async def test_nominations_from_an_imported_year(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    tag = unique("aw")
    a, b, c, d, e, f, g, h = (f"{tag}-{x}" for x in "abcdefgh")
    people = [
        # who, registered (earlier ranks first on a tie), certified, status, days shared
        (a, "2024-01-01", True, "active", first_days(range(1, 13), 28)),  # 336 in 12 months
        (b, "2024-02-01", True, "active", first_days(range(1, 13), 28)),
        (c, "2024-03-01", True, "active", first_days(range(1, 13), 28)),
        (d, "2024-04-01", True, "active", first_days(range(1, 13), 28)),
        (e, "2024-01-01", True, "active", first_days(range(1, 10), 28)),  # 252 in 9 months
        (f, "2024-01-01", True, "active", first_days(range(1, 8), 28)),  # 196 in 7 months
        (g, "2024-01-01", False, "active", first_days(range(1, 13), 28)),  # not certified
        (h, "2024-01-01", True, "banned", first_days(range(1, 13), 28)),  # banned
    ]
    rows = ["informant_id,name,province,certified,registered_at,status"]
    rows += [
        f"{who},{who[-1]},640000,{str(cert).lower()},{reg}T09:00:00+08:00,{status}"
        for who, reg, cert, status, _ in people
    ]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    assert cli(isolated_settings, "import-informants", str(tmp_path / "people.csv")).returncode == 0
    events = [ev for who, *_, days in people for ev in shares_on(who, days)]
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(x) for x in events) + "\n")
    done = cli(isolated_settings, "import", str(tmp_path / "events.jsonl"))
    assert done.returncode == 0, done.stderr

    # The expectation, from the list above: one share a day is 2 points and one share.
    shares = {who: len(days) for who, *_, days in people}
    months = {who: len({x.month for x in days}) for who, *_, days in people}
    eligible = [who for who, _, cert, status, _ in people if cert and status == "active"]
    registered = {who: reg for who, reg, *_ in people}
    top = sorted(eligible, key=lambda w: (-shares[w], registered[w], w))[:10]
    outstanding = sorted(
        (w for w in eligible if shares[w] >= 310 and months[w] >= 10),
        key=lambda w: (-2 * shares[w], registered[w], w),
    )

    # the command line writes the same table to a file
    out = tmp_path / "outstanding.xlsx"
    done = cli(isolated_settings, "awards", "export", "outstanding", "--year", "2025",
               "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    sheet = load_workbook(out).active
    assert [r[1] for r in sheet.iter_rows(min_row=2, values_only=True) if r[1].startswith(tag)] == (
        outstanding
    )
    bad = cli(isolated_settings, "awards", "export", "karma", "--year", "2025")
    assert bad.returncode == 2 and "karma" in bad.stderr

    app = create_app(isolated_settings, CollectorRegistry())
    async with api_client(app, timeout=60) as client:
        got = (await client.get("/v1/awards/top_ten/nominations", params={"year": 2025})).json()
        assert got["award"]["title_zh"] == "十佳科学传播者"
        mine = [r for r in got["nominations"] if r["informant_id"].startswith(tag)]
        assert [r["informant_id"] for r in mine] == top
        assert [r["metrics"]["shares"] for r in mine] == [shares[w] for w in top]
        # a, b, c and d are level on shares, views and active days: registration placed them
        assert [r["placed_by"] for r in mine[:4]] == [None, "registered_at", "registered_at",
                                                      "registered_at"]  # fmt: skip

        got = (await client.get("/v1/awards/outstanding/nominations", params={"year": 2025})).json()
        mine = [r for r in got["nominations"] if r["informant_id"].startswith(tag)]
        assert [r["informant_id"] for r in mine] == outstanding
        assert mine[0]["thresholds_met"] == {"shares": 310, "active_months": 10}
        assert mine[0]["metrics"]["active_months"] == 12
        assert "shares 336 >= 310" in mine[0]["reasons"]

        r = await client.get(
            "/v1/awards/outstanding/nominations", params={"year": 2025, "format": "csv"}
        )
        assert r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
        table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert table[0][:3] == ["名次", "信息员ID", "姓名"]
        assert [row[1] for row in table[1:] if row[1].startswith(tag)] == outstanding

        r = await client.get(
            "/v1/awards/outstanding/nominations", params={"year": 2025, "format": "xlsx"}
        )
        assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(r.content)).active
        assert sheet.freeze_panes == "A2"
        header = [cell.value for cell in sheet[1]]
        assert header[:5] == ["名次", "信息员ID", "姓名", "省", "分享量"]
        mine = [
            row for row in sheet.iter_rows(min_row=2, values_only=True) if row[1].startswith(tag)
        ]
        assert [row[1] for row in mine] == outstanding
        assert all(isinstance(row[4], int) for row in mine)  # numbers stored as numbers
        assert sheet.column_dimensions["B"].width >= 8

        for path, params, status, field in (
            ("/v1/awards/karma/nominations", {"year": 2025}, 404, None),
            ("/v1/awards/top_ten/nominations", {"year": 1900}, 422, "year"),
            ("/v1/awards/top_ten/nominations", {"year": 2025, "scope": "county:640104"}, 422,
             "scope"),
            ("/v1/awards/top_ten/nominations", {"year": 2025, "format": "pdf"}, 422, "format"),
        ):  # fmt: skip
            r = await client.get(path, params=params)
            assert r.status_code == status, (path, params, r.text)
            if field:
                assert r.json()["field"] == field
