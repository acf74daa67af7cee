"""The Panel UI: a ChatInterface over the agent loop, for CPython (``panel serve``).

Run it with ``panel serve py_agent/panel_app.py`` (the page is ``/panel_app``) or
``python -m py_agent.panel_app``. It opens on the demo bookshop with the recorded
demo model, so it works without an API key; the sidebar takes a model id, a base
URL and a key, and shows the tables with their row counts.

This is the only module of py_agent that imports Panel: the core stays free of it
(Panel does not run in the browser build). Turning events into chat text is done
by small pure functions (``render_*``, :class:`TurnView`) that tests call without
a server; :class:`AgentChat` wires them to the widgets.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:
    # `panel serve py_agent/panel_app.py` runs this file as a script: make the package
    # importable from a plain checkout too (an installed py-agent needs nothing).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import panel as pn
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from py_agent import events as ev
from py_agent.database import memory_engine
from py_agent.errors import PyAgentError
from py_agent.loop import Agent, Approve
from py_agent.messages import UserMessage
from py_agent.providers.base import Provider
from py_agent.providers.registry import resolve
from py_agent.state import State

ASSISTANT = "py-agent"
DEMO_MODEL_ID = "demo:recorded"
# Which model to start with when a provider's key is in the environment, in this order.
KEY_MODELS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai:gpt-4.1-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("GEMINI_API_KEY", "gemini:gemini-2.5-flash"),
)
TABLE_ROWS = 50  # rows shown by the table browser
# Panel 1.9 renamed a widget's `name` to `label` (`name` goes in 2.0); older 1.x know only `name`.
LABEL = "label" if "label" in pn.widgets.Button.param else "name"


def labelled(text: str) -> dict[str, str]:
    """Widget keyword arguments that set its label on any Panel 1.x."""
    return {LABEL: text}


# -- rendering: event in, markdown out ---------------------------------------------------


def fence(text: str, language: str = "") -> str:
    """A fenced code block that stays closed whatever backticks ``text`` holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def changes_table(tables: Mapping[str, Mapping[str, int]]) -> str:
    """Rows inserted / updated / deleted per table, as a markdown table."""
    lines = ["| table | inserted | updated | deleted |", "| --- | ---: | ---: | ---: |"]
    for name, counts in tables.items():
        cells = [str(counts.get(op, 0)) for op in ("inserted", "updated", "deleted")]
        lines.append(f"| {name.replace('|', '/')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SIGNAL_TEXT = {
    ev.Signal.COMPLETION: "Asking the model…",
    ev.Signal.VALIDATION: "Checking the code…",
    ev.Signal.EXECUTION: "Running the code…",
    ev.Signal.APPROVAL: "Waiting for your approval…",
    ev.Signal.EXCEEDED: "The step limit was reached.",
}

CHANGE_TITLES = {
    "committed": "Saved",
    "pending": "Waiting for your approval",
    "declined": "Declined: rolled back",
    "rolled_back": "Rolled back (the step failed)",
}


def render_system(event: ev.SystemInstruction) -> str:
    # The prompt itself is for the model; only its warnings concern a person.
    if not event.warnings:
        return ""
    return "**Prompt warnings:**\n" + "\n".join(f"- {w}" for w in event.warnings)


def render_signal(event: ev.SignalEvent) -> str:
    return SIGNAL_TEXT.get(ev.Signal(event.signal), str(event.signal))


def render_user_message(event: ev.UserMessageEvent) -> str:
    return event.content


def render_message_delta(event: ev.MessageDelta) -> str:
    return event.text


def render_code_delta(event: ev.CodeDelta) -> str:
    return event.text


def render_assistant_reply(event: ev.AssistantReply) -> str:
    parts = [event.message.strip()] if event.message.strip() else []
    if event.code.strip():
        parts.append(fence(event.code, "python"))
    return "\n\n".join(parts)


def render_malformed_reply(event: ev.MalformedReply) -> str:
    return f"**The model's reply could not be read:** {event.problem}\n\nIt is asked to try again."


