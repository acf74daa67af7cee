"""The Panel pieces a conversation is drawn with: safe markdown, data tables, charts, buttons.

Everything the model or the data can influence goes through :func:`markdown` (raw HTML
off, so a model's ``<img onerror=...>`` shows as text; math off, so ``$12`` stays money)
or a table whose cells are formatted as plain text. Buttons carry inline SVG icons
(:mod:`.icons`): nothing here makes the page fetch from another origin.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import panel as pn

from .icons import icon
from .render import cell

# Panel 1.9 renamed a widget's `name` to `label` (`name` goes in 2.0); older 1.x know only `name`.
LABEL = "label" if "label" in pn.widgets.Button.param else "name"
PAGE_SIZE = 10  # rows per page of a table in the chat


def labelled(text: str) -> dict[str, str]:
    """Widget keyword arguments that set its label on any Panel 1.x."""
    return {LABEL: text}


def label_of(widget: Any) -> str:
    return str(getattr(widget, LABEL, "") or "")


def set_label(widget: Any, text: str) -> None:
    setattr(widget, LABEL, text)


def markdown(text: str = "", **options: Any) -> pn.pane.Markdown:
    """A markdown pane for text that may come from the model or the data.

    Raw HTML is escaped (markdown-it's ``html`` option off), ``$…$`` is not math, and
    headings get no anchors.
    """
    options.setdefault("sizing_mode", "stretch_width")
    return pn.pane.Markdown(
        text, renderer="markdown-it", renderer_options={"html": False}, disable_math=True, disable_anchors=True, **options
    )


def safe_renderer(value: Any) -> Any:
    """A ChatMessage renderer: strings (what the person typed) as safe markdown."""
    if isinstance(value, str):
        return markdown(value)
    raise TypeError("not text")  # ChatMessage then tries its own renderers


def _color(kind: str, widget: type[Any]) -> dict[str, str]:
    """Panel 1.9 calls a button's colour ``color`` (``button_type`` is deprecated); older 1.x ``button_type``."""
    return {"color": kind} if "color" in widget.param else {"button_type": kind}


TURN = "py-agent-turn"  # the CSS class of a turn's column
TURN_STYLE = {
    "background": "var(--panel-surface-color, #f1f1f1)",
    "border-radius": "5px",
    "padding": "5px",
    "box-shadow": "0px 1px 2px 0px rgba(0, 0, 0, 0.2)",
}


class Message(pn.chat.ChatMessage):
    """A chat message whose own icons (edit, reactions) are inline SVG, like every button here."""

    def __init__(self, object: Any = None, **params: Any) -> None:
        params.setdefault("show_reaction_icons", False)
        params.setdefault(
            "reaction_icons",
            pn.chat.ChatReactionIcons(
                options={"favorite": icon("heart")}, active_icons={"favorite": icon("heart")}, default_layout=pn.Row, sizing_mode=None
            ),
        )
        super().__init__(object, **params)
        self.edit_icon.param.update(icon=icon("edit"), active_icon=icon("x"))
        if isinstance(object, pn.layout.ListLike) and TURN in object.css_classes:
            # A turn is one bubble (its column's style); Panel gave each text pane present at
            # creation a bubble of its own and a fitted width, which later panes would not get.
            for pane in object.select(pn.pane.Markdown):
                pane.param.update(css_classes=[c for c in pane.css_classes if c != "message"], sizing_mode="stretch_width")


class Chat(pn.chat.ChatInterface):
    """Panel's ChatInterface, with :class:`Message` for every message and SVG icons on its buttons."""

    _message_type = Message

    def __init__(self, **params: Any) -> None:
        properties = {name: {"icon": icon(svg)} for name, svg in
                      (("send", "send"), ("stop", "stop"), ("rerun", "repeat"), ("undo", "undo"), ("clear", "trash"))}
        for name, extra in (params.pop("button_properties", None) or {}).items():
            properties[name] = {**properties.get(name, {}), **extra}
        super().__init__(button_properties=properties, **params)


def button(text: str, icon_name: str | None = None, *, kind: str = "default", **options: Any) -> pn.widgets.Button:
    if icon_name is not None:
        options["icon"] = icon(icon_name)
    return pn.widgets.Button(**labelled(text), **_color(kind, pn.widgets.Button), **options)


def on_click(widget: pn.widgets.Button, action: Callable[[], Any]) -> pn.widgets.Button:
    widget.on_click(lambda _event: action())
    return widget


# -- tables ---------------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    if isinstance(value, Mapping) and "$blob" in value:
        return f"<{value['$blob']:,} bytes>"
    if isinstance(value, (Mapping, list, tuple)):
        return str(value)
    return value


def _unique(columns: Sequence[Any]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for column in columns:
        name = str(column)
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def frame(columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> Any:
    """A pandas DataFrame (what Panel's table widget takes) from a display's columns and rows."""
    import pandas as pd  # a Panel dependency

    names = _unique(columns)
    width = len(names)
    data = [[_text(v) for v in list(row)[:width]] + [None] * (width - len(row)) for row in rows]
    return pd.DataFrame(data, columns=names)


def data_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], **options: Any) -> pn.widgets.Tabulator:
    """A read-only, sortable, paged table; text cells are shown as text, never as HTML."""
    df = frame(columns, rows)
    formatters = {name: {"type": "plaintext"} for name, dtype in df.dtypes.items() if dtype == object}
    options.setdefault("pagination", "local" if len(df) > PAGE_SIZE else None)
    options.setdefault("page_size", PAGE_SIZE)
    options.setdefault("sizing_mode", "stretch_width")
    return pn.widgets.Tabulator(df, disabled=True, show_index=False, formatters=formatters, **options)


def csv_download(columns: Sequence[Any], rows: Sequence[Sequence[Any]], title: str) -> pn.widgets.FileDownload:
    def make() -> io.StringIO:
        buffer = io.StringIO()
        frame(columns, rows).to_csv(buffer, index=False)
        buffer.seek(0)
        return buffer

    name = re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-").lower() or "table"
    return pn.widgets.FileDownload(
        callback=make, filename=f"{name}.csv", **labelled("Download CSV"), icon=icon("download"), width=150,
        **_color("light", pn.widgets.FileDownload),
    )


def chart(spec: Mapping[str, Any]) -> pn.viewable.Viewable:
    """A Vega-Lite chart, drawn by Panel's Vega pane with the Vega libraries Panel ships."""
    spec = dict(spec)
    spec.setdefault("width", "container")
    spec.setdefault("height", "container")
    spec.setdefault("autosize", {"type": "fit", "contains": "padding"})  # axis labels inside the pane, not over what follows
    return pn.pane.Vega(spec, show_actions=False, sizing_mode="stretch_width", height=340)


def display_block(event: Mapping[str, Any]) -> pn.Column:
    """A ``display`` event: its title and row count, then the chart or the whole table (paged)."""
    columns, rows = list(event.get("columns") or []), list(event.get("rows") or [])
    title = str(event.get("title") or ("Chart" if event.get("kind") == "chart" else "Table"))
    total = int(event.get("total") or len(rows))
    parts: list[Any] = [markdown(f"**{cell(title, 200)}** · _{total:,} row{'s' if total != 1 else ''}_")]
    spec = event.get("spec")
    if event.get("kind") == "chart" and isinstance(spec, Mapping):
        parts.append(chart(spec))
    elif columns:
        parts.append(data_table(columns, rows))
    if columns and rows:
        parts.append(csv_download(columns, rows, title))
    if event.get("truncated"):
        parts.append(markdown(f"_The app received the first {len(rows):,} of {int(event.get('total') or 0):,} rows._"))
    return pn.Column(*parts, sizing_mode="stretch_width", css_classes=["py-agent-display"])
