"""The Panel app: a chat over a live conversation, with settings, history and a table browser.

:class:`AgentChat` is one browser session's view. The conversation it shows is a
:class:`~.conversations.LiveConversation` found by the ``conversation`` query parameter
(a reload comes back to it) or made new; its turns run in tasks of their own, so a view
that goes away stops nothing. :func:`create_app` is what ``panel serve`` calls per
session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import panel as pn
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from .. import events as ev
from ..errors import PyAgentError
from ..loop import Agent, Approve
from ..pricing import format_cost
from ..providers.base import Provider
from ..providers.registry import resolve
from ..server import ConversationNotFound, Server
from ..state import State
from .blocks import Chat, Message, button, labelled, markdown, on_click, safe_renderer
from .conversations import LIVE, LiveConversation, Segment, Settings
from .render import point_summary, render_error
from .stopping import StoppableWorkspace
from .turn import TurnView

ASSISTANT = "py-agent"
DEMO_MODEL_ID = "demo:recorded"
# Which model to start with when a provider's key is in the environment, in this order.
KEY_MODELS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai:gpt-4.1-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("GEMINI_API_KEY", "gemini:gemini-2.5-flash"),
)
TABLE_ROWS = 50  # rows shown by the table browser
EXTENSIONS = ("tabulator", "vega")  # Panel extensions the page loads (served by Panel itself)


# -- models ----------------------------------------------------------------------------------


def default_model_id(api_key: str = "", env: Mapping[str, str] | None = None) -> str:
    """The model to start with: ``PY_AGENT_MODEL``, a real one when a key is at hand, else the demo."""
    env = os.environ if env is None else env
    if env.get("PY_AGENT_MODEL"):
        return env["PY_AGENT_MODEL"]
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
        from ..demo.model import DemoModel

        return DemoModel()
    options = {name: value for name, value in (("api_key", api_key), ("base_url", base_url.strip())) if value}
    return resolve(model_id, **options)


# -- table browser ---------------------------------------------------------------------------


def table_counts(connection: Connection) -> dict[str, int]:
    """Row count per table of the database behind ``connection`` (py-agent's own tables left out)."""
    names = [n for n in sa.inspect(connection).get_table_names() if not n.startswith("py_agent_")]
    return {name: int(connection.scalar(sa.select(sa.func.count()).select_from(sa.table(name))) or 0) for name in names}


def table_rows(connection: Connection, name: str, limit: int = TABLE_ROWS) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and the first ``limit`` rows of table ``name``."""
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    rows = connection.execute(sa.select(table).limit(limit)).all()
    return [c.name for c in table.columns], [tuple(row) for row in rows]


# -- opening a conversation ------------------------------------------------------------------------


def attach_workspace(state: State, workspace: Any) -> None:
    """Give ``state`` this workspace (until State has a public way to)."""
    state._workspace = workspace
    state.session = workspace.session


def _stoppable(state: State) -> None:
    """Run the state's in-process steps off the event loop, so Stop can interrupt them."""
    workspace = state._workspace
    if workspace is not None and hasattr(workspace, "db") and not isinstance(workspace, StoppableWorkspace):
        attach_workspace(state, StoppableWorkspace(workspace))


def open_local(base: Any, engine: Engine | None, key: Any) -> LiveConversation:
    """A new conversation on ``engine`` (default: a fresh copy of the demo bookshop in memory)."""
    from ..demo import Base as DemoBase, create_demo_engine
    from ..database import memory_engine
    from ..workspace import LocalWorkspace

    if engine is None:
        if base is DemoBase:
            engine = create_demo_engine()
        else:
            engine = memory_engine()
            base.metadata.create_all(engine)
    state = State(engine=engine)
    attach_workspace(state, StoppableWorkspace(LocalWorkspace(engine, namespace=state.namespace)))
    return LiveConversation(state, key=key, engine=engine)


def open_stored(server: Server, conversation_id: str | None, owner: str | None) -> LiveConversation:
    """A server's conversation: ``conversation_id`` from its store, or a new one (ConversationNotFound)."""
    record = server.open(conversation_id, owner=owner)
    if not server.separate_process:
        _stoppable(record.state)
    return LiveConversation(record.state, key=server, record=record, owner=owner, engine=server.engine)


# -- the app ---------------------------------------------------------------------------------


class AgentChat:
    """One browser session: a chat over a live conversation, its settings, history and tables."""

    def __init__(
        self,
        *,
        base: Any = None,
        engine: Engine | None = None,
        model: str | Provider | None = None,
        approve: Approve = True,
        server: Server | None = None,
        conversation: str | None = None,
        owner: str | None = None,
        **agent_options: Any,
    ) -> None:
        from ..demo import Base as DemoBase

        self.server = server
        self.owner = owner
        self.notices: list[str] = []
        if server is not None:
            self.base = server.app.base
            app_options = {k: v for k, v in server.app.agent_options().items() if k != "base"}
            self.agent_options = {**app_options, **server.agent_options, **agent_options}
            self._key: Any = server
        else:
            self.base = base if base is not None else DemoBase
            self.agent_options = agent_options
            self._key = (self.base, engine)
        self._engine = engine
        self.approve = approve
        self._agent: Agent | None = None
        # A provider object given by the caller is used while the model field shows its id.
        self._provider = model if isinstance(model, Provider) else None
        self._initial_model = model.model if isinstance(model, Provider) else (model or default_model_id())
        self._follow: Segment | None = None  # a segment the next callback shows instead of sending a message
        self._views: dict[int, TurnView] = {}
        self.live = self._open(conversation)

        self._build_widgets()
        self._show_conversation()
        self.live.attach(self)

    # -- the conversation ----------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self.live.state

    @property
    def conversation(self) -> Any:
        """The server's stored conversation (None without a server)."""
        return self.live.record

    @property
    def engine(self) -> Engine:
        return self.live.engine if self.live.engine is not None else self.server.engine  # type: ignore[union-attr]

    def _open(self, conversation_id: str | None) -> LiveConversation:
        live = LIVE.find(conversation_id, key=self._key, owner=self.owner) if conversation_id else None
        if live is not None:
            return live
        if self.server is not None:
            try:
                live = open_stored(self.server, conversation_id, self.owner)
            except ConversationNotFound as missing:
                self.notices.append(f"{missing.message}; this is a new conversation.")
                live = open_stored(self.server, None, self.owner)
            if live.state.discarded_step is not None:
                self.notices.append(
                    f"Step {live.state.discarded_step} was waiting for approval when this conversation was last open "
                    "elsewhere; its changes were not saved."
                )
        else:
            if conversation_id:
                self.notices.append(
                    "That conversation is no longer on this server (without a database store a conversation is kept "
                    "in memory for a while after its last tab closed, and not across restarts); this is a new one."
                )
            live = open_local(self.base, self._engine, self._key)
        return LIVE.add(live)

    # -- widgets ------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        settings = self.live.settings
        model_value = settings.model if settings else self._initial_model
        self.model_input = pn.widgets.TextInput(**labelled("Model"), value=model_value, placeholder="provider:model, e.g. openai:gpt-4.1-mini")
        self.base_url_input = pn.widgets.TextInput(
            **labelled("Base URL"), value=settings.base_url if settings else os.environ.get("PY_AGENT_BASE_URL", ""),
            placeholder="optional, e.g. http://localhost:11434/v1",
        )
        key_note = "set earlier in this conversation" if settings and settings.api_key else "optional if set in the environment"
        self.api_key_input = pn.widgets.PasswordInput(**labelled("API key"), placeholder=key_note)
        self.ask_input = pn.widgets.Checkbox(**labelled("Ask before saving changes"), value=settings.ask if settings else self.approve is None)
        self.model_status = markdown()
        for widget in (self.model_input, self.base_url_input, self.api_key_input, self.ask_input):
            widget.param.watch(self._settings_changed, "value")
        self.api_key_input.param.watch(self._key_entered, "value")
        self._remember_settings()
        self._show_model()

        # history
        self.new_button = on_click(button("New conversation", "plus", kind="light"), self.new_conversation)
        self.undo_button = on_click(button("Undo the last turn", "undo", kind="light"), self.undo)
        self.history_view = pn.Column(sizing_mode="stretch_width", margin=0)
        self.conversations_view = markdown()

        # table browser
        self.counts_view = markdown()
        self.table_select = pn.widgets.Select(**labelled("Table"), options=[])
        self.table_view = pn.widgets.Tabulator(None, disabled=True, show_index=False, height=260, sizing_mode="stretch_width")
        self.table_select.param.watch(lambda _: self.show_table(), "value")
        refresh = on_click(button("Refresh", "refresh", kind="light"), self.refresh_tables)

        self.chat = Chat(
            callback=self.respond,
            callback_user=ASSISTANT,
            user="You",
            # Undo, rerun and clear would edit the page but not the conversation the
            # model sees, nor the database: leave them out rather than mislead.
            show_undo=False,
            show_rerun=False,
            show_clear=False,
            renderers=[safe_renderer],
            button_properties={
                # Runs before the built-in stop (which cancels this view's callback): the
                # conversation's own task stops the turn and interrupts the running step.
                "stop": {"callback": lambda instance, event: self.stop()},
            },
            sizing_mode="stretch_both",
        )
        self.sidebar = pn.Column(
            "### Settings",
            self.model_input,
            self.base_url_input,
            self.api_key_input,
            self.ask_input,
            self.model_status,
            pn.layout.Divider(),
            "### Conversation",
            pn.Row(self.new_button, self.undo_button),
            self.history_view,
            self.conversations_view,
            pn.layout.Divider(),
            "### Tables",
            self.counts_view,
            self.table_select,
            self.table_view,
            refresh,
            width=360,
            scroll=True,
            sizing_mode="stretch_height",
        )
        self.layout = pn.Row(self.sidebar, self.chat, sizing_mode="stretch_both")

    def _show_conversation(self) -> None:
        """Draw the conversation from its log (a new one shows the welcome text)."""
        self.chat.send(self._welcome(), user=ASSISTANT, respond=False)
        pending = self.state.pending.step if self.state.pending is not None else None
        decided: set[int] = set()
        for segment in self.live.segments:
            view = self._view_for(segment)
            for event in segment.events:
                view.add(event)
                if event.get("type") == "approval_decision":
                    self._decided(event)
                    decided.add(int(event.get("step") or 0))
            self._send_segment(segment, view)
        for view in self._views.values():
            for step in view.decisions:
                if step != pending and step not in decided:
                    view.mark_discarded(step)  # it waited when the conversation was saved: gone
        for notice in self.notices:
            self.chat.send(notice, user=ASSISTANT, respond=False)
        self.refresh_tables()
        self.refresh_history()
        if self.live.running and self.live.segments:
            self._follow = self.live.segments[-1]
            pn.state.onload(self._follow_running)

    def _follow_running(self) -> None:
        """Show the Stop button for a turn that was already running when this view opened."""
        if self._follow is not None and self._follow.running:
            self.chat.respond()
        else:
            self._follow = None

    def _view_for(self, segment: Segment) -> TurnView:
        view = self._views.get(segment.id)
        if view is None:
            view = self._views[segment.id] = TurnView(actions=self)
        return view

    def _send_segment(self, segment: Segment, view: TurnView) -> None:
        if segment.request:
            self.chat.send(segment.request, user="You", respond=False)
        self.chat.send(self._message(view), respond=False)

    @staticmethod
    def _message(view: TurnView) -> pn.chat.ChatMessage:
        return Message(view.column, user=ASSISTANT)

    # -- settings --------------------------------------------------------------------------
    def _settings_changed(self, *_: Any) -> None:
        self._agent = None  # rebuilt with the new settings at the next message
        self._remember_settings()
        self._show_model()

    def _remember_settings(self) -> None:
        # Kept with the conversation (in memory only), so a reload keeps the model and key.
        previous = self.live.settings
        key = self.api_key_input.value or (previous.api_key if previous else "")
        self.live.settings = Settings(self.model_input.value, self.base_url_input.value, key, bool(self.ask_input.value))

    def _key_entered(self, event: Any) -> None:
        # A key typed while the demo is selected means "use a real model".
        if event.new and self.model_input.value.strip() in ("", DEMO_MODEL_ID):
            self.model_input.value = default_model_id(event.new, env={})

    def _show_model(self) -> None:
        settings = self.live.settings
        model_id = self.model_input.value.strip() or default_model_id(settings.api_key if settings else "")
        note = " (recorded replies; enter an API key for a real model)" if model_id.startswith("demo:") else ""
        cost = self.state.cost
        spent = f"\n\nThis conversation so far: {format_cost(cost)}" if cost is not None else ""
        self.model_status.object = f"Model: `{model_id}`{note}{spent}"

    def agent(self) -> Agent:
        """The agent for the current settings (built on first use after a change)."""
        if self._agent is None:
            settings = self.live.settings or Settings()
            model = self.model_input.value.strip()
            provider = self._provider
            if provider is None or model != provider.model or settings.api_key or self.base_url_input.value:
                provider = make_provider(model, api_key=settings.api_key, base_url=self.base_url_input.value)
            approve: Approve = None if self.ask_input.value else (self.approve if self.approve is not None else True)
            if self.server is not None:
                self._agent = self.server.agent(provider, approve=approve, **self.agent_options)
            else:
                self._agent = Agent(base=self.base, model=provider, approve=approve, **self.agent_options)
        return self._agent

    # -- the chat callback -----------------------------------------------------------------
    async def respond(self, contents: Any, user: str, instance: pn.chat.ChatInterface) -> AsyncIterator[Any]:
        """Start a turn for the person's message (or show the one to follow), streaming it into one message."""
        follow, self._follow = self._follow, None
        live = self.live
        if follow is None:
            text = contents if isinstance(contents, str) else str(contents)
            if not text.strip():
                return
            if live.state.pending is not None and not live.running:
                live.queue.append(text)
                yield (
                    f"Step {live.state.pending.step} is waiting for your decision: your message is kept and sent "
                    "once you press **Approve**, **Decline** or **Allow for the rest of this conversation** above."
                )
                return
            await live.idle()  # a stopped step may still be ending
            try:
                agent = self.agent()
            except PyAgentError as exc:
                yield render_error(ev.ErrorEvent(exc.kind, exc.message, exc.hint).to_dict())
                return
            follow = live.start_turn(agent, text, origin=self)
            self._show_address()
        yield self._message(self._view_for(follow))
        await self._wait(follow)
        # Messages typed while a step waited for a decision go now, one turn each.
        while live.queue and live.state.pending is None and not live.running:
            text = live.queue.pop(0)
            try:
                agent = self.agent()
            except PyAgentError as exc:
                self.chat.send(render_error(ev.ErrorEvent(exc.kind, exc.message, exc.hint).to_dict()), user=ASSISTANT, respond=False)
                break
            self.chat.send(text, user="You", respond=False)
            segment = live.start_turn(agent, text, origin=self)
            self.chat.send(self._message(self._view_for(segment)), respond=False)
            await self._wait(segment)

    async def _wait(self, segment: Segment) -> None:
        assert segment.done is not None
        try:
            await asyncio.shield(segment.done)
        except asyncio.CancelledError:
            self.live.stop()  # the page asked (Stop), or the session ended: the conversation's task decides
            raise

    def segment_started(self, segment: Segment, origin: Any) -> None:
        view = self._view_for(segment)
        if origin is self and segment.kind in ("turn", "decision"):
            return  # this view's callback shows it
        self._send_segment(segment, view)

    def segment_event(self, segment: Segment, event: dict[str, Any]) -> None:
        self._view_for(segment).add(event)
        if event.get("type") == "approval_decision":
            self._decided(event)
        elif event.get("type") == "undone":
            self.refresh_history()

    def _decided(self, event: Mapping[str, Any]) -> None:
        """The decision on a step continues in a message of its own: its card says what was decided."""
        step = int(event.get("step") or 0)
        for view in self._views.values():
            view.mark_decided(step, bool(event.get("approved")), bool(event.get("remember")))

    def segment_ended(self, segment: Segment) -> None:
        self.refresh_tables()
        self.refresh_history()
        self._show_model()

    def decide(self, approved: bool, remember: bool = False) -> None:
        """Approve or decline the pending step, then continue the turn in a new message."""
        live = self.live
        pending = live.state.pending
        if pending is None or live.running:
            return  # a second click, or nothing is waiting
        view = next((v for v in self._views.values() if pending.step in v.decisions), None)
        try:
            agent = self.agent()
        except PyAgentError as exc:  # let the person fix the settings and decide again
            self.chat.send(render_error(ev.ErrorEvent(exc.kind, exc.message, exc.hint).to_dict()), user=ASSISTANT, respond=False)
            return
        if view is not None:
            view.mark_decided(pending.step, approved, remember)
        self._follow = live.decide(agent, approved, remember, origin=self)
        self.chat.respond()  # runs the callback, which shows the rest of the turn

    def stop(self) -> None:
        """Stop the running turn: the step is interrupted (or its worker ended) and rolled back."""
        self.live.stop()

    # -- history -------------------------------------------------------------------------------
    def undo(self, point: int | None = None) -> str:
        """Undo this conversation's last committed turn; returns (and shows) what happened."""
        _, text = self.live.undo(point, origin=self)
        return text

    def restore(self, point: int) -> str:
        """Bring the database back to how it was right after history point ``point`` (0: the start)."""
        _, text = self.live.restore(point, origin=self)
        return text

    def refresh_history(self) -> None:
        """Redraw the history list and bring every turn's Undo button up to date."""
        points = self.live.history()
        by_id = {int(p["id"]): p for p in points}
        for view in self._views.values():
            view.mark_points(by_id)
        rows: list[Any] = []
        latest = points[-1]["id"] if points else None
        for point in reversed(points[-20:]):
            restore = button("Restore", "history", kind="light", width=100)
            restore.disabled = point["id"] == latest or self.live.running
            on_click(restore, lambda ident=point["id"]: self.restore(ident))
            rows.append(pn.Row(markdown(point_summary(point), margin=(0, 5)), restore, sizing_mode="stretch_width"))
        if points:
            start = on_click(button("Restore the start", "history", kind="light"), lambda: self.restore(0))
            start.disabled = self.live.running
            rows.append(start)
            title = markdown("**History** (newest first; Restore brings the data back to right after that point)")
        else:
            title = markdown("_No saved changes yet: each committed turn becomes a point you can undo._")
        self.history_view.objects = [title, *rows]
        self.undo_button.disabled = not any(p.get("undoable") and not p.get("undone") and p.get("kind") != "undo" for p in points)
        self._show_conversations()

    def _show_conversations(self) -> None:
        """A server with a store: links to this person's other conversations."""
        store = self.server.store if self.server is not None else None
        if store is None:
            self.conversations_view.object = ""
            return
        try:
            stored = store.list(owner=self.owner, limit=10)
        except Exception as exc:  # noqa: BLE001 - an aid: say why, keep the chat
            self.conversations_view.object = f"_Could not list the conversations: {exc}_"
            return
        lines = [
            f"- [{(c.title or 'untitled')[:50]}](?conversation={c.id})" + (" (this one)" if c.id == self.live.id else "")
            for c in stored
        ]
        self.conversations_view.object = ("**Conversations**\n\n" + "\n".join(lines)) if lines else ""

    def new_conversation(self) -> None:
        """Start a new conversation on the same data; the old one is kept (its address resumes it)."""
        if self.live.running:
            return
        old = self.live
        old.detach(self)
        if self.server is not None:
            self.live = LIVE.add(open_stored(self.server, None, self.owner))
        else:
            self.live = LIVE.add(open_local(self.base, old.engine, self._key))
        self.live.settings = old.settings
        self.notices = []
        self._views.clear()
        self._agent = None
        self.live.attach(self)
        self.chat.clear()
        self._show_conversation()
        self._show_address()

    # -- table browser -----------------------------------------------------------------------
    def refresh_tables(self) -> None:
        """Re-read the row counts and the selected table."""
        if self.live.running:
            return  # the step's own connection is busy; the browser refreshes when the turn ends
        try:
            with self._reading() as connection:
                counts = table_counts(connection)
        except Exception as exc:  # noqa: BLE001 - the browser is an aid: say what went wrong, keep the chat
            self.counts_view.object = f"Could not read the tables: {exc}"
            return
        lines = ["| table | rows |", "| --- | ---: |"] + [f"| {name} | {n} |" for name, n in counts.items()]
        pending = "\n\n_Includes changes waiting for approval._" if self.state.pending is not None and self._reads_own_connection() else ""
        self.counts_view.object = "\n".join(lines) + pending
        selected = self.table_select.value
        self.table_select.options = list(counts)
        self.table_select.value = selected if selected in counts else next(iter(counts), None)
        if selected == self.table_select.value:  # the watcher did not fire: show fresh rows anyway
            self.show_table()

    def show_table(self) -> None:
        import pandas as pd  # a Panel dependency

        name = self.table_select.value
        if not name or self.live.running:
            if not name:
                self.table_view.value = pd.DataFrame()
            return
        with self._reading() as connection:
            columns, rows = table_rows(connection, name)
        self.table_view.value = pd.DataFrame(rows, columns=columns)

    def _reads_own_connection(self) -> bool:
        workspace = self.state._workspace
        return workspace is not None and getattr(workspace, "db", None) is not None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for the table browser.

        The conversation's own, when its code runs in this process (a second connection to
        an in-memory database would share, and could end, the step's transaction; and it
        shows changes waiting for approval); else one of this process's own (committed rows).
        """
        if self._reads_own_connection():
            yield self.state._workspace.db.connection  # type: ignore[union-attr]
        else:
            with self.engine.connect() as connection:
                yield connection

    # -- the address --------------------------------------------------------------------------
    def _show_address(self) -> None:
        """Put the conversation's id in the page address, so a reload comes back to it."""
        location = pn.state.location if pn.state.curdoc is not None else None
        if location is not None:
            with contextlib.suppress(Exception):
                location.update_query(conversation=self.live.id)

    def detach(self) -> None:
        """This browser session ended: the conversation stays for a reload (see conversations.py)."""
        self.live.detach(self)

    def close(self) -> None:
        """End this conversation in this process (its worker, its connection); a stored copy stays."""
        self.live.detach(self)
        LIVE.remove(self.live)
        self.live.close()

    def _welcome(self) -> str:
        from ..demo import Base as DemoBase

        text = "Ask a question about the data, or ask for a change."
        if self.base is DemoBase:
            text += (
                " This is the demo bookshop; try *Add Tolkien and two of his books*, "
                "*Which customers bought nothing this year?* or *Give me an overview of the tables*."
            )
        return text