def render_validation_failed(event: ev.ValidationFailed) -> str:
    items = [
        f"- line {v.get('line', '?')}: {v.get('message', '')}" if v.get("line") else f"- {v.get('message', '')}"
        for v in event.violations
    ]
    body = "\n".join(items) if items else event.message
    return f"**Code refused before it ran** (nothing was executed; the model is asked to rewrite it):\n\n{body}"


def render_execution_result(event: ev.ExecutionResult) -> str:
    parts = []
    if event.output.strip():
        parts.append("**Output**" + (" (truncated)" if event.truncated else "") + "\n\n" + fence(event.output, "text"))
    if event.error:
        parts.append("**The code raised an error** (the step is rolled back and the model sees it):\n\n" + fence(event.error, "text"))
    return "\n\n".join(parts) or "_The code ran and printed nothing._"


def render_changes(event: ev.Changes) -> str:
    title = CHANGE_TITLES.get(event.status, event.status)
    return f"**{title}**\n\n{changes_table(event.tables)}"


def render_approval_required(event: ev.ApprovalRequired) -> str:
    return (
        f"**Step {event.step} wants to change the database.** Approve to save these changes, "
        f"or decline to roll them back.\n\n{changes_table(event.tables)}"
    )


def render_approval_decision(event: ev.ApprovalDecision) -> str:
    return "**Approved:** saving the changes." if event.approved else "**Declined:** rolling the changes back."


def render_error(event: ev.ErrorEvent) -> str:
    text = f"**Error ({event.kind}):** {event.message}"
    return text + (f"\n\nWhat to do: {event.hint}" if event.hint else "")


def render_turn_end(event: ev.TurnEnd) -> str:
    tokens = event.input_tokens + event.output_tokens
    usage = f" · {tokens:,} tokens" if tokens else ""
    steps = f"{event.steps} step{'s' if event.steps != 1 else ''}"
    if event.reason == "done":
        return f"_Done · {steps}{usage}_"
    if event.reason == "exceeded":
        return f"**Stopped:** the step limit was reached ({steps}). Send a message to continue."
    if event.reason == "paused":
        return "_Waiting for your approval._"
    if event.reason == "aborted":
        return "**Stopped** at your request."
    return "_The turn ended with an error; you can send another message._"


RENDERERS: dict[str, Callable[[Any], str]] = {
    "system": render_system,
    "signal": render_signal,
    "user_message": render_user_message,
    "message_delta": render_message_delta,
    "code_delta": render_code_delta,
    "assistant_reply": render_assistant_reply,
    "malformed_reply": render_malformed_reply,
    "validation_failed": render_validation_failed,
    "execution_result": render_execution_result,
    "changes": render_changes,
    "approval_required": render_approval_required,
    "approval_decision": render_approval_decision,
    "error": render_error,
    "turn_end": render_turn_end,
}


def render_event(event: ev.Event) -> str:
    """The markdown for one event (deltas give their text fragment)."""
    renderer = RENDERERS.get(event.type)
    return renderer(event) if renderer else ""


@dataclass
class TurnView:
    """Builds the markdown of one assistant chat message from a turn's events.

    Deltas accumulate into the step being streamed; a complete event becomes a
    block. ``markdown()`` is always well formed, even with code half streamed.
    """

    blocks: list[str] = field(default_factory=list)
    message: str = ""  # the current step's message, as streamed so far
    code: str = ""  # the current step's code, as streamed so far
    status: str = ""  # what is happening now, from signal events
    ended: ev.TurnEnd | None = None

    def add(self, event: ev.Event) -> None:
        if isinstance(event, ev.MessageDelta):
            self.message += event.text
        elif isinstance(event, ev.CodeDelta):
            self.code += event.text
        elif isinstance(event, ev.SignalEvent):
            self.status = render_signal(event)
        elif isinstance(event, ev.UserMessageEvent):
            pass  # the chat already shows the person's message
        elif isinstance(event, ev.Changes) and event.status == "pending":
            pass  # approval_required follows with the same table
        else:
            if isinstance(event, (ev.AssistantReply, ev.MalformedReply)):
                self.message = self.code = ""  # the whole reply replaces what streamed
            if isinstance(event, ev.TurnEnd):
                self.status = ""
                self.ended = event
            self._append(render_event(event))

    def _append(self, text: str) -> None:
        if text:
            self.blocks.append(text)

    def markdown(self) -> str:
        streaming = [self.message.strip()] if self.message.strip() else []
        if self.code.strip():
            streaming.append(fence(self.code, "python"))
        status = [f"_{self.status}_"] if self.status else []
        return "\n\n".join(self.blocks + streaming + status) or "…"


