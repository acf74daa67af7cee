"""Structured results: show() and chart() put tables and charts in front of the person.

Model code calls ``show(rows, title=...)`` and ``chart(rows, x=..., y=..., kind=...)``; a
step's last expression that is a query result is shown the same way. The person gets a
``display`` event (``py_agent.events.Display``: columns, JSON-safe rows, total, truncated,
and for a chart a Vega-Lite spec with its data inline); the model reads a compact summary
in the step's output. ``values.py`` says how values become JSON, ``tables.py`` what is
accepted, ``charts.py`` the chart kinds, ``summary.py`` what the model reads, and
``displays.py`` the functions and their limits.
"""

from .charts import KINDS as CHART_KINDS
from .displays import DisplayLimits, Displays, Shown
from .summary import summarize
from .tables import ShowError, Table, TableLimits, build_table, is_query_result
from .values import json_safe

__all__ = [
    "CHART_KINDS",
    "DisplayLimits",
    "Displays",
    "ShowError",
    "Shown",
    "Table",
    "TableLimits",
    "build_table",
    "is_query_result",
    "json_safe",
    "summarize",
]
