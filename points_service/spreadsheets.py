"""Tables for Excel, shared by the API (`format=csv|xlsx`) and the command line
(`awards export`, `reports export`): CSV in UTF-8 with a BOM (so that Excel shows
Chinese), and XLSX with Chinese headers, a frozen header row, set column widths and
numbers stored as numbers."""

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Font

from points_service.domain.reports import MEASURES
from points_service.services.awards import Nominations
from points_service.services.institutions import MemberTable
from points_service.services.reports import MonthlyReport

Cell = str | int | float | None


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _width(values: Sequence[Cell]) -> float:
    # A CJK character takes about two columns.
    longest = max((sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(v)) for v in values), default=4)
    return float(min(max(longest + 2, 8), 60))


def to_xlsx(headers: Sequence[str], rows: Sequence[Sequence[Cell]], title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))  # ints and floats stay numbers
    sheet.freeze_panes = "A2"
    for n, header in enumerate(headers):
        column = [header, *(row[n] for row in rows)]
        sheet.column_dimensions[sheet.cell(row=1, column=n + 1).column_letter].width = _width(
            column
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# 名次, 信息员, 姓名, 省, 分享量, 分享被浏览量, 积分, 发布动态, 活跃天数, 活跃月数, 理由
NOMINATION_COLUMNS = (
    ("名次", "position"), ("信息员ID", "informant_id"), ("姓名", "name"), ("省", "province"),
    ("分享量", "shares"), ("分享被浏览量", "share_views"), ("积分", "points"),
    ("发布动态", "posts"), ("活跃天数", "active_days"), ("活跃月数", "active_months"),
    ("理由", "reasons"),
)  # fmt: skip


def nominations_table(n: Nominations) -> tuple[list[str], list[list[Cell]]]:
    rows: list[list[Cell]] = []
    for r in n.rows:
        row: list[Cell] = []
        for _, key in NOMINATION_COLUMNS:
            if key == "reasons":
                row.append("; ".join(r.reasons))
            elif key in r.metrics:
                row.append(r.metrics[key])
            else:
                row.append(getattr(r, key))
        rows.append(row)
    return [title for title, _ in NOMINATION_COLUMNS], rows


MEMBER_HEADERS = (
    "姓名",
    "信息员ID",
    "分享文章数",
    "发布动态总数",
    "积分",
    "分享被浏览量",
    "最后活跃",
)


def members_table(t: MemberTable) -> tuple[list[str], list[list[Cell]]]:
    """The seed's table (姓名, 分享文章数, 发布动态总数) with the other columns."""
    rows: list[list[Cell]] = [
        [
            r.name, r.informant_id, r.shares, r.posts, r.points, r.share_views,
            r.last_activity.isoformat() if r.last_activity else None,
        ]
        for r in t.rows
    ]  # fmt: skip
    return list(MEMBER_HEADERS), rows


# 地区, 新注册, 累计注册, 活跃, 分享人数, 分享量, 分享被浏览量, 发布动态, 僵尸型, 重新激活
REPORT_HEADERS = (
    "地区", "新注册", "累计注册", "活跃信息员", "分享人数", "分享量", "分享被浏览量",
    "发布动态", "僵尸型", "重新激活", "常住人口", "每万人注册",
)  # fmt: skip


def report_table(r: MonthlyReport) -> tuple[list[str], list[list[Cell]]]:
    """The region (or institution) and its children, one row each."""
    rows: list[list[Cell]] = [
        [code, *(figures.get(m) for m in MEASURES), people, per]
        for code, figures, people, per in [
            (r.code, r.figures, r.population, r.registrations_per_10k),
            *((c.region, c.figures, c.population, c.registrations_per_10k) for c in r.children),
        ]
    ]
    return list(REPORT_HEADERS), rows
