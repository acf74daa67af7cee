"""Events as markdown: the text of the Panel app's chat, as pure functions (no Panel import).

Every renderer takes an event's JSON form (``event.to_dict()``), so event types that the
contract defines before their producer lands (``display``, ``tool_call``) render the same
way as the rest, and a test can call each one without a server. The widgets around the
text (tables, charts, buttons) are in :mod:`.blocks`; this module decides what is *said*.

Markdown from the model (its message, cell values, output) is shown as text: the panes
that display it have raw HTML switched off (:func:`py_agent.panel_ui.blocks.markdown`), and
values placed in tables are escaped here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import events as ev
from ..pricing import format_cost

ROWS_SHOWN = 20  # rows per table and operation in a preview (events carry at most this many by default)
TABLE_ROWS_IN_TEXT = 10  # rows of a `display` table in its text form (the widget shows them all)

SIGNAL_TEXT = {
    "completion": "Asking the model…",
    "validation": "Checking the code…",
    "execution": "Running the code…",
    "approval": "Waiting for your decision…",
    "exceeded": "The step limit was reached.",
}

CHANGE_TITLES = {
    "committed": "Saved",
    "pending": "Waiting for your approval",
    "declined": "Declined: rolled back",
    "rolled_back": "Rolled back (the step failed)",
}

Event = ev.Event | Mapping[str, Any]


def as_dict(event: Event) -> Mapping[str, Any]:
    """The JSON form of an event (events pass through unchanged if they already are)."""
    return event.to_dict() if isinstance(event, ev.Event) else event


# -- small pieces ---------------------------------------------------------------------------------


def fence(text: str, language: str = "") -> str:
    """A fenced code block that stays closed whatever backticks ``text`` holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]<>()#+!|~$-])")


def cell(value: Any, limit: int = 80) -> str:
    """A value as the text of a markdown table cell (escaped, one line, shortened)."""
    if isinstance(value, Mapping) and "$blob" in value:
        text = f"<{value['$blob']:,} bytes>"
    elif value is None:
        return "–"
    else:
        text = str(value)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def markdown_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], *, align_right: Sequence[int] = ()) -> str:
    head = "| " + " | ".join(cell(c) for c in columns) + " |"
    rule = "| " + " | ".join("---:" if i in align_right else "---" for i in range(len(columns))) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def changes_table(tables: Mapping[str, Mapping[str, int]]) -> str:
    """Rows inserted / updated / deleted per table, as a markdown table."""
    rows = [[name, *(counts.get(op, 0) for op in ("inserted", "updated", "deleted"))] for name, counts in tables.items()]
    return markdown_table(["table", "inserted", "updated", "deleted"], rows, align_right=(1, 2, 3))


def count_summary(tables: Mapping[str, Mapping[str, int]]) -> str:
    """``authors +1 ~2 −3; books +1`` (what the page's notes say)."""
    parts = []
    for table, counts in tables.items():
        signs = [f"{sign}{counts[op]}" for op, sign in (("inserted", "+"), ("updated", "~"), ("deleted", "−")) if counts.get(op)]
        if signs:
            parts.append(f"{table} {' '.join(signs)}")
    return "; ".join(parts) or "no rows"