def create_app(
    *,
    base: Any = None,
    engine: Engine | None = None,
    model: str | Provider | None = None,
    approve: Approve = True,
    app: Any = None,
    url: str | None = None,
    store_url: str | None = None,
    separate_process: bool = True,
    server: Server | None = None,
    **agent_options: Any,
) -> pn.viewable.Viewable:
    """The Panel app: a chat over the agent with settings, history and a table browser.

    Defaults: the demo schema, a fresh in-memory demo database per conversation and the
    recorded demo model (or a real model when OPENAI_API_KEY etc. is set). ``approve=None``
    asks the person (Approve / Decline / Allow for the rest of this conversation) before any
    change is saved; the other options go to :class:`~py_agent.Agent` (tools,
    allowed_imports, max_loops...).

    Each browser session's conversation is named in the address (``?conversation=ID``):
    a reload comes back to it, with its database, for as long as this process keeps it.
    For many people at once pass ``app`` (an app module, see :mod:`py_agent.app`) and
    ``url`` (the database, as the app's least-privilege role): conversations are then
    also stored in the database (or ``store_url``'s) and resumed in any process, with
    their code in a separate worker process unless ``separate_process=False``.
    """
    if server is None and app is not None:
        if url is None:
            raise PyAgentError("create_app(app=...) needs the database URL too", hint="pass url='postgresql+psycopg://role@host/db'")
        server = shared_server(app, url, store_url=store_url, separate_process=separate_process)
    conversation = _query_parameter("conversation")
    if server is not None:
        chat = AgentChat(server=server, conversation=conversation, owner=_user(), model=model, approve=approve, **agent_options)
    else:
        chat = AgentChat(base=base, engine=engine, conversation=conversation, model=model, approve=approve, **agent_options)
    _detach_with_session(chat)
    return chat.layout


