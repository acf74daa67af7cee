"""Writing the agent's events to a terminal as they arrive.

Works on the events' JSON form (``event.to_dict()``), so fields and event types added
later (rows in ``changes``, ``tool_call``, ``display``, ``output_delta``, ``undone``) show
up without a change here breaking anything: unknown ones are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

ROWS_SHOWN = 5  # rows per table and operation in a change summary


class Style:
    """ANSI styles, or none (a pipe, ``NO_COLOR``, ``--no-color``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled and text else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)


def wants_color(stream: TextIO, choice: bool | None = None) -> bool:
    if choice is not None:
        return choice
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def count_summary(tables: Mapping[str, Mapping[str, int]]) -> str:
    """``authors: 1 inserted; books: 2 inserted, 1 updated``."""
    parts = []
    for table, counts in tables.items():
        done = [f"{n} {op}" for op, n in counts.items() if n]
        if done:
            parts.append(f"{table}: {', '.join(done)}")
    return "; ".join(parts) or "no rows"


def _value(value: Any) -> str:
    if isinstance(value, dict) and "$blob" in value:
        return f"<{value['$blob']} bytes>"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _row(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in row.items())


# Events a terminal has nothing to show for: the prompt, phase markers, the request it just
# read, a decision it just made, and history bookkeeping (``!undo`` shows what it changed).
SILENT = frozenset({"system", "signal", "user_message", "approval_decision", "history_point"})


