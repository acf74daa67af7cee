"""The Panel app: event rendering, the widgets of a turn, and turns driven through the ChatInterface.

No browser: the ChatInterface is driven through its Python API inside an event loop
(what a click in the page does is ``button.clicks += 1``). Stopping is in
test_panel_stop.py, reloads in test_panel_reload.py, the page's resources in
test_panel_offline.py, and the browser itself in tests/e2e/panel.spec.ts.
"""

from __future__ import annotations

import asyncio
import html
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import panel as pn
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from py_agent import ConfigurationError, ScriptedProvider
from py_agent import events as ev
from py_agent.demo import Author, Tag, create_demo_engine
from py_agent.demo.model import DemoModel
from py_agent.panel_app import (
    DEMO_MODEL_ID,
    RENDERERS,
    AgentChat,
    TurnView,
    create_app,
    default_model_id,
    fence,
    make_provider,
    render_event,
    table_counts,
    table_rows,
)
from py_agent.panel_ui import blocks
from py_agent.panel_ui.icons import icon
from py_agent.panel_ui.render import CONTRACT_TYPES, cell, rows_preview
from py_agent.providers.errors import AuthenticationError

pytestmark = [
    pytest.mark.cpython_only,  # Panel is not part of the browser build
    # bokeh's own use of pandas 3, not ours
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]

ROOT = Path(__file__).resolve().parent.parent
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "PY_AGENT_MODEL")

ADD = {"message": "Adding **Ann Leckie** now.", "code": "session.add(Author(name='Ann Leckie'))\nprint('added Ann')"}
DONE = {"message": "Ann Leckie is in the shop.", "code": ""}


# -- pure rendering ------------------------------------------------------------------------

TABLES = {"authors": {"inserted": 1, "updated": 2, "deleted": 3}}
ROWS = {
    "authors": {
        "key": ["id"],
        "inserted": [{"id": 11, "name": "Ann Leckie"}],
        "updated": [{"key": {"id": 3}, "before": {"born": "1920"}, "after": {"born": "1921"}}],
        "deleted": [{"id": 7, "name": "Old Name"}],
    }
}
POINT = {"id": 3, "kind": "turn", "request": "add Ann", "at": "2026-11-02T10:00:00Z", "tables": {"authors": {"inserted": 1}},
         "undoable": True, "undone": False, "note": "", "reverts": []}
DISPLAY = ev.Display(1, "table", "Books by year", ["year", "books"], [[2001, 3], [2002, 5]], 2).to_dict()
CHART_SPEC = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "mark": "bar",
              "data": {"values": [{"year": 2001, "books": 3}, {"year": 2002, "books": 5}]},
              "encoding": {"x": {"field": "year", "type": "ordinal"}, "y": {"field": "books", "type": "quantitative"}}}
TOOL_CALL = ev.ToolCall(1, "c1", "lookup_isbn", {"isbn": "123"}, "finished", "ok", None, 12.0).to_dict()