_SERVERS: dict[tuple[Any, ...], Server] = {}


def shared_server(app: Any, url: str, *, store_url: str | None = None, separate_process: bool = True) -> Server:
    """The :class:`Server` for these settings in this process (made once: its configuration and
    connection pools are shared by the sessions; no conversation state is)."""
    key = (str(app), url, store_url, separate_process)
    if key not in _SERVERS:
        _SERVERS[key] = Server.create(app, url, store_url=store_url, separate_process=separate_process)
    return _SERVERS[key]


def _query_parameter(name: str) -> str | None:
    values = (pn.state.session_args or {}).get(name) if pn.state.curdoc is not None else None
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _user() -> str | None:
    user = pn.state.user if pn.state.curdoc is not None else None
    return user or None


def _detach_with_session(chat: AgentChat) -> None:
    """When the browser session ends, the conversation is kept for a while (a reload comes back)."""
    if pn.state.curdoc is not None:
        with contextlib.suppress(Exception):
            pn.state.on_session_destroyed(lambda context: chat.detach())


def from_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``panel serve`` settings from the environment.

    PY_AGENT_APP and PY_AGENT_DB (a server: conversations stored, code in worker
    processes), PY_AGENT_STORE, PY_AGENT_IN_PROCESS=1; PY_AGENT_ASK=1 (ask before saving).
    PY_AGENT_MODEL and PY_AGENT_BASE_URL preset the model settings.
    """
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    if env.get("PY_AGENT_ASK", "") in ("1", "true", "yes"):
        options["approve"] = None
    app = env.get("PY_AGENT_APP")
    if app:
        options.update(
            app=app,
            url=env.get("PY_AGENT_DB"),
            store_url=env.get("PY_AGENT_STORE") or None,
            separate_process=env.get("PY_AGENT_IN_PROCESS", "") not in ("1", "true", "yes"),
        )
    return options


def main(port: int = 5006) -> None:
    """Serve the app (``python -m py_agent.panel_app [port]``)."""
    pn.extension(*EXTENSIONS)
    pn.serve(lambda: create_app(**from_environment()), port=port, show=False, title="py-agent")