def rows_preview(rows: Mapping[str, Any] | None, tables: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """The row-level preview of a ``changes``/``approval_required``/``undone`` event.

    Per table: inserted rows (their values), updated rows (key, column: before → after),
    deleted rows (their values); "… and N more" when the event carried fewer rows than
    ``tables`` counts.
    """
    blocks: list[str] = []
    for table, change in (rows or {}).items():
        counts = (tables or {}).get(table, {})
        for op, title in (("inserted", "Inserted"), ("updated", "Updated"), ("deleted", "Deleted")):
            items = list(change.get(op) or [])
            if not items:
                continue
            shown = items[:ROWS_SHOWN]
            if op == "updated":
                lines = []
                for item in shown:
                    key = ", ".join(f"{k}={v}" for k, v in (item.get("key") or {}).items())
                    before, after = item.get("before") or {}, item.get("after") or {}
                    for column in after or before:
                        lines.append([key, column, before.get(column), after.get(column)])
                table_md = markdown_table(["row", "column", "before", "after"], lines)
            else:
                columns = list(dict.fromkeys(k for item in shown for k in item))
                table_md = markdown_table(columns, [[item.get(c) for c in columns] for item in shown])
            more = max(int(counts.get(op, len(items))), len(items)) - len(shown)
            note = f"\n\n_… and {more:,} more_" if more > 0 else ""
            blocks.append(f"**{cell(table)}** · {title}\n\n{table_md}{note}")
    return "\n\n".join(blocks)


def cost_text(cost: float | None, total: float | None) -> str:
    """`` · $0.0123 (conversation $0.0456)``; nothing when neither is known."""
    if cost is None and total is None:
        return ""
    text = f" · {format_cost(cost)}"
    if total is not None and total != cost:
        text += f" (conversation {format_cost(total)})"
    return text


def point_summary(point: Mapping[str, Any]) -> str:
    """One line for a history point: ``#3 · “add Ann” · authors +1``."""
    request = str(point.get("request") or "").strip()
    what = {"turn": "", "undo": "Undo", "restore": "Restore", "import": "Import"}.get(str(point.get("kind")), str(point.get("kind")))
    label = f"“{request[:60]}{'…' if len(request) > 60 else ''}”" if request else what or "a change"
    if what and request:
        label = f"{what}: {label}"
    text = f"#{point.get('id')} · {label} · {count_summary(point.get('tables') or {})}"
    if point.get("undone"):
        text += " · undone"
    return text


# -- one renderer per event type ----------------------------------------------------------------------


def render_system(e: Mapping[str, Any]) -> str:
    # The prompt itself is for the model; only its warnings concern a person.
    warnings = e.get("warnings") or []
    if not warnings:
        return ""
    return "**Prompt warnings:**\n" + "\n".join(f"- {w}" for w in warnings)


def render_signal(e: Mapping[str, Any]) -> str:
    return SIGNAL_TEXT.get(str(e.get("signal")), str(e.get("signal")))


def render_user_message(e: Mapping[str, Any]) -> str:
    return str(e.get("content", ""))


def render_message_delta(e: Mapping[str, Any]) -> str:
    return str(e.get("text", ""))


def render_code_delta(e: Mapping[str, Any]) -> str:
    return str(e.get("text", ""))


def render_output_delta(e: Mapping[str, Any]) -> str:
    return str(e.get("text", ""))


def render_assistant_reply(e: Mapping[str, Any]) -> str:
    message, code = str(e.get("message") or "").strip(), str(e.get("code") or "")
    parts = [message] if message else []
    if code.strip():
        parts.append(fence(code, "python"))
    return "\n\n".join(parts)


def render_reply_truncated(e: Mapping[str, Any]) -> str:
    limit = e.get("limit")
    if e.get("reason") == "max_tokens":
        where = f"at {limit:,} tokens" if isinstance(limit, int) else "at the model's output limit"
    else:
        where = f"past {limit:,} characters" if isinstance(limit, int) else "for being too long"
    if e.get("retry_with"):
        return f"_The reply was cut off {where}; asked again with room for {e['retry_with']:,} tokens._"
    return f"**The reply was cut off {where}**; none of it ran, and the model was asked for a shorter one."


def render_malformed_reply(e: Mapping[str, Any]) -> str:
    return f"**The model's reply could not be read:** {e.get('problem', '')}\n\nIt is asked to try again."


def render_validation_failed(e: Mapping[str, Any]) -> str:
    items = [
        f"- line {v.get('line')}: {v.get('message', '')}" if v.get("line") else f"- {v.get('message', '')}"
        for v in e.get("violations") or []
    ]
    body = "\n".join(items) if items else str(e.get("message", ""))
    return f"**Code refused before it ran** (nothing was executed; the model is asked to rewrite it):\n\n{body}"


def render_package_installed(e: Mapping[str, Any]) -> str:
    name, version = e.get("name", "?"), e.get("version") or ""
    if e.get("error"):
        return f"**Could not install {name}:** {e['error']}"
    seconds = float(e.get("duration_ms") or 0) / 1000
    return f"_Installed {name} {version} ({seconds:.1f} s)_"


def render_execution_result(e: Mapping[str, Any]) -> str:
    parts = []
    output = str(e.get("output") or "")
    if output.strip():
        parts.append("**Output**" + (" (truncated)" if e.get("truncated") else "") + "\n\n" + fence(output, "text"))
    if e.get("error"):
        parts.append("**The code raised an error** (the step is rolled back and the model sees it):\n\n" + fence(str(e["error"]), "text"))
    return "\n\n".join(parts) or "_The code ran and printed nothing._"


def render_display(e: Mapping[str, Any]) -> str:
    """The text form of a table or chart (the app shows a table widget or the chart itself)."""
    columns, rows = list(e.get("columns") or []), list(e.get("rows") or [])
    total = int(e.get("total") or len(rows))
    title = str(e.get("title") or ("Chart" if e.get("kind") == "chart" else "Table"))
    shown = rows[:TABLE_ROWS_IN_TEXT]
    note = f"{total:,} row{'s' if total != 1 else ''}"
    if len(shown) < total:
        note += f", the first {len(shown):,} shown"
    text = f"**{cell(title, 200)}** · _{note}_"
    return text + ("\n\n" + markdown_table(columns, shown) if columns else "")


def render_tool_call(e: Mapping[str, Any]) -> str:
    status = str(e.get("status") or "")
    arguments = e.get("arguments")
    args = cell(arguments if isinstance(arguments, str) else _compact(arguments), 120)
    words = {"started": "running…", "finished": "done", "failed": "failed", "declined": "declined", "blocked": "blocked"}.get(status, status)
    text = f"⚙ `{e.get('name', '?')}`({args}) · {words}"
    if e.get("duration_ms") and status != "started":
        text += f" · {float(e['duration_ms']):,.0f} ms"
    if e.get("cost"):
        text += f" · {format_cost(e['cost'])}"
    if e.get("error"):
        text += f"\n\n{e['error']}"
    return text


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v!r}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(repr(v) for v in value)
    return "" if value is None else repr(value)


