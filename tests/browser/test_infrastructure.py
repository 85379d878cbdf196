"""The browser tests' footing: the seeded service answers with the history's figures
(computed here from the seed's events and rules/default.toml alone), and Chromium opens
its pages."""

from datetime import date
from pathlib import Path

from playwright.sync_api import Page

from tests.browser.conftest import Console, screenshot


def test_the_seeded_service_and_a_browser(console: Console, page: Page, tmp_path: Path) -> None:
    seed = console.seed
    year = date(seed.today.year, 1, 1)
    shares = seed.counts("shares", first=year)
    (top, most), (_, second) = shares.most_common(2)
    assert most > second  # one clear leader
    points = seed.points(first=year)

    with console.api(console.read_key) as http:
        board = http.get(
            "/v1/leaderboards/shares",
            params={"scope": "province:640000", "period": "year", "limit": 100},
        )
        assert board.status_code == 200, board.text
        got = board.json()
        assert got["entries"][0]["informant_id"] == top
        assert got["entries"][0]["score"] == most
        assert got["entries"][0]["name"] == seed.by_id[top].name
        assert {e["informant_id"]: e["score"] for e in got["entries"]} == dict(shares)

        board = http.get(
            "/v1/leaderboards/points",
            params={"scope": "province:640000", "period": "year", "limit": 100},
        )
        assert board.status_code == 200, board.text
        assert {e["informant_id"]: e["score"] for e in board.json()["entries"]} == dict(points)

    # the institution keys see their own member table only
    with console.api(console.inst_a_key) as http:
        table = http.get("/v1/institutions/inst-a/members", params={"period": "year"})
        assert table.status_code == 200, table.text
        members = seed.where(lambda i: i.institution_id == "inst-a")
        assert table.json()["totals"]["members"] == len(members)
        assert http.get("/v1/institutions/inst-b/members").status_code == 403

    page.goto(f"{console.url}/health/live")
    assert "ok" in page.inner_text("body")
    shot = screenshot(page, "health-live", directory=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"setup seconds: {console.timings}")  # shown with -s