# One example per event type (the contract's types too), with what its markdown must say.
EXAMPLES: list[tuple[Any, list[str]]] = [
    (ev.SystemInstruction("the prompt", ["unknown placeholder {x}"]), ["Prompt warnings", "unknown placeholder {x}"]),
    (ev.SignalEvent(ev.Signal.EXECUTION, 1), ["Running the code"]),
    (ev.UserMessageEvent("add Ann"), ["add Ann"]),
    (ev.MessageDelta(1, "Add"), ["Add"]),
    (ev.CodeDelta(1, "session."), ["session."]),
    (ev.AssistantReply(1, "Adding Ann.", "session.add(x)"), ["Adding Ann.", "```python\nsession.add(x)\n```"]),
    (ev.ReplyTruncated(1, "max_tokens", 4096, 9000, "reply again, shorter"), ["cut off at 4,096 tokens", "shorter"]),
    (ev.MalformedReply(1, "the reply is not JSON", "{oops"), ["could not be read", "the reply is not JSON"]),
    (
        ev.ValidationFailed(1, [{"rule": "dunder", "message": "no dunder access", "line": 2, "col": 0}], "x"),
        ["refused before it ran", "line 2: no dunder access"],
    ),
    (ev.PackageInstalled(1, "tabulate", "0.10.0", 400.0), ["Installed tabulate 0.10.0 (0.4 s)"]),
    (ev.OutputDelta(1, "half a line"), ["half a line"]),
    (ev.ExecutionResult(1, "42\n", "ZeroDivisionError: division by zero"), ["**Output**", "42", "ZeroDivisionError"]),
    (DISPLAY, ["Books by year", "2 rows", "| 2001 | 3 |"]),
    (TOOL_CALL, ["`lookup_isbn`", "isbn=", "done", "12 ms"]),
    (ev.Changes(1, TABLES, "committed", ROWS), ["Saved", "| authors | 1 | 2 | 3 |", "Ann Leckie", "| id=3 | born | 1920 | 1921 |", "Old Name"]),
    (ev.ApprovalRequired(1, "session.add(x)", TABLES, ROWS), ["Approve", "| authors | 1 | 2 | 3 |", "Ann Leckie", "Deleted"]),
    (ev.ApprovalDecision(1, True, remember=True), ["Approved", "rest of this conversation"]),
    (ev.Compacted(4, "threshold", 12000, 4000, 16000, steps=3), ["shortened", "3 older steps", "12,000 → 4,000 tokens of 16,000"]),
    (ev.HistoryPointEvent(POINT), ["History point #3", "add Ann", "authors +1"]),
    (ev.Undone(POINT, "undo", {"authors": {"deleted": 1}}, {"authors": {"key": ["id"], "deleted": [{"id": 11, "name": "Ann Leckie"}]}}, [3]),
     ["Undone", "#3", "authors −1", "Ann Leckie"]),
    (ev.ErrorEvent("authentication", "the key was refused", "check the API key in the settings"), ["authentication", "the key was refused", "What to do: check the API key"]),
    (ev.TurnEnd("done", 2, 100, 23, cost=0.0123, total_cost=0.0456), ["Done", "2 steps", "123 tokens", "$0.0123", "conversation $0.0456"]),
]


def type_of(event: Any) -> str:
    return event["type"] if isinstance(event, dict) else event.type


def test_every_event_type_has_an_example_and_a_renderer():
    event_types = set(ev._EVENT_TYPES) - {"event"}
    assert {type_of(event) for event, _ in EXAMPLES} == set(RENDERERS) == event_types | CONTRACT_TYPES


@pytest.mark.parametrize("event, expected", EXAMPLES, ids=[type_of(e) for e, _ in EXAMPLES])
def test_render_event(event, expected):
    text = render_event(event)
    for piece in expected:
        assert piece in text
    if not isinstance(event, dict):  # the JSON form renders the same
        assert render_event(event.to_dict()) == text


def test_quiet_and_status_variants():
    assert render_event(ev.SystemInstruction("prompt")) == ""  # the prompt is the model's business
    assert "printed nothing" in render_event(ev.ExecutionResult(1, ""))
    assert "truncated" in render_event(ev.ExecutionResult(1, "x" * 10, truncated=True))
    assert "Declined" in render_event(ev.ApprovalDecision(1, False))
    assert "rest of this conversation" not in render_event(ev.ApprovalDecision(1, True))
    for status, word in [("pending", "approval"), ("declined", "Declined"), ("rolled_back", "Rolled back")]:
        assert word in render_event(ev.Changes(1, TABLES, status))
    assert "What to do" not in render_event(ev.ErrorEvent("provider", "down"))
    assert "step limit" in render_event(ev.TurnEnd("exceeded", 20))
    assert "decision" in render_event(ev.TurnEnd("paused", 1))
    assert "Stopped" in render_event(ev.TurnEnd("aborted", 1))
    assert "error" in render_event(ev.TurnEnd("error", 1))
    assert "$" not in render_event(ev.TurnEnd("done", 1))  # no price known: no cost shown
    assert "asked again" in render_event(ev.ReplyTruncated(1, "max_tokens", 1024, 10, retry_with=4096))
    assert "Could not install tabulate:** no wheel" in render_event(ev.PackageInstalled(1, "tabulate", "", 0, "no wheel"))
    assert "Restored" in render_event(ev.Undone(POINT, "restore", {}, {}, [2, 3]))
    assert "wants to call `send_mail`" in render_event(ev.ApprovalRequired(1, "", {}, kind="call", detail={"name": "send_mail", "arguments": {"to": "x"}}))
    assert "imported file" in render_event(ev.ApprovalRequired(1, "", TABLES, kind="import", detail={"warnings": ["extra table"]}))
    assert "failed" in render_event({**TOOL_CALL, "status": "failed", "error": "boom"}) and "boom" in render_event({**TOOL_CALL, "status": "failed", "error": "boom"})