def render_changes(e: Mapping[str, Any]) -> str:
    status = str(e.get("status", ""))
    title = CHANGE_TITLES.get(status, status)
    tables = e.get("tables") or {}
    parts = [f"**{title}**", changes_table(tables)]
    preview = rows_preview(e.get("rows"), tables)
    if preview:
        parts.append(preview)
    for statement in e.get("schema") or []:
        parts.append(fence(str(statement), "sql"))
    return "\n\n".join(parts)


def render_approval_required(e: Mapping[str, Any]) -> str:
    kind = e.get("kind") or "write"
    tables = e.get("tables") or {}
    if kind == "import":
        intro = "**Replace the database with the imported file?** These rows would change; nothing is saved until you approve."
    elif kind == "call":
        detail = e.get("detail") or {}
        intro = f"**Step {e.get('step')} wants to call `{detail.get('name', '?')}`** ({cell(_compact(detail.get('arguments')), 200)}). Approve to let it run."
    else:
        intro = f"**Step {e.get('step')} wants to change the database.** Approve to save these changes, or decline to roll them back."
    parts = [intro]
    if tables:
        parts.append(changes_table(tables))
    preview = rows_preview(e.get("rows"), tables)
    if preview:
        parts.append(preview)
    for statement in e.get("schema") or []:
        parts.append(fence(str(statement), "sql"))
    if kind == "import" and isinstance(e.get("detail"), Mapping):
        problems = list(e["detail"].get("warnings") or [])
        if problems:
            parts.append("\n".join(f"- {p}" for p in problems))
    return "\n\n".join(parts)


def render_approval_decision(e: Mapping[str, Any]) -> str:
    if not e.get("approved"):
        return "**Declined:** rolling the changes back."
    if e.get("remember"):
        return "**Approved** for the rest of this conversation: saving the changes, and later ones without asking."
    return "**Approved:** saving the changes."