# -- models ----------------------------------------------------------------------------------


def default_model_id(api_key: str = "", env: Mapping[str, str] | None = None) -> str:
    """The model to start with: a real one when a key is at hand, else the recorded demo."""
    env = os.environ if env is None else env
    if api_key:
        return KEY_MODELS[0][1]
    for variable, model_id in KEY_MODELS:
        if env.get(variable):
            return model_id
    return DEMO_MODEL_ID


def make_provider(model_id: str, *, api_key: str = "", base_url: str = "") -> Provider:
    """A provider for the sidebar's settings (raises ConfigurationError with a hint)."""
    model_id = model_id.strip() or default_model_id(api_key)
    if model_id.partition(":")[0] == "demo":
        from py_agent.demo.model import DemoModel

        return DemoModel()
    options = {name: value for name, value in (("api_key", api_key), ("base_url", base_url.strip())) if value}
    return resolve(model_id, **options)


# -- table browser ---------------------------------------------------------------------------


def table_counts(connection: Connection) -> dict[str, int]:
    """Row count per table of the database behind ``connection``."""
    names = sa.inspect(connection).get_table_names()
    return {name: int(connection.scalar(sa.select(sa.func.count()).select_from(sa.table(name))) or 0) for name in names}


def table_rows(connection: Connection, name: str, limit: int = TABLE_ROWS) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and the first ``limit`` rows of table ``name``."""
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    rows = connection.execute(sa.select(table).limit(limit)).all()
    return [c.name for c in table.columns], [tuple(row) for row in rows]


# -- the app ---------------------------------------------------------------------------------


class AgentChat:
    """A chat, its settings and a table browser around one conversation (:class:`State`)."""

    def __init__(
        self,
        *,
        base: Any = None,
        engine: Engine | None = None,
        model: str | Provider | None = None,
        approve: Approve = True,
        **agent_options: Any,
    ) -> None:
        from py_agent.demo import Base as DemoBase, create_demo_engine

        self.base = base if base is not None else DemoBase
        if engine is None:
            if self.base is DemoBase:
                engine = create_demo_engine()
            else:
                engine = memory_engine()
                self.base.metadata.create_all(engine)
        self.engine = engine
        self.state = State(engine=engine)
        self.agent_options = agent_options
        self.approve = approve
        self._agent: Agent | None = None
        # A provider object given by the caller is used while the model field shows its id.
        self._provider = model if isinstance(model, Provider) else None
        initial_model = model.model if isinstance(model, Provider) else (model or default_model_id())
        self._continuing = False  # set by Approve/Decline: the next callback continues the turn
        self._decision_buttons: list[pn.widgets.Button] = []

        # settings
        self.model_input = pn.widgets.TextInput(**labelled("Model"), value=initial_model, placeholder="provider:model, e.g. openai:gpt-4.1-mini")
        self.base_url_input = pn.widgets.TextInput(**labelled("Base URL"), placeholder="optional, e.g. http://localhost:11434/v1")
        self.api_key_input = pn.widgets.PasswordInput(**labelled("API key"), placeholder="optional if set in the environment")
        self.ask_input = pn.widgets.Checkbox(**labelled("Ask before saving changes"), value=approve is None)
        self.model_status = pn.pane.Markdown(sizing_mode="stretch_width")
        for widget in (self.model_input, self.base_url_input, self.api_key_input, self.ask_input):
            widget.param.watch(self._settings_changed, "value")
        self.api_key_input.param.watch(self._key_entered, "value")
        self._show_model()

        # table browser
        self.counts_view = pn.pane.Markdown(sizing_mode="stretch_width")
        self.table_select = pn.widgets.Select(**labelled("Table"), options=[])
        self.table_view = pn.widgets.Tabulator(None, disabled=True, show_index=False, height=260, sizing_mode="stretch_width")
        self.table_select.param.watch(lambda _: self.show_table(), "value")
        refresh = pn.widgets.Button(**labelled("Refresh"), icon="refresh")
        refresh.on_click(lambda _: self.refresh_tables())
        self.refresh_tables()

        self.chat = pn.chat.ChatInterface(
            callback=self.respond,
            callback_user=ASSISTANT,
            user="You",
            # Undo, rerun and clear would edit the page but not the conversation the
            # model sees, nor the database: leave them out rather than mislead.
            show_undo=False,
            show_rerun=False,
            show_clear=False,
            # Runs before the built-in stop (which cancels the callback): the loop also
            # learns it was aborted, for work that outlives the cancelled task.
            button_properties={"stop": {"callback": lambda instance, event: self.state.abort()}},
            sizing_mode="stretch_both",
        )
        self.chat.send(self._welcome(), user=ASSISTANT, respond=False)
        self.sidebar = pn.Column(
            "### Settings",
            self.model_input,
            self.base_url_input,
            self.api_key_input,
            self.ask_input,
            self.model_status,
            pn.layout.Divider(),
            "### Tables",
            self.counts_view,
            self.table_select,
            self.table_view,
            refresh,
            width=340,
        )
        self.layout = pn.Row(self.sidebar, self.chat, sizing_mode="stretch_both")

    # -- settings --------------------------------------------------------------------------
    def _settings_changed(self, *_: Any) -> None:
        self._agent = None  # rebuilt with the new settings at the next message
        self._show_model()

    def _key_entered(self, event: Any) -> None:
        # A key typed while the demo is selected means "use a real model".
        if event.new and self.model_input.value.strip() in ("", DEMO_MODEL_ID):
            self.model_input.value = default_model_id(event.new)

    def _show_model(self) -> None:
        model_id = self.model_input.value.strip() or default_model_id(self.api_key_input.value)
        note = " (recorded replies; enter an API key for a real model)" if model_id.startswith("demo:") else ""
        self.model_status.object = f"Model: `{model_id}`{note}"

    def agent(self) -> Agent:
        """The agent for the current settings (built on first use after a change)."""
        if self._agent is None:
            model = self.model_input.value.strip()
            provider = self._provider
            if provider is None or model != provider.model or self.api_key_input.value or self.base_url_input.value:
                provider = make_provider(model, api_key=self.api_key_input.value, base_url=self.base_url_input.value)
            approve: Approve = None if self.ask_input.value else (self.approve if self.approve is not None else True)
            self._agent = Agent(base=self.base, model=provider, approve=approve, **self.agent_options)
        return self._agent

    # -- the chat callback -----------------------------------------------------------------
    async def respond(self, contents: Any, user: str, instance: pn.chat.ChatInterface) -> AsyncIterator[Any]:
        """Run (or, after Approve/Decline, continue) a turn, streaming it into one message."""
        continuing, self._continuing = self._continuing, False
        state = self.state
        if not continuing and state.pending is not None:
            yield "A step is waiting for your decision: press **Approve** or **Decline** above first."
            return
        try:
            agent = self.agent()
        except PyAgentError as exc:
            if continuing:  # let the person fix the settings and decide again
                self._reset_decision_buttons()
            yield render_error(ev.ErrorEvent(exc.kind, exc.message, exc.hint))
            return
        if not continuing:
            text = contents if isinstance(contents, str) else str(contents)
            if not text.strip():
                return
            state.messages.append(UserMessage(text))

        view = TurnView()
        # Our own ChatMessage (the feed adopts it), so that a stop can still annotate it.
        message = pn.chat.ChatMessage(view.markdown(), user=ASSISTANT, show_reaction_icons=False)
        yield message
        try:
            async for event in agent.arun(state):
                view.add(event)
                yield view.markdown()
        except asyncio.CancelledError:
            state.abort()
            view.add(ev.TurnEnd("aborted", 0))
            message.object = view.markdown()
            raise
        finally:
            self.refresh_tables()
        if state.pending is not None:
            yield self._approval_view(view.markdown())

    def _approval_view(self, text: str) -> pn.Column:
        approve = pn.widgets.Button(**labelled("Approve"), icon="check")
        decline = pn.widgets.Button(**labelled("Decline"), icon="x")
        self._decision_buttons = [approve, decline]
        approve.on_click(lambda _: self.decide(True))
        decline.on_click(lambda _: self.decide(False))
        return pn.Column(pn.pane.Markdown(text, sizing_mode="stretch_width"), pn.Row(approve, decline), sizing_mode="stretch_width")

    def decide(self, approved: bool) -> None:
        """Approve or decline the pending step, then continue the turn in a new message."""
        if self.state.pending is None or self._continuing:
            return  # a second click, or nothing is waiting
        self.state.resume(approved)
        for button in self._decision_buttons:
            button.disabled = True
        setattr(self._decision_buttons[0 if approved else 1], LABEL, "Approved" if approved else "Declined")
        self._continuing = True
        self.chat.respond()  # runs the callback again, which continues the paused turn

    def _reset_decision_buttons(self) -> None:
        for button, label in zip(self._decision_buttons, ("Approve", "Decline")):
            button.disabled = False
            setattr(button, LABEL, label)

    def stop(self) -> None:
        """Stop the running turn (what the chat's stop button does)."""
        self.state.abort()
        self.chat.stop()

    # -- table browser -----------------------------------------------------------------------
    def refresh_tables(self) -> None:
        """Re-read the row counts and the selected table."""
        # Read through the agent's own connection: a second connection to an in-memory
        # database would share (and could end) the step's transaction.
        try:
            counts = table_counts(self.state.db.connection)
        except Exception as exc:  # the browser is an aid: say what went wrong, keep the chat
            self.counts_view.object = f"Could not read the tables: {exc}"
            return
        lines = ["| table | rows |", "| --- | ---: |"] + [f"| {name} | {n} |" for name, n in counts.items()]
        pending = "\n\n_Includes changes waiting for approval._" if self.state.pending is not None else ""
        self.counts_view.object = "\n".join(lines) + pending
        selected = self.table_select.value
        self.table_select.options = list(counts)
        self.table_select.value = selected if selected in counts else next(iter(counts), None)
        if selected == self.table_select.value:  # the watcher did not fire: show fresh rows anyway
            self.show_table()

    def show_table(self) -> None:
        import pandas as pd  # a Panel dependency

        name = self.table_select.value
        if not name:
            self.table_view.value = pd.DataFrame()
            return
        columns, rows = table_rows(self.state.db.connection, name)
        self.table_view.value = pd.DataFrame(rows, columns=columns)

    def _welcome(self) -> str:
        from py_agent.demo import Base as DemoBase

        text = "Ask a question about the data, or ask for a change."
        if self.base is DemoBase:
            text += (
                " This is the demo bookshop; try *Add Tolkien and two of his books*, "
                "*Which customers bought nothing this year?* or *Give me an overview of the tables*."
            )
        return text


def create_app(*, base: Any = None, engine: Engine | None = None, model: str | Provider | None = None, approve: Approve = True, **agent_options: Any) -> pn.viewable.Viewable:
    """The Panel app: a chat over the agent with settings and a table browser.

    Defaults: the demo schema, a fresh in-memory demo database and the recorded
    demo model (or a real model when OPENAI_API_KEY etc. is set). ``approve=None``
    asks the person (Approve / Decline) before any change is saved; the other
    options go to :class:`~py_agent.Agent` (tools, allowed_imports, max_loops...).
    """
    return AgentChat(base=base, engine=engine, model=model, approve=approve, **agent_options).layout


def main(port: int = 5006) -> None:
    """Serve the app (``python -m py_agent.panel_app [port]``)."""
    pn.extension("tabulator")
    pn.serve(create_app, port=port, show=False, title="py-agent")


if __name__.startswith("bokeh"):  # `panel serve py_agent/panel_app.py`
    pn.extension("tabulator")
    create_app().servable(title="py-agent")

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5006)
