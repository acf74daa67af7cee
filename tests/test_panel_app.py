"""The Panel app: pure event rendering, the app's widgets, and turns driven through the ChatInterface.

No browser: the ChatInterface is driven through its Python API inside an event loop,
and one test serves the app with `panel serve` and fetches the page over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import panel as pn
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from py_agent import ConfigurationError, ScriptedProvider
from py_agent import events as ev
from py_agent.demo import Author, create_demo_engine
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
from py_agent.providers.errors import AuthenticationError

pytestmark = [
    pytest.mark.cpython_only,  # Panel is not part of the browser build
    # bokeh's own use of pandas 3, not ours
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]

ROOT = Path(__file__).resolve().parent.parent
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")

ADD = {"message": "Adding **Ann Leckie** now.", "code": "session.add(Author(name='Ann Leckie'))\nprint('added Ann')"}
DONE = {"message": "Ann Leckie is in the shop.", "code": ""}


# -- pure rendering ------------------------------------------------------------------------

TABLES = {"authors": {"inserted": 1, "updated": 2, "deleted": 3}}

# One example per event type, with what its markdown must say.
EXAMPLES: list[tuple[ev.Event, list[str]]] = [
    (ev.SystemInstruction("the prompt", ["unknown placeholder {x}"]), ["Prompt warnings", "unknown placeholder {x}"]),
    (ev.SignalEvent(ev.Signal.EXECUTION, 1), ["Running the code"]),
    (ev.UserMessageEvent("add Ann"), ["add Ann"]),
    (ev.MessageDelta(1, "Add"), ["Add"]),
    (ev.CodeDelta(1, "session."), ["session."]),
    (ev.AssistantReply(1, "Adding Ann.", "session.add(x)"), ["Adding Ann.", "```python\nsession.add(x)\n```"]),
    (ev.MalformedReply(1, "the reply is not JSON", "{oops"), ["could not be read", "the reply is not JSON"]),
    (
        ev.ValidationFailed(1, [{"rule": "dunder", "message": "no dunder access", "line": 2, "col": 0}], "x"),
        ["refused before it ran", "line 2: no dunder access"],
    ),
    (ev.ExecutionResult(1, "42\n", "ZeroDivisionError: division by zero"), ["**Output**", "42", "ZeroDivisionError"]),
    (ev.Changes(1, TABLES, "committed"), ["Saved", "| authors | 1 | 2 | 3 |"]),
    (ev.ApprovalRequired(1, "session.add(x)", TABLES), ["Approve", "| authors | 1 | 2 | 3 |"]),
    (ev.ApprovalDecision(1, True), ["Approved"]),
    (ev.ErrorEvent("authentication", "the key was refused", "check the API key in the settings"), ["authentication", "the key was refused", "What to do: check the API key"]),
    (ev.TurnEnd("done", 2, 100, 23), ["Done", "2 steps", "123 tokens"]),
]


def test_every_event_type_has_an_example_and_a_renderer():
    assert {event.type for event, _ in EXAMPLES} == set(RENDERERS) == set(ev._EVENT_TYPES) - {"event"}


@pytest.mark.parametrize("event, expected", EXAMPLES, ids=[e.type for e, _ in EXAMPLES])
def test_render_event(event, expected):
    text = render_event(event)
    for piece in expected:
        assert piece in text


def test_quiet_and_status_variants():
    assert render_event(ev.SystemInstruction("prompt")) == ""  # the prompt is the model's business
    assert "printed nothing" in render_event(ev.ExecutionResult(1, ""))
    assert "truncated" in render_event(ev.ExecutionResult(1, "x" * 10, truncated=True))
    assert "Declined" in render_event(ev.ApprovalDecision(1, False))
    for status, word in [("pending", "approval"), ("declined", "Declined"), ("rolled_back", "Rolled back")]:
        assert word in render_event(ev.Changes(1, TABLES, status))
    assert "What to do" not in render_event(ev.ErrorEvent("provider", "down"))
    assert "step limit" in render_event(ev.TurnEnd("exceeded", 20))
    assert "approval" in render_event(ev.TurnEnd("paused", 1))
    assert "Stopped" in render_event(ev.TurnEnd("aborted", 1))
    assert "error" in render_event(ev.TurnEnd("error", 1))


def test_fence_survives_backticks_in_the_text():
    block = fence("print('```')", "python")
    assert block.startswith("````python\n") and block.endswith("\n````")


def test_turn_view_streams_then_settles():
    view = TurnView()
    view.add(ev.SignalEvent(ev.Signal.COMPLETION, 1))
    view.add(ev.MessageDelta(1, "Adding "))
    view.add(ev.MessageDelta(1, "Ann."))
    view.add(ev.CodeDelta(1, "session.add("))
    half = view.markdown()
    # the message so far, and the half-written code in a closed block, while the model is asked
    assert "Adding Ann." in half and "```python\nsession.add(\n```" in half and "Asking the model" in half

    view.add(ev.AssistantReply(1, "Adding Ann.", "session.add(a)"))
    view.add(ev.ExecutionResult(1, "added\n"))
    view.add(ev.Changes(1, TABLES, "pending"))  # shown by approval_required instead
    view.add(ev.ApprovalRequired(1, "session.add(a)", TABLES))
    view.add(ev.TurnEnd("paused", 1))
    text = view.markdown()
    assert text.count("Adding Ann.") == 1 and text.count("session.add(a)") == 1
    assert text.count("| authors |") == 1 and "added" in text and "Waiting for your approval" in text
    assert view.ended is not None and view.ended.reason == "paused" and view.status == ""


# -- models and tables -----------------------------------------------------------------------


def test_default_model_is_the_demo_without_a_key():
    assert default_model_id("", {}) == DEMO_MODEL_ID
    assert default_model_id("", {"ANTHROPIC_API_KEY": "k"}).startswith("anthropic:")
    assert default_model_id("", {"OPENAI_API_KEY": "k", "GEMINI_API_KEY": "k"}).startswith("openai:")
    assert default_model_id("typed-key", {}).startswith("openai:")


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
    value = message.object
    if isinstance(value, str):
        return value
    return "\n".join(str(pane.object) for pane in value.select(pn.pane.Markdown))


def buttons_of(message: pn.chat.ChatMessage) -> dict[str, pn.widgets.Button]:
    return {label_of(button): button for button in message.object.select(pn.widgets.Button)}


def label_of(widget: Any) -> str:
    return getattr(widget, "label", "") or widget.name  # `label` since Panel 1.9


def authors(engine, name: str = "Ann Leckie") -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Author).where(Author.name == name))


@pytest.fixture
def file_engines(tmp_path):
    """The app's engine on a file database, and a second engine that sees only committed rows."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    app_engine, other = create_demo_engine(url), create_demo_engine(url)
    yield app_engine, other
    app_engine.dispose(), other.dispose()


