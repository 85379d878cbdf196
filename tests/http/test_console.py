"""The staff console over HTTP (no browser): sign-in, sessions, scopes, CSRF, language,
exports. Real Redis sessions and a real SQLite ledger; the browser tests in
tests/browser drive the same pages in Chromium."""

import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook
from prometheus_client import CollectorRegistry

from points_service.adapters.api_keys import digest, new_key
from points_service.http.app import create_app
from points_service.http.console.text import MESSAGES
from points_service.settings import Settings
from tests.conftest import unique
from tests.http.test_events_api import body

Client = AsyncTestClient  # type: ignore[type-arg]
ORIGIN = "https://console.test"  # Secure cookies travel over HTTPS only

KEYS = {
    "admin": new_key(),
    "reader": new_key(),
    "inst-a": new_key(),
}


@pytest.fixture
async def console(base_settings: Settings) -> AsyncIterator[tuple[Client, str, str]]:
    a, b = unique("ia"), unique("ib")
    scopes = {"admin": ["admin"], "reader": ["read"], "inst-a": [f"institution:{a}"]}
    entries = [{"name": n, "hash": digest(k), "scopes": scopes[n]} for n, k in KEYS.items()]
    settings = replace(base_settings, api_keys=json.dumps(entries))
    app = create_app(settings, CollectorRegistry())
    async with AsyncTestClient(app, base_url=ORIGIN, timeout=60) as client:
        yield client, a, b


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


async def _sign_in(client: Client, who: str, target: str = "") -> Any:
    client.cookies.clear()
    page = await client.get("/console/login")
    assert page.status_code == 200
    form = {"csrf": _field(page.text, "csrf"), "key": KEYS[who], "next": target}
    return await client.post("/console/login", data=form, follow_redirects=False)


async def _api(client: Client, method: str, path: str, **options: Any) -> Any:
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    return await client.request(method, path, headers=headers, **options)