def render_compacted(e: Mapping[str, Any]) -> str:
    before, after, window = (int(e.get(k) or 0) for k in ("tokens_before", "tokens_after", "window"))
    why = "the server said it was too long" if e.get("reason") == "overflow" else "it neared the model's context window"
    left = []
    if e.get("steps"):
        left.append(f"{e['steps']} older step{'s' if e['steps'] != 1 else ''} shortened")
    if e.get("turns"):
        left.append(f"{e['turns']} earlier request{'s' if e['turns'] != 1 else ''} left out")
    detail = f" ({', '.join(left)})" if left else ""
    return f"_The conversation was shortened for the model{detail}, as {why}: about {before:,} → {after:,} tokens of {window:,}._"


def render_history_point(e: Mapping[str, Any]) -> str:
    point = e.get("point") or {}
    return f"_History point {point_summary(point)}_"


def render_undone(e: Mapping[str, Any]) -> str:
    what = "Restored an earlier point of the history" if e.get("kind") == "restore" else "Undone"
    reverted = ", ".join(f"#{i}" for i in e.get("reverted") or [])
    tables = e.get("tables") or {}
    text = f"**{what}**" + (f" ({reverted})" if reverted else "") + f": {count_summary(tables)}."
    preview = rows_preview(e.get("rows"), tables)
    return text + ("\n\n" + preview if preview else "")


def render_error(e: Mapping[str, Any]) -> str:
    if e.get("kind") == "undo":
        text = f"**Nothing was undone:** {e.get('message', '')}"
    else:
        text = f"**Error ({e.get('kind', 'error')}):** {e.get('message', '')}"
    return text + (f"\n\nWhat to do: {e['hint']}" if e.get("hint") else "")


def render_turn_end(e: Mapping[str, Any], model: str = "") -> str:
    """The turn's last line; ``model`` (from its replies) is named, and a demo's made-up tokens are not counted."""
    real = not model.startswith("demo")
    tokens = int(e.get("input_tokens") or 0) + int(e.get("output_tokens") or 0)
    usage = f" · {tokens:,} tokens" if tokens and real else ""
    steps = int(e.get("steps") or 0)
    counted = f"{steps} step{'s' if steps != 1 else ''}"
    cost = cost_text(e.get("cost"), e.get("total_cost")) if real else ""
    by = f" · {model}" if model else ""
    reason = e.get("reason")
    if reason == "done":
        return f"_Done · {counted}{usage}{cost}{by}_"
    if reason == "exceeded":
        return f"**Stopped:** the step limit was reached ({counted}). Send a message to continue."
    if reason == "paused":
        return "_Waiting for your decision._"
    if reason == "aborted":
        return f"**Stopped** at your request; nothing of the unfinished step was saved.{cost}"
    return f"_The turn ended with an error; you can send another message.{cost}_"


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "system": render_system,
    "signal": render_signal,
    "user_message": render_user_message,
    "message_delta": render_message_delta,
    "code_delta": render_code_delta,
    "assistant_reply": render_assistant_reply,
    "reply_truncated": render_reply_truncated,
    "malformed_reply": render_malformed_reply,
    "validation_failed": render_validation_failed,
    "package_installed": render_package_installed,
    "output_delta": render_output_delta,
    "execution_result": render_execution_result,
    "display": render_display,
    "tool_call": render_tool_call,
    "changes": render_changes,
    "approval_required": render_approval_required,
    "approval_decision": render_approval_decision,
    "compacted": render_compacted,
    "history_point": render_history_point,
    "undone": render_undone,
    "error": render_error,
    "turn_end": render_turn_end,
}

# Types the contract (PLAN.md) defines whose producers may not be in events.py yet.
CONTRACT_TYPES = frozenset({"display", "tool_call"})


def render_event(event: Event) -> str:
    """The markdown for one event (deltas give their text fragment; unknown types nothing)."""
    data = as_dict(event)
    renderer = RENDERERS.get(str(data.get("type", "")))
    return renderer(data) if renderer else ""