def test_row_preview_counts_what_it_leaves_out_and_escapes_values():
    rows = {"tags": {"key": ["id"], "inserted": [{"id": i, "name": f"t{i}"} for i in range(25)]}}
    text = rows_preview(rows, {"tags": {"inserted": 1000}})
    assert "| 19 | t19 |" in text and "| 20 |" not in text and "… and 980 more" in text
    assert cell("a|b\nc") == "a\\|b c" and cell({"$blob": 2048}) == "\\<2,048 bytes\\>" and cell(None) == "–"
    assert cell("x" * 200).endswith("…") and len(cell("x" * 200)) == 80


def test_fence_survives_backticks_in_the_text():
    block = fence("print('```')", "python")
    assert block.startswith("````python\n") and block.endswith("\n````")


def test_model_text_is_shown_as_text_never_as_html():
    attack = "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script> **bold** $5 and $6"
    pane = blocks.markdown(attack)
    sent = html.unescape(pane._transform_object(attack)["object"])  # the HTML the page receives
    assert "<img" not in sent and "<script" not in sent and "&lt;img" in sent
    assert "<strong>bold</strong>" in sent  # markdown still renders
    assert "$5" in sent and pane.disable_math  # money is not math
    # what the person types is rendered the same way
    assert isinstance(blocks.safe_renderer(attack), pn.pane.Markdown)


# -- a turn's widgets ----------------------------------------------------------------------------