def test_create_app_builds_chat_settings_and_table_browser(monkeypatch):
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
    tables.value = "books"
    view = app.select(pn.widgets.Tabulator)[0]
    assert "title" in view.value.columns and len(view.value) > 0


def test_a_typed_key_switches_from_the_demo_to_a_real_model(monkeypatch):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    app = AgentChat()
    app.api_key_input.value = "sk-test"
    assert app.model_input.value.startswith("openai:") and "openai:" in app.model_status.object


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
        assert "**Saved**" in reply and "| authors | 1 | 0 | 0 |" in reply
        assert "Ann Leckie is in the shop." in reply and "_Done · 2 steps" in reply
        assert authors(other) == 1  # committed, seen from another connection
        # the table browser was refreshed after the turn
        counts = next(md.object for md in app.select(pn.pane.Markdown) if "| authors |" in str(md.object))
        with Session(other) as session:
            assert f"| authors | {session.scalar(select(func.count()).select_from(Author))} |" in counts

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
        assert app.state.pending is not None and authors(other) == 0  # nothing saved yet

        # a message sent meanwhile is not run: the step must be decided first
        await turn(chat, "and another one")
        assert "waiting for your decision" in text_of(chat.objects[-1]) and app.state.pending is not None

        buttons = buttons_of(paused)
        assert set(buttons) == {"Approve", "Decline"}
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

    asyncio.run(scenario())
    assert authors(other) == (1 if approved else 0)


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

    asyncio.run(scenario())
    assert authors(other) == 1


def test_the_ask_setting_turns_approval_on(file_engines):
    app_engine, other = file_engines

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([ADD, DONE]))
        app.ask_input.value = True
        await turn(app.chat, "Add Ann Leckie")
        assert set(buttons_of(app.chat.objects[-1])) == {"Approve", "Decline"}

    asyncio.run(scenario())
    assert authors(other) == 0


def test_the_stop_button_aborts_the_turn(file_engines):
    app_engine, other = file_engines
    never = asyncio.Event()

    class Hanging(ScriptedProvider):
        async def stream(self, request: Any) -> AsyncIterator[Any]:
            hang = not self.requests
            async for item in super().stream(request):
                yield item
                if hang:
                    await never.wait()  # a model that stalls mid-reply

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=Hanging([ADD, ADD, DONE]))
        chat = app.chat
        chat.send("Add Ann Leckie", respond=True)
        await until(lambda: len(chat.objects) == 3 and chat.disabled)
        stop = next(b for b in chat.select(pn.widgets.Button) if b.icon == "player-stop")
        stop.clicks += 1
        # the stop cancels the callback's task; the message then says it stopped
        await until(lambda: "Stopped" in text_of(chat.objects[-1]) and not chat.disabled)
        assert app.state._aborted and authors(other) == 0
        # the conversation goes on after a stop
        await turn(chat, "Add Ann Leckie, please")
        assert "**Saved**" in text_of(chat.objects[-1])

    asyncio.run(scenario())
    assert authors(other) == 1


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

    asyncio.run(scenario())


def test_the_core_does_not_import_panel():
    code = "import sys, py_agent, py_agent.loop, py_agent.demo, py_agent.demo.model; print('panel' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


# -- panel serve -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_panel_serve_serves_the_app(tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "py_agent/panel_app.py", "--port", str(port), "--address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        status, body = None, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/panel_app", timeout=20) as response:
                    status, body = response.status, response.read().decode("utf-8", "replace")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        log.seek(0)
        assert status == 200, f"no page from panel serve; its log:\n{log.read()}"
        assert "<html" in body.lower() and "bokeh" in body.lower()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