async def test_pages_need_a_sign_in_and_come_back_after_it(console: Any) -> None:
    client, _, _ = console
    r = await client.get("/console/progress?month=2026-11", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Fprogress%3Fmonth%3D2026-11"
    login = await client.get(r.headers["location"])
    assert 'name="next" value="/console/progress?month=2026-11"' in login.text
    signed = await _sign_in(client, "admin", "/console/progress?month=2026-11")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console/progress?month=2026-11"
    cookie = signed.headers["set-cookie"]
    assert "ps_session=" in cookie
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console"):
        assert attribute.lower() in cookie.lower(), cookie
    page = await client.get("/console/progress?month=2026-11")
    assert page.status_code == 200
    assert "工作进展" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_a_wrong_key_or_a_stale_form_is_refused(console: Any) -> None:
    client, _, _ = console
    page = await client.get("/console/login")
    token = _field(page.text, "csrf")
    wrong = await client.post("/console/login", data={"csrf": token, "key": new_key()})
    assert wrong.status_code == 401
    assert "密钥无效" in wrong.text
    assert "ps_session" not in wrong.headers.get("set-cookie", "")
    stale = await client.post(
        "/console/login", data={"csrf": "forged", "key": KEYS["admin"]}, follow_redirects=False
    )
    assert stale.status_code == 400
    assert "ps_session" not in stale.headers.get("set-cookie", "")
    # A sign-in never sends the browser elsewhere.
    away = await _sign_in(client, "admin", "//evil.example/console/x")
    assert away.headers["location"] == "/console/leaderboards"


async def test_each_key_sees_the_pages_its_scopes_cover_and_no_others(console: Any) -> None:
    client, a, b = console
    for inst in (a, b):
        r = await _api(client, "PUT", f"/v1/institutions/{inst}", json={"name": f"单位{inst}"})
        assert r.status_code == 201
    pages = {
        "leaderboards": "/console/leaderboards",
        "progress": "/console/progress",
        "nominations": "/console/nominations",
        "operations": "/console/operations",
        "inst-a": f"/console/institutions/{a}",
        "inst-b": f"/console/institutions/{b}",
        "export-a": f"/console/institutions/{a}/export?format=csv",
        "export-b": f"/console/institutions/{b}/export?format=csv",
        "nominations-export": "/console/nominations/export?award=top_ten&format=csv",
    }
    allowed = {
        "admin": set(pages),
        "reader": {"leaderboards"},
        "inst-a": {"inst-a", "export-a"},
    }
    for who, may in allowed.items():
        signed = await _sign_in(client, who)
        assert signed.status_code == 303
        landing = (await client.get(signed.headers["location"])).text
        for page, path in pages.items():
            r = await client.get(path)
            expected = 200 if page in may else 403
            assert r.status_code == expected, (who, page, r.status_code)
            if expected == 403:
                assert "无权访问" in r.text
                assert "单位" + b not in r.text  # nothing of the page leaks
        # The menu offers exactly the pages the key may open.
        offered = set(re.findall(r'<li><a href="(/console/[^"]+)"', landing))
        if who == "inst-a":
            assert offered == {f"/console/institutions/{a}"}
        if who == "reader":
            assert offered == {"/console/leaderboards"}


async def test_sign_out_ends_the_session_everywhere(console: Any) -> None:
    client, _, _ = console
    await _sign_in(client, "reader")
    page = await client.get("/console/leaderboards")
    assert page.status_code == 200
    session = client.cookies.get("ps_session")
    token = _field(page.text, "csrf")
    refused = await client.post("/console/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/console/leaderboards")).status_code == 200
    out = await client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login?bye=1"
    # The old cookie, sent again (a copy kept elsewhere), opens nothing.
    client.cookies.set("ps_session", session or "", domain="console.test", path="/console")
    again = await client.get("/console/leaderboards", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/console/login")


async def test_changing_forms_need_the_session_token(console: Any) -> None:
    client, _, _ = console
    await _sign_in(client, "admin")
    page = await client.get("/console/operations")
    assert "尚未核对" in page.text  # no reconcile has run on this prefix
    token = _field(page.text, "csrf")
    forged = await client.post("/console/operations/reconcile", data={"csrf": "x" * 43})
    assert forged.status_code == 403
    assert "尚未核对" in (await client.get("/console/operations")).text
    done = await client.post(
        "/console/operations/reconcile", data={"csrf": token}, follow_redirects=False
    )
    assert done.status_code == 303
    after = await client.get(done.headers["location"])
    assert 'id="reconcile-status" class="ok"' in after.text
    assert "无差异" in after.text
    reload = await client.post("/console/operations/reload", data={"csrf": token})
    assert reload.status_code == 200
    assert 'id="reload-result" class="ok"' in reload.text


async def test_the_language_switch_and_every_word_in_both_languages(console: Any) -> None:
    assert MESSAGES["zh"].keys() == MESSAGES["en"].keys()
    client, _, _ = console
    await _sign_in(client, "admin")
    zh = await client.get("/console/nominations?year=2026")
    assert '<html lang="zh-CN">' in zh.text
    assert "十佳科学传播者" in zh.text
    switched = await client.get(
        "/console/lang/en?next=/console/nominations%3Fyear%3D2026", follow_redirects=False
    )
    assert switched.headers["location"] == "/console/nominations?year=2026"
    en = await client.get(switched.headers["location"])
    assert '<html lang="en">' in en.text
    assert "Top ten science communicators" in en.text
    assert "十佳" not in en.text


async def test_board_pages_show_ties_and_an_informants_neighbours(console: Any) -> None:
    client, a, _ = console
    people = [f"{a}-{n}" for n in range(4)]
    for n, who in enumerate(people):
        profile = {"name": f"人{n}", "province": "640000", "city": "640100", "county": "640104"}
        assert (await _api(client, "PUT", f"/v1/informants/{who}", json=profile)).status_code == 201
    # Shares: person 0 three, persons 1 and 2 two each (a tie), person 3 one.
    for who, count in zip(people, (3, 2, 2, 1), strict=True):
        for c in range(count):
            sent = await _api(
                client, "POST", "/v1/events", json=body(who, "share", content_id=f"c{c}")
            )
            assert sent.status_code == 200
    await _sign_in(client, "reader")
    page = await client.get(
        "/console/leaderboards",
        params={"metric": "shares", "period": "day", "province": "640000", "city": "640100",
                "county": "640104", "informant": people[3]},
    )  # fmt: skip
    assert page.status_code == 200
    board = page.text.split('id="board"')[1]
    ranks = re.findall(r'<tr[^>]*>\s*<td class="num">(\d+)', board)
    assert ranks == ["1", "2", "2", "4"]
    assert board.count('<span class="tie">并列</span>') == 2
    standing = page.text.split('id="standing"')[1].split("</section>")[0]
    assert '<dd id="standing-rank">4</dd>' in standing
    assert 'class="me"' in standing
    assert "兴庆区" in board
    # By name: the start of a name that four informants share lists them to choose from;
    # a whole name goes straight to the standing.
    several = await client.get("/console/leaderboards", params={"informant": "人"})
    listed = several.text.split('id="matches"')[1].split("</ul>")[0]
    assert [f"{a}-{n}" in listed for n in range(4)] == [True] * 4
    one = await client.get("/console/leaderboards", params={"metric": "shares", "period": "day",
                                                            "informant": "人0"})  # fmt: skip
    assert '<dd id="standing-rank">1</dd>' in one.text
    nobody = await client.get("/console/leaderboards", params={"informant": "无此人"})
    assert "没有找到这位信息员" in nobody.text


async def test_console_exports_open_as_spreadsheets(console: Any) -> None:
    client, a, _ = console
    await _api(client, "PUT", f"/v1/institutions/{a}", json={"name": "兴庆区科协"})
    await _api(client, "PUT", f"/v1/informants/{a}-x", json={"name": "甲", "institution_id": a})
    await _api(client, "POST", "/v1/events", json=body(f"{a}-x", "share", content_id="c1"))
    await _sign_in(client, "inst-a")
    csv = await client.get(f"/console/institutions/{a}/export?format=csv&period=day")
    assert csv.status_code == 200
    assert csv.content.startswith(b"\xef\xbb\xbf")
    assert "甲" in csv.content.decode("utf-8-sig")
    xlsx = await client.get(f"/console/institutions/{a}/export?format=xlsx&period=day")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][0] == "姓名"
    assert rows[1][0] == "甲"
    bad = await client.get(f"/console/institutions/{a}/export?format=pdf")
    assert bad.status_code == 400
    assert "format" in bad.text
