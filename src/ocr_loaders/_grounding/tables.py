"""Simple HTML tables -> GitHub markdown pipe tables (tables with spans stay HTML)."""

from __future__ import annotations

import html
import re

_ROW_RE = re.compile(r"<tr\b[^>]*>(.*?)</tr\s*>", re.IGNORECASE | re.DOTALL)
_CELL_RE = re.compile(r"<t([dh])\b([^>]*)>(.*?)</t[dh]\s*>", re.IGNORECASE | re.DOTALL)
_SPAN_RE = re.compile(r"(rowspan|colspan)\s*=\s*[\"']?(\d+)", re.IGNORECASE)


def parse_html_table(table_html: str) -> list[list[str]] | None:
    """Rows of cell texts of a simple table (no row/col spans > 1), else ``None``."""
    rows: list[list[str]] = []
    for row in _ROW_RE.findall(table_html):
        cells = []
        for _kind, attrs, content in _CELL_RE.findall(row):
            if any(int(v) > 1 for _n, v in _SPAN_RE.findall(attrs)):
                return None
            if "<table" in content.lower():
                return None
            cell = re.sub(r"<br\s*/?>", " ", content, flags=re.IGNORECASE)
            cell = html.unescape(re.sub(r"<[^>]+>", "", cell))
            cells.append(" ".join(cell.split()))
        rows.append(cells)
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        return None
    return rows


def html_table_to_markdown(table_html: str) -> str | None:
    """GitHub pipe table for a simple HTML table (first row as header), else ``None``."""
    rows = parse_html_table(table_html)
    if rows is None:
        return None

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(rows[0]), "| " + " | ".join("---" for _ in rows[0]) + " |"]
    out.extend(line(r) for r in rows[1:])
    return "\n".join(out)
