"""show() and chart(): the functions model code calls to put a table or a chart in front of
the person, and what they collected during the current step.

The workspace gives every namespace a :class:`Displays`: its :meth:`~Displays.functions` go
into the namespace, :meth:`~Displays.begin_step` and :meth:`~Displays.take` frame each step,
and the loop turns what was taken into ``display`` events after the step's
``execution_result``. Each call also prints a short summary into the step's output: that is
what the model reads (see ``summary.py``).

Safe to hand to model code: the functions run inside the step (under its time and memory
limits; they may run model code, e.g. a ``__str__``), read ORM objects only through
``sqlalchemy.inspect`` (never an attribute named by the caller), return ``None``, and copy
every value into plain JSON data at the call, so later changes to the objects do not show
and no host object leaves through them. A step may show at most ``max_displays`` results
and ``max_step_bytes`` of rows; past that a call prints why and shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .charts import KINDS, chart_spec
from .summary import summarize
from .tables import ShowError, Table, TableLimits, build_table, is_query_result

MAX_TITLE = 200  # characters of a title


@dataclass(frozen=True)
class DisplayLimits:
    """How much one display, and one step, may send to the page."""

    max_rows: int = 10_000  # rows of a table; more are counted (``total``) but not sent
    max_chart_rows: int = 5_000  # points of a chart (an SVG with more is slow to draw)
    max_bytes: int = 2_000_000  # JSON size of one display's rows; past it, rows are left out
    max_step_bytes: int = 8_000_000  # all displays of one step
    max_displays: int = 20  # displays per step
    max_cell_chars: int = 2_000  # characters of one text value (cut with "…")
    count_limit: int = 1_000_000  # rows counted for ``total`` (past it, total is a floor)


@dataclass(frozen=True)
class Shown:
    """One table or chart a step showed: the fields of the ``display`` event, without its step."""

    kind: str  # "table" | "chart"
    title: str | None
    columns: list[str]
    rows: list[list[Any]]
    total: int
    truncated: bool
    spec: dict[str, Any] | None = None

    def event_fields(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "total": self.total,
            "truncated": self.truncated,
            "spec": self.spec,
        }


class Displays:
    """The show()/chart() of one namespace and the displays of its current step."""

    def __init__(self, limits: DisplayLimits | None = None) -> None:
        self.limits = limits or DisplayLimits()
        self._shown: list[Shown] = []
        self._bytes = 0

    # -- the step's frame ----------------------------------------------------------------------------
    def begin_step(self) -> None:
        """Forget what an earlier step showed."""
        self._shown, self._bytes = [], 0

    def take(self) -> tuple[Shown, ...]:
        """What the step showed, in order (and forget it)."""
        shown = tuple(self._shown)
        self.begin_step()
        return shown

    def functions(self) -> dict[str, Callable[..., None]]:
        """``show`` and ``chart`` for the namespace: plain functions over this collector."""

        def show(data: Any, title: str | None = None, *, columns: Sequence[str] | None = None) -> None:
            """Show rows to the person as a table; print a short summary for yourself."""
            self.show(data, title, columns=columns)

        def chart(
            data: Any,
            x: str | None = None,
            y: str | Sequence[str] | None = None,
            kind: str = "bar",
            *,
            color: str | None = None,
            title: str | None = None,
            columns: Sequence[str] | None = None,
            bins: int | None = None,
        ) -> None:
            """Show rows to the person as a chart (bar, line, area, scatter, histogram, pie)."""
            self.chart(data, x, y, kind, color=color, title=title, columns=columns, bins=bins)

        return {"show": show, "chart": chart}

    # -- what model code calls ---------------------------------------------------------------------------
    def show(self, data: Any, title: Any = None, *, columns: Sequence[str] | None = None) -> None:
        """Show ``data`` as a table (see ``tables.py`` for what it accepts)."""
        limits = self._table_limits(self.limits.max_rows)
        if limits is None:
            return
        table = build_table(data, columns, limits)
        title = _title(title)
        self._add(Shown("table", title, table.columns, table.rows, table.total, table.truncated), table.size)
        print(summarize(table, what="table", title=title))

    def chart(
        self,
        data: Any,
        x: str | None = None,
        y: str | Sequence[str] | None = None,
        kind: str = "bar",
        *,
        color: str | None = None,
        title: Any = None,
        columns: Sequence[str] | None = None,
        bins: int | None = None,
    ) -> None:
        """Show ``data`` as a chart: ``x`` and ``y`` name columns (defaults: the first column, and
        the first number column after it; bar and pie charts without one count rows)."""
        if kind not in KINDS:  # before the data is read: a result can be read only once
            raise ShowError(f"chart(kind={kind!r}) is not a chart kind; use one of: {', '.join(KINDS)}")
        if bins is not None and (not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= 200):
            raise ShowError("chart(): bins= takes a whole number from 1 to 200")
        limits = self._table_limits(self.limits.max_chart_rows)
        if limits is None:
            return
        table = build_table(data, columns, limits)
        spec, fields, label = chart_spec(table, kind, x, y, color, bins)
        title = _title(title)
        if title:
            spec["description"] = title  # read out by screen readers
        positions = [table.column(name) for name in fields]
        rows = [[row[i] for i in positions] for row in table.rows]
        # The plotted values travel twice: as the spec's data and as the "Show data" rows.
        self._add(Shown("chart", title, fields, rows, table.total, table.truncated, spec), 2 * table.size)
        print(summarize(_plotted(table, fields, rows), what=f"{kind} chart", title=title, detail=label))

    def show_last(self, value: Any) -> bool:
        """A step's last expression: shown as a table if it is a query result (as in a notebook)."""
        if not is_query_result(value):
            return False
        self.show(value)
        return True

    # -- limits ----------------------------------------------------------------------------------------------
    def _table_limits(self, max_rows: int) -> TableLimits | None:
        """The limits for the next display, or None (and a note printed) when the step has used them up."""
        limits = self.limits
        left = limits.max_step_bytes - self._bytes
        if len(self._shown) >= limits.max_displays or left < 1_000:
            reason = f"{limits.max_displays} tables or charts" if len(self._shown) >= limits.max_displays else "as many rows as a step may show"
            print(f"[not shown: this step already showed {reason}; show fewer, or show the rest in the next step]")
            return None
        return TableLimits(max_rows=max_rows, max_bytes=min(limits.max_bytes, left), max_cell_chars=limits.max_cell_chars, count_limit=limits.count_limit)

    def _add(self, shown: Shown, size: int) -> None:
        self._shown.append(shown)
        self._bytes += size


def _title(title: Any) -> str | None:
    if title is None:
        return None
    text = title if isinstance(title, str) else str(title)
    text = str.__str__(text).strip()
    return (text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…") or None


def _plotted(table: Table, fields: list[str], rows: list[list[Any]]) -> Table:
    """The table of a chart's plotted columns (for its summary)."""
    return replace(table, columns=fields, rows=rows, kinds=[table.kinds[table.column(f)] for f in fields])