class Recorder:
    """Stands in for the chat behind a turn's buttons."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def decide(self, approved: bool, remember: bool = False) -> None:
        self.calls.append(("decide", approved, remember))

    def undo(self, point: int | None = None) -> str:
        self.calls.append(("undo", point))
        return ""


def visible_text(column: pn.Column) -> str:
    return "\n".join(str(p.object) for p in column.select(pn.pane.Markdown) if p.visible)


def test_turn_view_streams_then_settles():
    view = TurnView()
    view.add(ev.SignalEvent(ev.Signal.COMPLETION, 1))
    view.add(ev.MessageDelta(1, "Adding "))
    view.add(ev.MessageDelta(1, "Ann."))
    view.add(ev.CodeDelta(1, "session.add("))
    half = view.markdown()
    # the message so far, and the half-written code in a closed block, while the model is asked
    assert "Adding Ann." in half and "```python\nsession.add(\n```" in half and "Asking the model" in half
    assert "Asking the model" in visible_text(view.column)

    view.add(ev.AssistantReply(1, "Adding Ann.", "session.add(a)", model="openai:gpt-4.1-mini"))
    view.add(ev.SignalEvent(ev.Signal.EXECUTION, 1))
    view.add(ev.OutputDelta(1, "add"))
    view.add(ev.OutputDelta(1, "ed\n"))
    assert "Output so far" in visible_text(view.column) and "added" in visible_text(view.column)
    view.add(ev.ExecutionResult(1, "added\n"))
    assert "Output so far" not in visible_text(view.column)  # the whole output replaced the live one
    view.add(ev.Changes(1, TABLES, "pending"))  # shown by approval_required instead
    view.add(ev.ApprovalRequired(1, "session.add(a)", TABLES))
    view.add(ev.TurnEnd("paused", 1))
    text = view.markdown()
    assert text.count("Adding Ann.") == 1 and text.count("session.add(a)") == 1
    assert text.count("| authors |") == 1 and "added" in text and "Waiting for your decision" in text
    assert view.ended is not None and view.ended["reason"] == "paused" and view.status == ""
    assert "Running the code" not in visible_text(view.column)


def test_turn_view_draws_tables_charts_and_tool_calls():
    view = TurnView()
    many = {**DISPLAY, "rows": [[1900 + i, i] for i in range(60)], "total": 60}
    view.add(many)
    table = view.column.select(pn.widgets.Tabulator)[0]
    assert list(table.value.columns) == ["year", "books"] and len(table.value) == 60  # the whole table, paged
    assert table.pagination == "local"
    download = view.column.select(pn.widgets.FileDownload)[0]
    assert download.filename == "books-by-year.csv" and download.callback().read().splitlines()[:2] == ["year,books", "1900,0"]

    view.add({**DISPLAY, "kind": "chart", "title": "Books per year", "spec": CHART_SPEC})
    chart = view.column.select(pn.pane.Vega)[0]
    assert chart.object["mark"] == "bar" and chart.object["data"]["values"][1] == {"year": 2002, "books": 5}

    view.add({**TOOL_CALL, "status": "started", "duration_ms": 0})
    view.add(TOOL_CALL)  # the same call, finished: its line is updated, not repeated
    lines = [p.object for p in view.column.select(pn.pane.Markdown) if "lookup" in str(p.object)]
    assert len(lines) == 1 and "done" in lines[0]


def test_approval_card_and_undo_buttons_call_the_chat():
    chat = Recorder()
    view = TurnView(actions=chat)
    view.add(ev.ApprovalRequired(1, "session.add(a)", TABLES, ROWS))
    labels = {blocks.label_of(b): b for b in view.column.select(pn.widgets.Button)}
    assert set(labels) == {"Approve", "Decline", "Allow for the rest of this conversation"}
    labels["Allow for the rest of this conversation"].clicks += 1
    assert chat.calls == [("decide", True, True)]
    view.add(ev.ApprovalDecision(1, True, True))
    assert all(b.disabled for b in labels.values()) and blocks.label_of(labels["Allow for the rest of this conversation"]) == "Allowed for this conversation"

    view.add(ev.HistoryPointEvent(POINT))
    view.add(ev.HistoryPointEvent({**POINT, "tables": {"authors": {"inserted": 2}}}))  # the turn's point, extended
    undo = [b for b in view.column.select(pn.widgets.Button) if blocks.label_of(b) == "Undo"]
    assert len(undo) == 1 and not undo[0].disabled and "authors +2" in visible_text(view.column)
    undo[0].clicks += 1
    assert chat.calls[-1] == ("undo", 3) and undo[0].disabled
    view.mark_points({3: {**POINT, "undone": True}})
    assert blocks.label_of(undo[0]) == "Undone" and undo[0].disabled


def test_buttons_use_inline_icons():
    """An icon by name makes Bokeh load Tabler's font from a CDN; ours are inline SVG."""
    app = AgentChat(model=ScriptedProvider([DONE]))
    view = TurnView(actions=Recorder())
    view.add(ev.ApprovalRequired(1, "x", TABLES))
    view.add(ev.HistoryPointEvent(POINT))
    view.add(DISPLAY)
    for layout in (app.layout, view.column):
        for widget in layout.select(lambda o: hasattr(o, "icon")):
            assert not widget.icon or widget.icon.lstrip().startswith("<svg"), widget
    app.close()


# -- models and tables -----------------------------------------------------------------------


def test_default_model_is_the_demo_without_a_key():
    assert default_model_id("", {}) == DEMO_MODEL_ID
    assert default_model_id("", {"ANTHROPIC_API_KEY": "k"}).startswith("anthropic:")
    assert default_model_id("", {"OPENAI_API_KEY": "k", "GEMINI_API_KEY": "k"}).startswith("openai:")
    assert default_model_id("typed-key", {}).startswith("openai:")
    assert default_model_id("", {"PY_AGENT_MODEL": "ollama:llama3.2", "OPENAI_API_KEY": "k"}) == "ollama:llama3.2"


