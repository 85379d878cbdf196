"""Tables for Excel: CSV in UTF-8 with a BOM (so that Excel shows Chinese), and XLSX with
Chinese headers, a frozen header row, set column widths and numbers stored as numbers."""

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Font

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
