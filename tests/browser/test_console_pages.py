"""The staff console in Chromium, against the service seeded with a Ningxia history: every
figure a page shows is checked against the seed's own event list (tests/browser/seed.py),
never against what the service answers elsewhere."""

import csv
import io
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import Console, new_context, screenshot

PROVINCE, YINCHUAN = "640000", "640100"

# Every visible control has an accessible name: a <label for>, an enclosing label,
# aria-label(ledby), or (a button, a link) its own text. Returns the unnamed ones.
UNLABELLED = """() => {
  const named = (el) => {
    if (el.getAttribute('aria-label')) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\\s+/).every((id) => document.getElementById(id))) return true;
    if (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) return true;
    if (el.closest('label')) return true;
    if (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim()) return true;
    return false;
  };
  const controls = document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, progress, a[href], summary');
  return [...controls].filter((el) => el.getClientRects().length && !named(el))
    .map((el) => el.outerHTML.slice(0, 120));
}"""

# WCAG 2 contrast of every visible piece of text against the background it sits on
# (the first opaque background among its ancestors): at least 4.5:1, or 3:1 for large
# text (24px, or 18.66px bold). Returns the failures.
CONTRAST = """() => {
  const rgba = (s) => { const m = s.match(/[\\d.]+/g).map(Number);
                        return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = ([r, g, b]) => { const c = [r, g, b].map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] >= 0.99) return c;
    }
    return [255, 255, 255, 1];
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || seen.has(el) || el.closest('svg, title')) continue;
    seen.add(el);
    if (!el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || Number(style.opacity) === 0) continue;
    const fg = rgba(style.color), bg = background(el);
    const mixed = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
    const [a, b] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const text = n.textContent.trim().slice(0, 30);
    if (ratio < need) bad.push(`${el.tagName}.${el.className} "${text}" ${ratio.toFixed(2)}`);
  }
  return bad;
}"""

# Wider than the viewport: a page that scrolls sideways on a phone. Tables scroll inside
# their own .scroll box, which is allowed.
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def sign_in(page: Page, console: Console, key: str, path: str = "/console/") -> None:
    page.goto(console.url + path)
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label(re.compile("API 密钥|API key")).fill(key)
    page.get_by_role("button", name=re.compile("^(登录|Sign in)$")).click()
    expect(page).not_to_have_url(re.compile(r"/console/login"))