def test_make_provider():
    assert isinstance(make_provider(DEMO_MODEL_ID), DemoModel)
    provider = make_provider("openai:gpt-4.1-mini", api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    assert provider.model.endswith("gpt-4.1-mini")
    with pytest.raises(ConfigurationError):
        make_provider("no-such-provider:x")


def test_table_browser_reads_counts_and_rows(engine):
    with engine.connect() as connection:
        counts = table_counts(connection)
        columns, rows = table_rows(connection, "authors", limit=3)
    with Session(engine) as session:
        assert counts["authors"] == session.scalar(select(func.count()).select_from(Author))
    assert "name" in columns and len(rows) == 3
    assert not any(name.startswith("py_agent_") for name in counts)


# -- the app -----------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the chat did not get there in time")
        await asyncio.sleep(0.01)


async def turn(chat: pn.chat.ChatInterface, text: str) -> None:
    """Send ``text`` as the person and wait until the agent's reply is complete."""
    count = len(chat.objects)
    chat.send(text, respond=True)
    await finished(chat, count + 2)


async def finished(chat: pn.chat.ChatInterface, count: int) -> None:
    # The callback disables the chat before it adds its message and re-enables it when done.
    await until(lambda: len(chat.objects) >= count and not chat.disabled)


def text_of(message: pn.chat.ChatMessage) -> str:
    """The visible text of a chat message."""
    value = message.object
    if isinstance(value, str):
        return value
    if isinstance(value, pn.pane.Markdown):
        return str(value.object)
    return "\n".join(str(pane.object) for pane in value.select(pn.pane.Markdown) if pane.visible)


def buttons_of(message: pn.chat.ChatMessage) -> dict[str, pn.widgets.Button]:
    return {label_of(button): button for button in message.object.select(pn.widgets.Button)}


def label_of(widget: Any) -> str:
    return getattr(widget, "label", "") or widget.name  # `label` since Panel 1.9


def authors(engine, name: str = "Ann Leckie") -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Author).where(Author.name == name))


def tags(engine) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(Tag.name)))


@pytest.fixture
def file_engines(tmp_path):
    """The app's engine on a file database, and a second engine that sees only committed rows."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    app_engine, other = create_demo_engine(url), create_demo_engine(url)
    yield app_engine, other
    app_engine.dispose(), other.dispose()


def test_create_app_builds_chat_settings_history_and_table_browser(monkeypatch):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    app = create_app()
    assert isinstance(app, pn.viewable.Viewable)
    chat = app.select(pn.chat.ChatInterface)[0]
    assert chat.callback is not None and "Tolkien" in text_of(chat.objects[0])
    assert [w.value for w in app.select(pn.widgets.TextInput) if label_of(w) == "Model"] == [DEMO_MODEL_ID]
    assert len(app.select(pn.widgets.PasswordInput)) == 1
    tables = app.select(pn.widgets.Select)[0]
    assert "authors" in tables.options
    assert any("| authors |" in str(md.object) for md in app.select(pn.pane.Markdown))
    assert any("No saved changes yet" in str(md.object) for md in app.select(pn.pane.Markdown))
    tables.value = "books"
    view = app.select(pn.widgets.Tabulator)[0]
    assert "title" in view.value.columns and len(view.value) > 0


def test_a_typed_key_switches_from_the_demo_to_a_real_model(monkeypatch):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    app = AgentChat()
    app.api_key_input.value = "sk-test"
    assert app.model_input.value.startswith("openai:") and "openai:" in app.model_status.object
    app.close()


def test_a_turn_streams_into_the_chat_and_changes_the_database(file_engines):
    app_engine, other = file_engines
    gate = asyncio.Event()

    class Gated(ScriptedProvider):
        """Streams the first reply's opening chunks, then waits for the test."""

        async def stream(self, request: Any) -> AsyncIterator[Any]:
            first = not self.requests
            count = 0
            async for item in super().stream(request):
                yield item
                count += 1
                if first and count == 3:
                    await gate.wait()

    async def scenario() -> None:
        app = create_app(engine=app_engine, model=Gated([ADD, DONE], chunk_size=8))
        chat = app.select(pn.chat.ChatInterface)[0]
        chat.send("Add Ann Leckie", respond=True)
        # mid-stream: part of the message is on screen, the code is not yet
        await until(lambda: len(chat.objects) == 3 and "Adding" in text_of(chat.objects[-1]))
        assert "session.add" not in text_of(chat.objects[-1]) and chat.disabled
        gate.set()
        await finished(chat, 3)

        reply = text_of(chat.objects[-1])
        assert "Adding **Ann Leckie** now." in reply
        assert "```python\nsession.add(Author(name='Ann Leckie'))\nprint('added Ann')\n```" in reply
        assert "**Output**" in reply and "added Ann" in reply
        assert "**Saved**" in reply and "| authors | 1 | 0 | 0 |" in reply and "| 11 | Ann Leckie" in reply
        assert "Ann Leckie is in the shop." in reply and "_Done · 2 steps" in reply
        assert "Saved as history point #1" in reply and "Undo" in buttons_of(chat.objects[-1])
        assert authors(other) == 1  # committed, seen from another connection
        # the table browser and the history were refreshed after the turn
        counts = next(md.object for md in app.select(pn.pane.Markdown) if "| authors |" in str(md.object))
        with Session(other) as session:
            assert f"| authors | {session.scalar(select(func.count()).select_from(Author))} |" in counts
        assert any("“Add Ann Leckie”" in str(md.object) for md in app.select(pn.pane.Markdown))

    asyncio.run(scenario())


