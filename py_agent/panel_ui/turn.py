"""One assistant message of the chat, built from the events of a turn as they arrive.

:class:`TurnView` turns events into Panel objects: text blocks (from :mod:`.render`),
tables and charts (``display``), the approval card with its three buttons, an "Undo"
button under each committed history point, and a live area at the bottom for what is
still streaming (the model's message and code, the running step's output, the phase).
The same class draws a turn live and again from the conversation's log after a reload,
so both look the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import panel as pn

from .blocks import TURN, TURN_STYLE, button, display_block, markdown, on_click, set_label
from .render import (
    Event,
    as_dict,
    count_summary,
    fence,
    render_approval_decision,
    render_approval_required,
    render_event,
    render_signal,
    render_tool_call,
    render_turn_end,
)

LIVE_OUTPUT_CHARS = 4000  # the tail of a running step's output that is shown while it runs


class Actions(Protocol):
    """What the buttons of a turn do (the chat provides it)."""

    def decide(self, approved: bool, remember: bool = False) -> None: ...

    def undo(self, point: int | None = None) -> str: ...


class TurnView:
    """The Panel objects of one assistant message (``column``), fed event by event."""

    def __init__(self, actions: Actions | None = None) -> None:
        self.actions = actions
        self.blocks: list[str] = []  # the text blocks so far, in order
        self.message = ""  # the current step's message, as streamed so far
        self.code = ""  # the current step's code, as streamed so far
        self.output = ""  # what the running step printed so far
        self.status = ""  # what is happening now, from signal events
        self.model = ""  # the model that answered (from assistant_reply)
        self.ended: Mapping[str, Any] | None = None
        self.decisions: dict[int, list[pn.widgets.Button]] = {}  # step -> Approve, Decline, Allow
        self.undo_buttons: dict[int, pn.widgets.Button] = {}  # history point id -> its Undo button
        self.points: dict[int, pn.pane.Markdown] = {}
        self._tools: dict[str, pn.pane.Markdown] = {}
        self._text: pn.pane.Markdown | None = None  # the last text pane, which new text joins
        self._body = pn.Column(sizing_mode="stretch_width", margin=0)
        self._streaming = markdown(visible=False, margin=(0, 10))
        self._live_output = markdown(visible=False, margin=(0, 10))
        self._status = markdown(visible=False, margin=(0, 10))
        self.column = pn.Column(
            self._body, self._streaming, self._live_output, self._status, sizing_mode="stretch_width", css_classes=[TURN], styles=TURN_STYLE
        )

    # -- events -------------------------------------------------------------------------------
    def add(self, event: Event) -> None:
        e = as_dict(event)
        kind = e.get("type")
        if kind == "message_delta":
            self.message += str(e.get("text", ""))
            self._show_streaming()
        elif kind == "code_delta":
            self.code += str(e.get("text", ""))
            self._show_streaming()
        elif kind == "output_delta":
            self.output += str(e.get("text", ""))
            tail = self.output[-LIVE_OUTPUT_CHARS:]
            self._live_output.object = "**Output so far**\n\n" + fence(tail, "text")
            self._live_output.visible = True
        elif kind == "signal":
            self.status = render_signal(e)
            self._status.object = f"_{self.status}_"
            self._status.visible = True
        elif kind == "user_message":
            pass  # the chat already shows the person's message
        elif kind == "changes" and e.get("status") == "pending":
            pass  # approval_required follows with the same preview
        elif kind in ("assistant_reply", "malformed_reply"):
            self.message = self.code = ""  # the whole reply replaces what streamed
            self._show_streaming()
            self.model = str(e.get("model") or self.model)
            self._append_text(render_event(e))
        elif kind == "execution_result":
            self.output = ""
            self._live_output.visible = False
            self._append_text(render_event(e))
        elif kind == "display":
            self._append_widget(display_block(e))
        elif kind == "tool_call":
            self._tool_call(e)
        elif kind == "approval_required":
            self._approval_card(e)
        elif kind == "approval_decision":
            self.mark_decided(int(e.get("step") or 0), bool(e.get("approved")), bool(e.get("remember")))
            self._append_text(render_approval_decision(e))
        elif kind == "history_point":
            self._history_point(e.get("point") or {})
        elif kind == "turn_end":
            self.status = ""
            self._status.visible = False
            self.ended = e
            self._append_text(render_turn_end(e, self.model))
        else:
            self._append_text(render_event(e))

    # -- pieces -------------------------------------------------------------------------------
    def _show_streaming(self) -> None:
        parts = [self.message.strip()] if self.message.strip() else []
        if self.code.strip():
            parts.append(fence(self.code, "python"))
        self._streaming.object = "\n\n".join(parts)
        self._streaming.visible = bool(parts)

    def _append_text(self, text: str) -> None:
        if not text:
            return
        self.blocks.append(text)
        if self._text is not None:
            self._text.object = f"{self._text.object}\n\n{text}"
        else:
            self._text = markdown(text, margin=(0, 10))
            self._body.append(self._text)

    def _append_widget(self, widget: Any) -> None:
        self._text = None
        self._body.append(widget)

    def _tool_call(self, e: Mapping[str, Any]) -> None:
        key = str(e.get("id") or len(self._tools))
        text = render_tool_call(e)
        pane = self._tools.get(key)
        if pane is None:
            pane = self._tools[key] = markdown(text, margin=(0, 10))
            self._append_widget(pane)
        else:
            pane.object = text

    def _approval_card(self, e: Mapping[str, Any]) -> None:
        step = int(e.get("step") or 0)
        text = render_approval_required(e)
        self.blocks.append(text)
        approve = button("Approve", "check", kind="primary")
        decline = button("Decline", "x")
        allow = button("Allow for the rest of this conversation", "checks", kind="light")
        buttons = [approve, decline, allow]
        if self.actions is not None:
            actions = self.actions
            on_click(approve, lambda: actions.decide(True))
            on_click(decline, lambda: actions.decide(False))
            on_click(allow, lambda: actions.decide(True, remember=True))
        else:
            for b in buttons:
                b.disabled = True
        self.decisions[step] = buttons
        card = pn.Column(
            markdown(text, margin=(0, 10)),
            pn.Row(*buttons),
            sizing_mode="stretch_width",
            styles={"border": "1px solid #d0a000", "border-radius": "6px", "background": "#fffbea"},
            css_classes=["py-agent-approval"],
        )
        self._append_widget(card)

    def mark_decided(self, step: int, approved: bool, remember: bool = False) -> None:
        """The decision on ``step`` is taken: its buttons say which and take no more clicks."""
        buttons = self.decisions.get(step)
        if not buttons:
            return
        for b in buttons:
            b.disabled = True
        chosen, label = (buttons[2], "Allowed for this conversation") if remember and approved else (
            (buttons[0], "Approved") if approved else (buttons[1], "Declined")
        )
        set_label(chosen, label)

    def mark_discarded(self, step: int) -> None:
        """The step waited for a decision that can no longer be taken (its transaction is gone)."""
        for b in self.decisions.get(step, []):
            b.disabled = True

    def reopen(self, step: int) -> None:
        """Let the buttons of ``step`` be clicked again (a decision that could not be carried out)."""
        for b, label in zip(self.decisions.get(step, []), ("Approve", "Decline", "Allow for the rest of this conversation")):
            b.disabled = False
            set_label(b, label)

    def _history_point(self, point: Mapping[str, Any]) -> None:
        """A committed turn became (or extended) a history point: offer to undo it."""
        ident = int(point.get("id") or 0)
        if point.get("kind") not in ("turn", "import"):
            return
        text = f"_Saved as history point #{ident}: {count_summary(point.get('tables') or {})}._"
        if ident in self.points:
            self.points[ident].object = text
            return
        note = self.points[ident] = markdown(text, margin=(0, 10))
        undo = button("Undo", "undo", kind="light", width=110)
        undo.disabled = not point.get("undoable") or bool(point.get("undone")) or self.actions is None
        if point.get("undone"):
            set_label(undo, "Undone")
        if self.actions is not None:
            actions = self.actions

            def press() -> None:
                undo.disabled = True
                set_label(undo, "Undoing…")
                actions.undo(ident)

            on_click(undo, press)
        self.undo_buttons[ident] = undo
        self._append_widget(pn.Row(note, undo, sizing_mode="stretch_width", css_classes=["py-agent-history-point"]))

    def mark_points(self, points: Mapping[int, Mapping[str, Any]]) -> None:
        """Bring the Undo buttons in line with the history (undone, or no longer the last)."""
        for ident, undo in self.undo_buttons.items():
            point = points.get(ident)
            if point is None:
                continue
            if point.get("undone"):
                undo.disabled = True
                set_label(undo, "Undone")
            else:
                undo.disabled = not point.get("undoable") or self.actions is None
                set_label(undo, "Undo")

    # -- text -----------------------------------------------------------------------------------
    def markdown(self) -> str:
        """All the text of the message, streaming parts and status included."""
        streaming = [self.message.strip()] if self.message.strip() else []
        if self.code.strip():
            streaming.append(fence(self.code, "python"))
        status = [f"_{self.status}_"] if self.status else []
        return "\n\n".join(self.blocks + streaming + status) or "…"