def board_rows(page: Page, table: str = "#board") -> list[tuple[int, bool, str, int]]:
    """(rank, marked as a tie, name, score) of each row of a leaderboard table."""
    rows = []
    for row in page.locator(f"{table} tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        rank = cells[0].split()[0]
        rows.append((int(rank), "并列" in cells[0] or "tie" in cells[0], cells[1], _int(cells[4])))
    return rows


def _int(text: str) -> int:
    return int(text.replace(",", "").strip())


def competition_ranks(scores: Counter[str]) -> dict[str, int]:
    """1, 2, 2, 4: one more than the number of strictly higher scores."""
    return {who: 1 + sum(1 for s in scores.values() if s > mine) for who, mine in scores.items()}


def month_bounds(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


def test_sign_in_lands_on_the_first_page_and_sign_out_ends_it(console: Console, page: Page) -> None:
    page.goto(console.url + "/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    screenshot(page, "login")

    page.get_by_label("API 密钥").fill("ps_not-a-key-at-all")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#problem")).to_be_visible()
    expect(page.locator("#key")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("API 密钥").fill(console.admin_key)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/console/leaderboards$"))
    nav = page.get_by_role("navigation", name=re.compile(".")).first
    expect(nav.get_by_role("link")).to_have_text(
        ["排行榜", "工作进展", "评选提名", "单位成员", "运行状态"]
    )
    cookie = next(c for c in page.context.cookies() if c["name"] == "ps_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.goto(console.url + "/console/operations")
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Foperations"))


def test_leaderboards_by_city_with_ties_search_and_drill_down(console: Console, page: Page) -> None:
    seed = console.seed
    year = date(seed.today.year, 1, 1)
    in_city = seed.where(lambda i: i.city == YINCHUAN)
    shares = Counter({w: n for w, n in seed.counts("shares", first=year).items() if w in in_city})
    ranks = competition_ranks(shares)
    names = {w: seed.by_id[w].name for w in shares}

    sign_in(page, console, console.read_key, "/console/leaderboards")
    page.get_by_label("指标", exact=True).select_option("shares")
    page.get_by_label("周期", exact=True).select_option("year")
    expect(page.get_by_label("市", exact=True)).to_be_disabled()
    page.get_by_label("省", exact=True).select_option(PROVINCE)  # the script fills the cities
    expect(page.get_by_label("市", exact=True)).to_be_enabled()
    page.get_by_label("市", exact=True).select_option(label="银川市")
    page.get_by_role("button", name="查看").click()
    expect(page).to_have_url(re.compile(r"city=640100"))

    rows = board_rows(page)
    assert [(name, score) for _, _, name, score in rows] == sorted(
        ((names[w], s) for w, s in shares.items()),
        key=lambda p: (-p[1], next(w for w in names if names[w] == p[0])),
    )
    assert {name: rank for rank, _, name, _ in rows} == {names[w]: r for w, r in ranks.items()}
    tied_scores = {s for s, n in Counter(shares.values()).items() if n > 1}
    assert tied_scores, "the seed's board should hold a tie to show"
    assert all(tie == (score in tied_scores) for _, tie, _, score in rows)
    expect(page.locator("#members")).to_have_text(str(len(shares)))
    screenshot(page, "leaderboards")

    # search by the start of a name: the informant's rank and neighbours
    target = sorted(shares, key=lambda w: (-shares[w], w))[len(shares) // 2]
    page.get_by_label(re.compile("查找信息员")).fill(names[target])
    page.get_by_role("button", name="查找").click()
    expect(page.locator("#standing-rank")).to_have_text(str(ranks[target]))
    expect(page.locator("#neighbours tr.me")).to_contain_text(names[target])
    neighbours = board_rows(page, "#neighbours")
    assert 5 <= len(neighbours) <= 11
    assert [score for *_, score in neighbours] == sorted(
        (score for *_, score in neighbours), reverse=True
    )

    # drill down: a name on the board opens that informant's standing
    third = page.locator("#board tbody tr").nth(2).get_by_role("link")
    picked = third.inner_text()
    third.click()
    expect(page.locator("#standing-title")).to_contain_text(picked)
    picked_id = next(w for w in names if names[w] == picked)
    expect(page.locator("#standing-rank")).to_have_text(str(ranks[picked_id]))


def test_progress_with_targets_trend_and_a_drill_down(console: Console, page: Page) -> None:
    seed = console.seed
    first, last = month_bounds(seed.today)
    month = f"{first:%Y-%m}"
    sign_in(page, console, console.admin_key, f"/console/progress?region={PROVINCE}&month={month}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("宁夏回族自治区")

    def figure(measure: str) -> int:
        return _int(page.locator(f'#figures dd[data-measure="{measure}"]').inner_text())

    assert figure("shares") == sum(seed.counts("shares", first, last).values())
    assert figure("registrations") == len(seed.informants)
    assert figure("active") == len(seed.active_days(first, last))
    assert figure("dormant") == len(seed.dormant)

    bar = page.locator("progress").first
    assert _int(bar.get_attribute("max") or "0") == 100_000
    registered = seed.where(lambda i: i.registered_at.year == first.year)  # this year's
    assert _int(bar.get_attribute("value") or "-1") == len(registered)

    # the trend: one bar a month of the year, each titled with the seed's figure
    by_month = seed.by_month("shares")
    titles = page.locator("svg.chart.shares rect.bar title").all_text_contents()
    got = dict(t.split(": ") for t in titles)
    assert {m[5:]: f"{v:,}" for m, v in by_month.items()} == {
        k: v for k, v in got.items() if f"{first.year}-{k}" in by_month
    }
    expect(page.locator("svg.chart.active")).to_have_attribute("role", "img")

    # the cities ranked; Yinchuan holds most informants and most shares
    children = page.locator("#children tbody tr")
    expect(children.first.locator("th")).to_contain_text("银川市")
    assert "第1" in children.first.locator("td").nth(2).inner_text()  # active, rank 1
    screenshot(page, "progress")

    children.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"region=640100"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("银川市")
    in_city = seed.where(lambda i: i.city == YINCHUAN)
    shares = seed.counts("shares", first, last)
    assert figure("shares") == sum(n for w, n in shares.items() if w in in_city)
    crumbs = page.locator(".crumbs li")
    expect(crumbs).to_have_count(2)
    crumbs.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"region=640000"))


def test_nominations_with_reasons_and_both_downloads(
    console: Console, page: Page, tmp_path: Path
) -> None:
    seed = console.seed
    year = seed.today.year
    sign_in(page, console, console.admin_key, f"/console/nominations?award=outstanding&year={year}")
    rows = page.locator("#nominations tbody tr")
    expect(rows).to_have_count(2)  # the two who shared every day of the year
    ids = [row.locator("td").nth(1).locator("small").inner_text() for row in rows.all()]
    points = seed.points(first=date(year, 1, 1))
    assert ids == sorted(["nx-001", "nx-002"], key=lambda w: -points[w])
    expect(rows.first.locator(".reasons")).to_contain_text("分享量")
    expect(rows.first.locator(".reasons")).to_contain_text("达到 310")
    screenshot(page, "nominations")

    with page.expect_download() as download:
        page.locator("#export-csv").click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["信息员ID"] for r in table] == ids
    assert [r["姓名"] for r in table] == [seed.by_id[w].name for w in ids]

    page.get_by_label("奖项", exact=True).select_option("top_ten")
    page.get_by_role("button", name="查看").click()
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("nx-001")  # the clear top sharer
    with page.expect_download() as download:
        page.locator("#export-xlsx").click()
    path = tmp_path / (download.value.suggested_filename or "top_ten.xlsx")
    download.value.save_as(path)
    sheet = load_workbook(path).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    assert "姓名" in header and "分享量" in header
    names = [row[header.index("姓名")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert len(names) == 10 and names[0] == seed.by_id["nx-001"].name
    shares = [row[header.index("分享量")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert all(isinstance(s, int) for s in shares) and shares == sorted(shares, reverse=True)


def test_operations_reconcile_and_reload(console: Console, page: Page) -> None:
    with console.api() as http:
        live = http.get("/v1/admin/rules").json()
    sign_in(page, console, console.admin_key, "/console/operations")
    expect(page.locator("#rules-version")).to_have_text(live["version"])
    page.get_by_role("button", name="立即核对").click()
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#reconcile-status")).to_have_text("无差异")
    page.get_by_role("button", name="重新加载规则").click()
    expect(page.locator("#reload-result")).to_contain_text("成功")
    expect(page.get_by_role("link", name=re.compile("指标"))).to_have_attribute("href", "/metrics")
    screenshot(page, "operations")


def test_the_language_switch_keeps_the_page_and_sticks(console: Console, page: Page) -> None:
    sign_in(page, console, console.read_key, "/console/leaderboards?metric=shares&period=year")
    page.locator("#switch-language").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(re.compile(r"/console/leaderboards\?metric=shares&period=year"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Leaderboards")
    expect(page.get_by_label("Metric")).to_have_value("shares")
    screenshot(page, "leaderboards-en")
    page.goto(console.url + "/console/leaderboards")  # the choice is kept
    expect(page.get_by_role("heading", level=1)).to_have_text("Leaderboards")
    page.locator("#switch-language").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("排行榜")


def test_an_institution_admin_sees_their_table_and_nothing_else(
    console: Console, page: Page
) -> None:
    seed = console.seed
    sign_in(page, console, console.inst_a_key)
    expect(page).to_have_url(re.compile(r"/console/institutions/inst-a"))
    expect(page.get_by_role("navigation").first.get_by_role("link")).to_have_text(["单位成员"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("宁夏科学技术馆")
    members = seed.where(lambda i: i.institution_id == "inst-a")
    page.get_by_label("周期", exact=True).select_option("all")
    page.get_by_role("button", name="查看").click()
    shown = page.locator("#members tbody tr td:first-child").all_inner_texts()
    assert sorted(shown) == sorted(seed.by_id[w].name for w in members)
    shares = seed.counts("shares")
    first_row = page.locator("#members tbody tr").first.locator("td").all_inner_texts()
    assert _int(first_row[1]) == max(shares[w] for w in members)  # sorted by shares
    screenshot(page, "institution")

    for path in (
        "/console/institutions/inst-b",
        "/console/institutions/inst-b/export?format=csv",
        "/console/leaderboards",
        "/console/progress",
        "/console/nominations",
        "/console/operations",
    ):
        answer = page.goto(console.url + path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("无权访问")
        assert "银川市第一中学" not in page.content()

    # the other institution's own admin, in a second browser at once, sees theirs
    other = page.context.browser
    assert other is not None
    second = new_context(other)
    try:
        theirs = second.new_page()
        sign_in(theirs, console, console.inst_b_key)
        expect(theirs).to_have_url(re.compile(r"/console/institutions/inst-b"))
        answer = theirs.goto(console.url + "/console/institutions/inst-a")
        assert answer is not None and answer.status == 403
    finally:
        second.close()


def test_on_a_phone_nothing_scrolls_sideways(console: Console, phone_page: Page) -> None:
    sign_in(phone_page, console, console.admin_key, "/console/leaderboards")
    for path in (
        "/console/leaderboards?metric=shares&period=year&province=640000",
        f"/console/progress?region={PROVINCE}",
        "/console/nominations?award=top_ten",
        "/console/institutions/inst-a",
        "/console/operations",
    ):
        phone_page.goto(console.url + path)
        assert phone_page.evaluate(OVERFLOW) <= 0, path
    phone_page.goto(console.url + "/console/leaderboards?metric=shares&period=year")
    screenshot(phone_page, "phone", full_page=False)


def test_keyboard_only(console: Console, page: Page) -> None:
    page.goto(console.url + "/console/login")
    assert page.evaluate("document.activeElement.id") == "key"  # autofocus
    page.keyboard.type(console.admin_key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/leaderboards"))

    page.keyboard.press("Tab")
    focused = page.evaluate(
        "({cls: document.activeElement.className,"
        " outline: getComputedStyle(document.activeElement).outlineStyle})"
    )
    assert focused["cls"] == "skip" and focused["outline"] != "none"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "metric"

    # every menu link is reachable with Tab, in order, and shows where the focus is
    page.goto(console.url + "/console/leaderboards")
    reached: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        here = page.evaluate(
            "[document.activeElement.getAttribute('href'),"
            " getComputedStyle(document.activeElement).outlineStyle]"
        )
        if here[0]:
            assert here[1] != "none", here
            reached.append(here[0])
    menu = [u for u in reached if u.startswith("/console/") and "/lang/" not in u][:5]
    assert menu == [
        "/console/leaderboards",
        "/console/progress",
        "/console/nominations",
        "/console/institutions",
        "/console/operations",
    ]
    # choose a metric and submit with the keyboard alone
    page.focus("#metric")
    page.keyboard.press("ArrowDown")  # points → shares
    for _ in range(8):  # on to the form's own button (Enter on a select submits nothing)
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#board-form button')"):
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"metric=shares"))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_control_is_labelled_and_every_text_readable(
    console: Console, browser: Browser, lang: str
) -> None:
    context: BrowserContext = new_context(browser)
    try:
        page = context.new_page()
        page.goto(console.url + "/console/login")
        assert page.evaluate(UNLABELLED) == []
        assert page.evaluate(CONTRAST) == []
        sign_in(page, console, console.admin_key)
        page.goto(f"{console.url}/console/lang/{lang}?next=/console/leaderboards")
        for path in (
            "/console/leaderboards?metric=shares&period=year&informant=nx-003",
            f"/console/progress?region={YINCHUAN}",
            "/console/nominations?award=outstanding",
            "/console/institutions/inst-a",
            "/console/operations",
            "/console/institutions/nowhere",  # an error page
        ):
            page.goto(console.url + path)
            expect(page.locator("html")).to_have_attribute(
                "lang", "en" if lang == "en" else "zh-CN"
            )
            assert page.evaluate(UNLABELLED) == [], path
            assert page.evaluate(CONTRAST) == [], path
    finally:
        context.close()