def test_the_default_demo_model_runs_a_recorded_request(monkeypatch, file_engines):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    app_engine, other = file_engines

    async def scenario() -> None:
        chat = create_app(engine=app_engine).select(pn.chat.ChatInterface)[0]
        await turn(chat, "Add Tolkien and two of his books")
        reply = text_of(chat.objects[-1])
        assert "```python" in reply and "**Saved**" in reply and "_Done" in reply

    asyncio.run(scenario())
    assert authors(other, "J. R. R. Tolkien") == 1


@pytest.mark.parametrize("approved", [True, False])
def test_approval_buttons_resume_the_turn(file_engines, approved):
    app_engine, other = file_engines

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE]), approve=None)
        chat = app.chat
        await turn(chat, "Add Ann Leckie")
        paused = chat.objects[-1]
        assert "Approve to save these changes" in text_of(paused) and "| authors | 1 | 0 | 0 |" in text_of(paused)
        assert "Ann Leckie" in text_of(paused).split("Approve to save")[1]  # the row it would insert
        assert app.state.pending is not None and authors(other) == 0  # nothing saved yet

        buttons = buttons_of(paused)
        assert set(buttons) == {"Approve", "Decline", "Allow for the rest of this conversation"}
        buttons["Approve" if approved else "Decline"].clicks += 1  # what a click in the page does
        await finished(chat, len(chat.objects) + 1)
        assert all(button.disabled for button in buttons.values())

        reply = text_of(chat.objects[-1])
        if approved:
            assert "**Approved:**" in reply and "**Saved**" in reply
        else:
            assert "**Declined:**" in reply and "Declined: rolled back" in reply
        assert "Ann Leckie is in the shop." in reply
        assert app.state.pending is None
        app.close()

    asyncio.run(scenario())
    assert authors(other) == (1 if approved else 0)


def test_a_message_sent_while_a_step_waits_is_kept_and_sent_after_the_decision(file_engines):
    app_engine, other = file_engines
    tag = {"message": "Tagging.", "code": "session.add(Tag(name='queued'))"}

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE, tag, DONE]), approve=None)
        chat = app.chat
        await turn(chat, "Add Ann Leckie")
        paused = chat.objects[-1]
        await turn(chat, "and tag it 'queued'")
        assert "your message is kept" in text_of(chat.objects[-1]) and app.state.pending is not None
        assert len(app.live.queue) == 1

        buttons_of(paused)["Allow for the rest of this conversation"].clicks += 1
        await finished(chat, len(chat.objects) + 3)  # the decided turn, then the kept message and its turn
        assert "Tagging." in text_of(chat.objects[-1]) and "**Saved**" in text_of(chat.objects[-1])
        assert "and tag it 'queued'" in text_of(chat.objects[-2])
        assert app.state.auto_approve and app.state.pending is None and not app.live.queue

    asyncio.run(scenario())
    assert authors(other) == 1 and "queued" in tags(other)  # the second step was allowed without asking


