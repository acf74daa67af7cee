"""Vega-Lite specs for chart(): the data inline, nothing fetched, one spec per kind.

``chart_spec(table, kind, x, y, color, bins)`` checks the column names against the table and
returns the spec, the columns it plots (the page's "Show data" table) and a label.
Only the plotted columns go into ``data.values``. The spec names no URL (the page refuses
charts that do) and no title (the page shows it above the chart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .tables import ShowError, Table, kind_of_column
from .values import NUMBER, TEMPORAL

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # vega-lite 6.x in package.json
KINDS = ("bar", "line", "area", "scatter", "histogram", "pie")
COUNT = "count"  # the y axis when rows are counted
MAX_LINE_POINTS = 60  # lines with at most this many points also mark each point


def chart_spec(
    table: Table,
    kind: str,
    x: str | None,
    y: str | Sequence[str] | None,
    color: str | None,
    bins: int | None,
) -> tuple[dict[str, Any], list[str], str]:
    """The Vega-Lite spec of a chart of ``table``, the columns it plots, and a few words for the
    model's summary ("books by genre")."""
    if kind not in KINDS:
        raise ShowError(f"chart(kind={kind!r}) is not a chart kind; use one of: {', '.join(KINDS)}")
    names = table.columns
    x = _column(table, "x", x) if x is not None else _default_x(table, kind)
    ys = [_column(table, "y", name) for name in _names(y)]
    if color is not None:
        color = _column(table, "color", color)
        if len(ys) > 1:
            raise ShowError("chart(): with several y columns the colour shows which is which; leave out color=")
    if kind == "histogram":
        if ys:
            raise ShowError("chart(kind='histogram') counts rows per range of x; leave out y= (or use kind='bar')")
    elif not ys:  # the first number column other than x; bar and pie count rows without one
        default = next((n for n in names if n not in (x, color) and kind_of_column(table, n) == NUMBER), None)
        if default is not None:
            ys = [default]
        elif kind in ("line", "area", "scatter"):
            raise ShowError(f"chart(kind={kind!r}) needs a number column for y; the columns are: {', '.join(names)}")
    for name in ys:
        if kind_of_column(table, name) not in (NUMBER, ""):  # "": no values at all (an empty result)
            raise ShowError(f"chart(): y={name!r} does not hold numbers; pick a number column (or leave y out to count rows)")

    fields = _unique([x, *ys, *([color] if color else [])])
    positions = [table.column(name) for name in fields]
    values = [{name: row[i] for name, i in zip(fields, positions)} for row in table.rows]
    spec: dict[str, Any] = {"$schema": SCHEMA, "data": {"values": values}}
    spec.update(_marks(table, kind, x, ys, color, bins))
    label = f"{', '.join(ys) or COUNT} by {x}" + (f" and {color}" if color else "")
    return spec, fields, label


def _marks(table: Table, kind: str, x: str, ys: list[str], color: str | None, bins: int | None) -> dict[str, Any]:
    """``mark``, ``encoding`` and any ``transform`` of one chart kind."""
    x_kind = kind_of_column(table, x)
    folded = len(ys) > 1
    if folded and kind == "pie":
        raise ShowError("chart(kind='pie') takes one y column")
    if ys:
        y_enc = {"field": "value" if folded else _field(ys[0]), "type": "quantitative", "title": ", ".join(ys)}
    else:  # no y: count the rows
        y_enc = {"aggregate": "count", "type": "quantitative", "title": COUNT}
    extra: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    if folded:  # several y columns: one series each, told apart by colour
        extra["transform"] = [{"fold": ys, "as": ["series", "value"]}]
        encoding["color"] = {"field": "series", "type": "nominal", "title": "series", "sort": ys}
    elif color:
        color_type = _type(kind_of_column(table, color), continuous=True)
        encoding["color"] = {"field": _field(color), "type": color_type, "title": color}
        if color_type == "nominal":
            encoding["color"]["sort"] = None

    if kind == "pie":
        mark: dict[str, Any] = {"type": "arc"}
        encoding["theta"] = {**y_enc, "stack": True}
        encoding["color"] = {"field": _field(x), "type": "nominal", "title": x, "sort": None}
    elif kind == "histogram":
        mark = {"type": "bar"}
        if x_kind in (NUMBER, TEMPORAL):
            encoding["x"] = {"field": _field(x), "type": _type(x_kind, continuous=True), "bin": {"maxbins": bins or 20}, "title": x}
        else:  # categories: a bar per value
            encoding["x"] = {"field": _field(x), "type": "nominal", "title": x, "sort": None}
        encoding["y"] = y_enc
    else:
        if kind == "bar":
            mark = {"type": "bar"}
            x_type = "ordinal" if x_kind in (NUMBER, TEMPORAL) else "nominal"  # a bar per value
        elif kind == "scatter":
            mark = {"type": "point", "filled": True}
            x_type = _type(x_kind, continuous=True)
        elif kind == "line":
            mark = {"type": "line", "point": len(table.rows) <= MAX_LINE_POINTS}
            x_type = _type(x_kind, continuous=True, ordered=True)
        else:  # area
            mark = {"type": "area"}
            x_type = _type(x_kind, continuous=True, ordered=True)
        encoding["x"] = {"field": _field(x), "type": x_type, "title": x}
        if x_type in ("nominal", "ordinal"):
            encoding["x"]["sort"] = None  # the rows' order: the query's ORDER BY decides
            encoding["x"]["axis"] = {"labelAngle": 0 if _short_labels(table, x) else -40}
        encoding["y"] = y_enc
    # Hovering a mark names its values (the same channels, without sorting or stacking).
    encoding["tooltip"] = [
        {key: channel[key] for key in ("field", "type", "title", "aggregate", "bin") if key in channel}
        for channel in encoding.values()
        if isinstance(channel, dict) and ("field" in channel or "aggregate" in channel)
    ]
    return {"mark": mark, "encoding": encoding, **extra}


def _type(kind: str, *, continuous: bool = False, ordered: bool = False) -> str:
    if kind == NUMBER:
        return "quantitative" if continuous else "ordinal"
    if kind == TEMPORAL:
        return "temporal"
    return "ordinal" if ordered else "nominal"


def _field(name: str) -> str:
    """A column name as a Vega-Lite field reference: dots and brackets would mean nesting."""
    return name.replace("\\", "\\\\").replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")


def _column(table: Table, role: str, name: Any) -> str:
    if not isinstance(name, str):
        raise ShowError(f"chart(): {role}= takes a column name (a string), not {type(name).__name__}")
    if name not in table.columns:
        raise ShowError(f"chart(): there is no column {name!r} for {role}=; the columns are: {', '.join(table.columns)}")
    return name


def _names(y: str | Sequence[str] | None) -> list[str]:
    if y is None:
        return []
    if isinstance(y, str):
        return [y]
    if isinstance(y, (list, tuple)) and y:
        return list(y)
    raise ShowError("chart(): y= takes a column name or a list of column names")


def _default_x(table: Table, kind: str) -> str:
    if kind == "histogram":
        for name in table.columns:
            if kind_of_column(table, name) in (NUMBER, TEMPORAL):
                return name
    return table.columns[0]


def _short_labels(table: Table, x: str) -> bool:
    """Few, short categories read best level; others slant (Vega-Lite's default is upright)."""
    i = table.column(x)
    labels = {str(row[i]) for row in table.rows}
    return len(labels) <= 8 and all(len(label) <= 16 for label in labels)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
