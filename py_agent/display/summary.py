"""What the model reads about a table or chart it showed: a few lines, whatever the size.

The person sees every row; the model sees the columns, the row count and the first rows
(all of them when there are at most :data:`ALL_ROWS_UP_TO`, so a small aggregate can be
answered from the summary). Cells and lines are cut short, and at most :data:`MAX_COLUMNS`
columns are listed, so a 10 000-row, 40-column result still costs a few hundred tokens.
"""

from __future__ import annotations

import json
from typing import Any

from .tables import Table

FIRST_ROWS = 5  # rows the model sees of a longer table
ALL_ROWS_UP_TO = 10  # tables this short are shown to the model whole
MAX_COLUMNS = 12  # columns shown in the preview rows (all are named, up to MAX_NAMED)
MAX_NAMED = 40
MAX_CELL = 40  # characters of one cell in the preview
MAX_LINE = 240  # characters of one preview line


def summarize(table: Table, *, what: str, title: str | None, detail: str = "") -> str:
    """The text printed into the step's output when a table or chart is shown.

    ``what`` is "table" or e.g. "bar chart"; ``detail`` says what a chart plots.
    """
    name = f" {json.dumps(title, ensure_ascii=False)}" if title else ""
    detail = f" ({detail})" if detail else ""
    count = _count(table)
    shown = "the person sees all of them" if not table.truncated else f"the person sees the first {len(table.rows):,} (the display limit)"
    header = f"[{what}{name}{detail} shown to the person: {count}, {shown}]"
    width = min(len(table.columns), MAX_COLUMNS)
    lines = [header]
    if not table.rows or width < len(table.columns):  # otherwise the first line of rows names them
        lines.append(f"columns: {_names(table.columns)}")
    if not table.rows:
        return "\n".join(lines)
    rows = table.rows if len(table.rows) <= ALL_ROWS_UP_TO else table.rows[:FIRST_ROWS]
    lines.append(_line(table.columns[:width], width < len(table.columns)))
    lines.extend(_line([_cell(v) for v in row[:width]], width < len(table.columns)) for row in rows)
    if len(rows) < table.total:
        lines.append(f"… {table.total - len(rows):,} more rows not printed here")
    return "\n".join(lines)


def _count(table: Table) -> str:
    rows = f"{table.total:,}{'+' if not table.counted_all else ''} row{'s' if table.total != 1 else ''}"
    return f"{rows} × {len(table.columns)} column{'s' if len(table.columns) != 1 else ''}"


def _names(columns: list[str]) -> str:
    names = ", ".join(columns[:MAX_NAMED])
    return names + (f", … ({len(columns) - MAX_NAMED} more)" if len(columns) > MAX_NAMED else "")


def _line(cells: list[str], more: bool) -> str:
    text = " | ".join(cells) + (" | …" if more else "")
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        text = value.replace("\n", " ")
    elif isinstance(value, dict) and "$blob" in value:
        text = f"<{value['$blob']} bytes>"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