def test_a_decision_under_broken_settings_can_be_made_again(file_engines):
    app_engine, other = file_engines

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE]), approve=None)
        await turn(app.chat, "Add Ann Leckie")
        buttons = buttons_of(app.chat.objects[-1])
        app.model_input.value = "no-such-provider:x"
        buttons["Approve"].clicks += 1
        await finished(app.chat, 4)
        assert "Error (configuration)" in text_of(app.chat.objects[-1])
        assert not any(button.disabled for button in buttons.values())  # free to decide again

        app.model_input.value = "scripted:demo"  # the scripted model's own id: it is used again
        buttons["Approve"].clicks += 1
        await finished(app.chat, 5)
        assert "**Saved**" in text_of(app.chat.objects[-1]) and "Ann Leckie is in the shop." in text_of(app.chat.objects[-1])
        app.close()

    asyncio.run(scenario())
    assert authors(other) == 1


def test_the_ask_setting_turns_approval_on(file_engines):
    app_engine, other = file_engines

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE]))
        app.ask_input.value = True
        await turn(app.chat, "Add Ann Leckie")
        assert {"Approve", "Decline"} <= set(buttons_of(app.chat.objects[-1]))
        app.close()

    asyncio.run(scenario())
    assert authors(other) == 0


def test_undo_on_a_turn_and_restore_from_the_history(file_engines):
    app_engine, other = file_engines
    tag = {"message": "Tagging.", "code": "session.add(Tag(name='second'))"}

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE, tag, DONE]))
        chat = app.chat
        await turn(chat, "Add Ann Leckie")
        first = chat.objects[-1]
        await turn(chat, "tag it")
        second = chat.objects[-1]
        assert authors(other) == 1 and "second" in tags(other)

        # the first turn is not the last one: its Undo says why it cannot, and nothing changes
        buttons_of(first)["Undo"].clicks += 1
        assert "Nothing was undone" in text_of(chat.objects[-1]) and authors(other) == 1
        assert not buttons_of(first)["Undo"].disabled  # it may be tried again later

        buttons_of(second)["Undo"].clicks += 1  # the last turn's Undo
        assert "Undone" in text_of(chat.objects[-1]) and "second" not in tags(other)
        assert buttons_of(second)["Undone"].disabled

        # the history lists the points; Restore brings the start back
        history = "\n".join(str(md.object) for md in app.history_view.select(pn.pane.Markdown))
        assert "“Add Ann Leckie”" in history and "“tag it”" in history and "undone" in history
        start = next(b for b in app.history_view.select(pn.widgets.Button) if label_of(b) == "Restore the start")
        start.clicks += 1
        assert "Restored an earlier point" in text_of(chat.objects[-1]) and authors(other) == 0
        app.close()

    asyncio.run(scenario())


def test_errors_reach_the_chat_with_their_hint(engine):
    def refuse(request: Any) -> Any:
        raise AuthenticationError("the API key was refused", hint="check the key in the settings", status=401)

    from py_agent import FunctionProvider

    async def scenario() -> None:
        app = AgentChat(engine=engine, model=FunctionProvider(refuse))
        await turn(app.chat, "hello")
        reply = text_of(app.chat.objects[-1])
        assert "the API key was refused" in reply and "What to do: check the key in the settings" in reply

        app.model_input.value = "no-such-provider:x"  # a bad setting is reported, not raised
        await turn(app.chat, "hello again")
        assert "Error (configuration)" in text_of(app.chat.objects[-1])
        app.close()

    asyncio.run(scenario())


def test_the_core_does_not_import_panel():
    code = "import sys, py_agent, py_agent.loop, py_agent.demo, py_agent.demo.model; print('panel' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