class Renderer:
    """Writes events to ``out``; streams message and code deltas as they arrive."""

    def __init__(self, out: TextIO, *, color: bool | None = None) -> None:
        self.out = out
        self.style = Style(wants_color(out, color))
        self._open: str | None = None  # "message" | "code" while a streamed block is open
        self._at_line_start = True
        self._streamed: set[tuple[int, str]] = set()  # (step, "message"|"code"|"output") seen as deltas
        self._paused_steps = 0

    # -- low level ------------------------------------------------------------------------------
    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def line(self, text: str = "") -> None:
        self.close_block()
        self.write(text + "\n")

    def close_block(self) -> None:
        if self._open is not None:
            if not self._at_line_start:
                self.write("\n")
            self._open = None
            self._at_line_start = True

    def _stream(self, block: str, text: str, prefix: str) -> None:
        """Write streamed ``text`` into ``block``, putting ``prefix`` at the start of each line."""
        if self._open != block:
            self.close_block()
            self._open = block
            if block == "message":
                self.write(self.style.bold("assistant") + ": ")
                self._at_line_start = False
                prefix = ""
        for piece in text.splitlines(keepends=True):
            if self._at_line_start and prefix:
                self.write(prefix)
            styled = piece.rstrip("\n")
            self.write(self.style.dim(styled) if block == "code" else styled)
            if piece.endswith("\n"):
                self.write("\n")
                self._at_line_start = True
            else:
                self._at_line_start = False

    # -- events -----------------------------------------------------------------------------------
    def event(self, event: Mapping[str, Any]) -> None:
        handler = getattr(self, "on_" + str(event.get("type", "")), None)
        if handler is not None:
            handler(event)

    def on_message_delta(self, e: Mapping[str, Any]) -> None:
        self._streamed.add((e["step"], "message"))
        self._stream("message", e["text"], "")

    def on_code_delta(self, e: Mapping[str, Any]) -> None:
        if (e["step"], "code") not in self._streamed:
            self.close_block()
        self._streamed.add((e["step"], "code"))
        self._stream("code", e["text"], "    ")

    def on_assistant_reply(self, e: Mapping[str, Any]) -> None:
        step = e["step"]
        if (step, "message") not in self._streamed and e.get("message"):
            self._stream("message", e["message"], "")
        if (step, "code") not in self._streamed and e.get("code", "").strip():
            self.close_block()
            self._stream("code", e["code"], "    ")
        self.close_block()

    def on_reply_truncated(self, e: Mapping[str, Any]) -> None:
        if e.get("retry_with"):
            self.line(self.style.dim(f"  (the reply was cut off; asking again with room for {e['retry_with']:,} tokens)"))
        else:
            self.line(self.style.yellow(f"  the reply was cut off ({e.get('reason')}); the model is asked to reply again, shorter"))

    def on_malformed_reply(self, e: Mapping[str, Any]) -> None:
        self.line(self.style.yellow(f"  the model's reply could not be read ({e.get('problem', '')}); it was told so"))

    def on_validation_failed(self, e: Mapping[str, Any]) -> None:
        self.line(self.style.red("  refused before it ran:"))
        for line in str(e.get("message", "")).splitlines():
            self.line(self.style.red(f"    {line}"))

    def on_output_delta(self, e: Mapping[str, Any]) -> None:
        self._streamed.add((e["step"], "output"))
        self._stream("output", e["text"], "  │ ")

    def on_execution_result(self, e: Mapping[str, Any]) -> None:
        if (e["step"], "output") not in self._streamed:
            output = str(e.get("output") or "").rstrip("\n")
            for line in output.splitlines():
                self.line(self.style.cyan("  │ ") + line)
        self.close_block()
        if e.get("truncated"):
            self.line(self.style.dim("  (output shortened)"))
        if e.get("error"):
            lines = str(e["error"]).rstrip().splitlines()
            self.line(self.style.red("  ✗ " + (lines[0] if lines else "error")))
            for line in lines[1:]:
                self.line(self.style.red("    " + line))

    def on_changes(self, e: Mapping[str, Any]) -> None:
        status = e.get("status", "")
        if status == "pending":
            return  # shown by approval_required, with the question
        label = {"committed": self.style.green("saved"), "declined": self.style.yellow("declined, rolled back"),
                 "rolled_back": self.style.red("rolled back")}.get(status, status)
        self.line(f"  changes {label}: {count_summary(e.get('tables') or {})}")
        if status == "committed":
            self.rows(e.get("rows"))
        for statement in e.get("schema") or []:
            self.line(self.style.dim(f"    schema: {statement}"))

    def on_approval_required(self, e: Mapping[str, Any]) -> None:
        kind = e.get("kind", "write")
        if kind == "write":
            self.line(self.style.yellow(f"  changes waiting for your approval: {count_summary(e.get('tables') or {})}"))
            self.rows(e.get("rows"))
        else:
            self.line(self.style.yellow(f"  waiting for your approval ({kind}): {e.get('detail')}"))

    def on_tool_call(self, e: Mapping[str, Any]) -> None:
        status = e.get("status", "")
        if status == "started":
            return
        text = f"  ⚙ {e.get('name')}({_value(e.get('arguments'))}) {status}"
        if e.get("error"):
            text += f": {e['error']}"
        self.line(self.style.dim(text))

    def on_display(self, e: Mapping[str, Any]) -> None:
        title = e.get("title") or e.get("kind", "")
        self.line(self.style.bold(f"  {title}"))
        self.table(e.get("columns") or [], e.get("rows") or [], total=e.get("total"))

    def on_package_installed(self, e: Mapping[str, Any]) -> None:
        if e.get("error"):
            self.line(self.style.yellow(f"  could not install {e.get('name')}: {e['error']}"))
        else:
            self.line(self.style.dim(f"  installed {e.get('name')} {e.get('version', '')} ({float(e.get('duration_ms') or 0) / 1000:.1f} s)"))

    def on_compacted(self, e: Mapping[str, Any]) -> None:
        text = e.get("message") or (f"older steps were shortened to fit the model's context "
                                    f"({e.get('tokens_before', 0):,} → {e.get('tokens_after', 0):,} tokens of {e.get('window', 0):,})")
        self.line(self.style.dim(f"  ({text})"))

    def on_undone(self, e: Mapping[str, Any]) -> None:
        self.line(self.style.yellow(f"  undone: {count_summary(e.get('tables') or {})}"))
        self.rows(e.get("rows"))

    def on_error(self, e: Mapping[str, Any]) -> None:
        self.line(self.style.red(f"error: {e.get('message', '')}"))
        if e.get("hint"):
            self.line(f"  {e['hint']}")

    def on_turn_end(self, e: Mapping[str, Any]) -> None:
        reason = e.get("reason")
        if reason == "paused":  # the turn goes on after the approval: count its steps so far
            self._paused_steps += int(e.get("steps", 0))
            return
        words = {"done": "done", "exceeded": "stopped: the step limit was reached", "aborted": "stopped",
                 "error": "ended by an error"}.get(str(reason), str(reason))
        steps, self._paused_steps = int(e.get("steps", 0)) + self._paused_steps, 0
        text = f"({words} · {steps} step{'s' if steps != 1 else ''} · {e.get('input_tokens', 0):,} tokens in, {e.get('output_tokens', 0):,} out"
        if e.get("cost"):  # unknown (None) and free (0) are left out
            text += f" · ${e['cost']:.4f}"
        self.line(self.style.dim(text + ")"))

    # -- rows and tables --------------------------------------------------------------------------------
    def rows(self, rows: Mapping[str, Any] | None) -> None:
        """The changed rows of a ``changes``/``approval_required``/``undone`` event, a few per table."""
        for table, change in (rows or {}).items():
            for row in (change.get("inserted") or [])[:ROWS_SHOWN]:
                self.line(self.style.green(f"    + {table} ") + _row(row))
            for row in (change.get("updated") or [])[:ROWS_SHOWN]:
                key = _row(row.get("key") or {})
                after = row.get("after") or {}
                before = row.get("before") or {}
                diff = ", ".join(f"{k} {_value(before.get(k))} → {_value(v)}" for k, v in after.items())
                self.line(self.style.yellow(f"    ~ {table} [{key}] ") + diff)
            for row in (change.get("deleted") or [])[:ROWS_SHOWN]:
                self.line(self.style.red(f"    - {table} ") + _row(row))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, total: int | None = None, limit: int = 20) -> None:
        shown = [[_value(v) for v in row] for row in rows[:limit]]
        widths = [max([len(str(c))] + [len(r[i]) for r in shown if i < len(r)]) for i, c in enumerate(columns)]
        self.line("    " + "  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
        for row in shown:
            self.line("    " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
        if total is not None and total > len(shown):
            self.line(self.style.dim(f"    ({total - len(shown)} more)"))
