"""The terminal chat: read a request, run the agent's turn, show it as it streams, ask approvals.

:class:`ChatSession` reads lines from ``stdin`` and writes to ``stdout`` (both injectable,
which is how the tests drive it). Lines starting with ``!`` are commands (``!help``).
Every step that changes the database asks first, unless approvals are ``auto``:
``y`` saves it, ``a`` saves it and every later one in this session, ``n`` rolls it back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..app import App
from ..errors import PyAgentError
from ..events import Event
from ..messages import ResultMessage, UserMessage
from ..providers.base import Provider
from ..providers.scripted import ScriptedProvider
from ..recording import DemoRecorder
from ..state import State
from .log import Conversation, ConversationLog
from .render import Renderer

# The model to start with when a key is set, in this order (the Panel app's choices).
KEY_MODELS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai:gpt-4.1-mini"),
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("GEMINI_API_KEY", "gemini:gemini-2.5-flash"),
)
RESUMED_NOTE = ("(The conversation was resumed in a new Python session: names defined by earlier steps are "
                "gone; the database keeps every committed change.)")

HELP = """\
Type a request in plain words; the agent answers, writing and running Python against the database.
Commands:
  !model [ID]        show the model, or switch to ID (openai:gpt-4.1-mini, ollama:llama3.2, demo, ...)
  !approve ask|auto  ask before saving each change (ask), or save without asking (auto)
  !tokens            tokens (and cost, when known) of this conversation
  !undo              undo the last saved turn (repeat to go further back)
  !tables            row counts of the app's tables
  !new               start a new conversation on the same database
  !help              this text
  !quit              leave (or Ctrl-D); Ctrl-C stops a running turn
When a step changes data you are asked: y = save, a = save this and every later change in this
session, n = roll it back (the model is told and can try another way)."""


class ModelChoiceError(PyAgentError):
    kind = "configuration"


def default_model(app: App, env: Mapping[str, str] | None = None) -> str:
    """``$PY_AGENT_MODEL``, else a model whose API key is set, else the app's demo ("demo")."""
    env = os.environ if env is None else env
    if env.get("PY_AGENT_MODEL"):
        return env["PY_AGENT_MODEL"]
    for variable, model in KEY_MODELS:
        if env.get(variable):
            return model
    if app.demo_path is not None:
        return "demo"
    raise ModelChoiceError(
        "no model to talk to: no API key is set and this app has no recorded demo (DEMO)",
        hint="set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY) and run again, or pass --model, "
             "e.g. --model ollama:llama3.2 for a local Ollama server",
    )


def resolve_model(spec: str, app: App, *, delay: float = 0.0) -> str | Provider:
    """What ``Agent(model=...)`` takes for a model id typed by a person.

    Besides ``provider:model`` ids: ``demo`` replays the app's recorded demo, and
    ``script:FILE`` replays a JSON list of replies in order (for recording demos and tests).
    """
    spec = spec.strip()
    if spec == "demo" or spec.startswith("demo:"):
        model = app.recorded_model(delay=delay)
        if model is None:
            raise ModelChoiceError(f"the app {app.name} has no recorded demo",
                                   hint="record one with --record FILE and set DEMO = 'FILE' in the app, or choose a real model")
        return model
    if spec.startswith("script:"):
        path = Path(spec.removeprefix("script:")).expanduser()
        try:
            replies = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelChoiceError(f"cannot read the script {path}: {exc}", hint="a script is a JSON list of {\"message\", \"code\"} replies") from None
        if not isinstance(replies, list):
            raise ModelChoiceError(f"the script {path} is not a JSON list", hint="a script is a JSON list of {\"message\", \"code\"} replies")
        return ScriptedProvider(replies, model=f"script:{path.name}", chunk_size=12, delay=delay)
    return spec


class ChatSession:
    """One terminal chat over an app's database."""

    def __init__(
        self,
        app: App,
        engine: Any,
        *,
        model: str,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        approve: str = "ask",
        db_label: str = "",
        log: ConversationLog | None = None,
        conversation: Conversation | None = None,
        record: Path | None = None,
        provider_options: Mapping[str, Any] | None = None,
        agent_options: Mapping[str, Any] | None = None,
        color: bool | None = None,
        delay: float | None = None,
        app_spec: str = "",
    ) -> None:
        self.app = app
        self.engine = engine
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.render = Renderer(self.stdout, color=color)
        self.approve = approve
        self.db_label = db_label or engine.url.render_as_string(hide_password=True)
        self.log = log
        self.record = record
        self.recorder = DemoRecorder(app=app.name) if record else None
        self.provider_options = dict(provider_options or {})
        self.agent_options = dict(agent_options or {})
        self.app_spec = app_spec or app.name
        interactive = bool(getattr(self.stdout, "isatty", lambda: False)())
        self.delay = delay if delay is not None else (0.01 if interactive else 0.0)
        self.loop = asyncio.new_event_loop()
        self.model_spec = ""
        self.agent: Any = None
        self.last_turn_end: dict[str, Any] = {}
        self._pending_events: list[dict[str, Any]] = []
        self.set_model(model)
        self.conversation: Conversation | None = None
        self.state = self._open_state(conversation)

    # -- set-up ----------------------------------------------------------------------------------
    def set_model(self, spec: str) -> None:
        """Build the agent for model ``spec``; raises PyAgentError (with a hint) when it cannot."""
        model = resolve_model(spec, self.app, delay=self.delay)
        options = dict(self.agent_options)
        if self.provider_options and isinstance(model, str):
            options["provider_options"] = self.provider_options
        self.agent = self.app.agent(model, approve=True if self.approve == "auto" else None, **options)
        self.model_spec = spec

    def _open_state(self, conversation: Conversation | None) -> State:
        if conversation is not None:
            state = State.from_dict(conversation.state, engine=self.engine)
            if state.messages:
                state.messages.append(ResultMessage(RESUMED_NOTE))
            self.conversation = conversation
        else:
            state = State(engine=self.engine)
            if self.log is not None:
                self.conversation = self.log.start(app=self.app_spec, db_url=self.engine.url.render_as_string(hide_password=True), model=self.model_spec, state=state.to_dict())
        state.subscribe(self._observe)
        return state

    def _observe(self, event: Event) -> None:
        data = event.to_dict()
        self._pending_events.append(data)
        if self.recorder is not None:
            self.recorder.observe(data)

    # -- the loop --------------------------------------------------------------------------------
    def banner(self) -> None:
        style = self.render.style
        title = self.app.title + (f" — {self.app.description}" if self.app.description else "")
        self.render.line(style.bold("py-agent chat") + " · " + title)
        self.render.line(f"  database      {self.db_label}")
        self.render.line(f"  model         {self._model_label()}")
        if self.conversation is not None and self.log is not None:
            resumed = " (continued)" if self.state.messages else ""
            self.render.line(f"  conversation  {self.conversation.id}{resumed}, logged in {self.log.path}")
        if self.record is not None:
            self.render.line(f"  recording to  {self.record}")
        if self.app.suggestions:
            self.render.line("  try           " + "\n                ".join(self.app.suggestions[:4]))
        self.render.line(style.dim("  !help lists the commands; Ctrl-D leaves."))

    def _model_label(self) -> str:
        model = self.agent.provider.model
        if self.model_spec == "demo" or self.model_spec.startswith("demo:"):
            return f"{model} (the app's recorded demo: it replays recorded requests; set an API key for a real model)"
        return str(model)

    def run(self, messages: Sequence[str] | None = None) -> int:
        """Chat until the input ends or ``!quit``; with ``messages``, send those and stop."""
        self.banner()
        try:
            if messages is not None:
                for text in messages:
                    self.render.line(self.render.style.bold("you") + ": " + text)
                    if not self.handle(text):
                        break
                return 0
            while True:
                try:
                    text = self.read(self.render.style.bold("you") + ": ")
                except EOFError:
                    self.render.line()
                    return 0
                except KeyboardInterrupt:
                    self.render.line()
                    continue
                if not self.handle(text):
                    return 0
        finally:
            self.close()

    def read(self, prompt: str) -> str:
        """One line of input; EOFError at its end. A terminal gets line editing (readline)."""
        if self.stdin is sys.stdin and self.stdout is sys.stdout and sys.stdin.isatty():
            try:
                import readline  # noqa: F401 - line editing and history for input()
            except ImportError:
                pass
            return input(prompt)
        self.render.write(prompt)
        line = self.stdin.readline()
        if not line:
            raise EOFError
        line = line.rstrip("\r\n")
        self.render.write(line + "\n")  # echo, so a piped session reads like a typed one
        return line

    def handle(self, text: str) -> bool:
        """Act on one input line; False means leave."""
        text = text.strip()
        if not text:
            return True
        if text.startswith("!"):
            return self.command(text)
        self.turn(text)
        return True

    # -- turns -----------------------------------------------------------------------------------
    def turn(self, text: str) -> None:
        self.state.messages.append(UserMessage(text))
        while True:
            if not self._drive():
                break
            if self.state.pending is None:
                break
            approved, remember = self.ask_approval()
            if remember and "remember" in inspect.signature(self.state.resume).parameters:
                self.state.resume(approved, remember=True)
            else:
                self.state.resume(approved)
        self._save(title=text)

    def _drive(self) -> bool:
        """Run the agent until the turn ends or pauses; False when stopped with Ctrl-C."""

        async def consume() -> None:
            async for event in self.agent.arun(self.state):
                data = event.to_dict()
                if data["type"] == "turn_end":
                    self.last_turn_end = data
                elif data["type"] == "execution_result" and str(data.get("error") or "").startswith("KeyboardInterrupt"):
                    # Ctrl-C landed in the model's code: stop the turn, not just the step.
                    self.state.abort()
                self.render.event(data)
                if data["type"] == "error" and data.get("kind") == "unreachable":
                    self._local_server_hint()

        task = self.loop.create_task(consume())
        try:
            self.loop.run_until_complete(task)
        except KeyboardInterrupt:
            self.state.abort()
            task.cancel()
            self.loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
            self.render.line(self.render.style.yellow("(stopped; the open step was rolled back)"))
            return False
        return True

    def _local_server_hint(self) -> None:
        """How to start the local model server the model id names (ollama:..., vllm:...), if it is one."""
        from ..local_servers import find_server

        server = find_server("", self.model_spec.partition(":")[0])  # by the prefix only: a port proves nothing
        if server is not None:
            self.render.line(f"  to start {server.label}: {server.start}")

    def ask_approval(self) -> tuple[bool, bool]:
        """``(approved, remember)`` for the step waiting for approval."""
        if self.approve == "auto":
            return True, False
        while True:
            try:
                answer = self.read("  save these changes? [y]es / [a]lways this session / [n]o: ").strip().lower()
            except (EOFError, KeyboardInterrupt):
                self.render.line()
                return False, False
            if answer in ("y", "yes"):
                return True, False
            if answer in ("n", "no"):
                return False, False
            if answer in ("a", "always"):
                self._set_approve("auto")
                self.render.line(self.render.style.dim("  (changes are saved without asking for the rest of this session; !approve ask to ask again)"))
                return True, True
            self.render.line("  answer y, a or n")

    def _set_approve(self, mode: str) -> None:
        # The agent is kept (a scripted or recorded model keeps its place); only its rule changes.
        self.approve = mode
        self.agent.approve = True if mode == "auto" else None
        if hasattr(self.state, "auto_approve"):  # "allow for the rest of this conversation", kept by the state
            self.state.auto_approve = mode == "auto"

    def _save(self, title: str = "") -> None:
        events, self._pending_events = self._pending_events, []
        if self.log is not None and self.conversation is not None:
            self.log.add_events(self.conversation.id, events)
            self.log.save(self.conversation.id, state=self.state.to_dict(), model=self.model_spec, title=title[:200])
        if self.recorder is not None and self.record is not None:
            self.recorder.save(self.record)

    # -- commands --------------------------------------------------------------------------------
    def command(self, text: str) -> bool:
        name, _, argument = text[1:].partition(" ")
        argument = argument.strip()
        handler: Callable[[str], bool | None] | None = getattr(self, f"cmd_{name.lower()}", None)
        if handler is None:
            self.render.line(f"unknown command !{name}: !help lists them")
            return True
        return handler(argument) is not False

    def cmd_help(self, argument: str) -> None:
        self.render.line(HELP)

    def cmd_quit(self, argument: str) -> bool:
        return False

    cmd_exit = cmd_quit
    cmd_q = cmd_quit

    def cmd_model(self, argument: str) -> None:
        if not argument:
            self.render.line(f"model: {self._model_label()}")
            return
        try:
            self.set_model(argument)
        except PyAgentError as exc:
            self.render.line(self.render.style.red(f"error: {exc.message}"))
            if exc.hint:
                self.render.line(f"  {exc.hint}")
            return
        self.render.line(f"model: {self._model_label()}")

    def cmd_approve(self, argument: str) -> None:
        if argument not in ("ask", "auto"):
            self.render.line(f"approvals: {self.approve} (write !approve ask or !approve auto)")
            return
        self._set_approve(argument)
        self.render.line(f"approvals: {self.approve}")

    def cmd_tokens(self, argument: str) -> None:
        usage = self.state.usage
        text = f"this conversation: {usage.input_tokens:,} tokens in, {usage.output_tokens:,} out"
        total = self.last_turn_end.get("total_cost")
        if total is not None:
            text += f" (${total:.4f})"
        self.render.line(text)

    def cmd_undo(self, argument: str) -> None:
        undo = getattr(self.state, "undo", None)
        if undo is None:
            self.render.line("!undo is not available yet in this version of py-agent: the database keeps every saved step")
            return
        try:
            result = undo()
        except PyAgentError as exc:
            self.render.line(self.render.style.red(f"error: {exc.message}"))
            if exc.hint:
                self.render.line(f"  {exc.hint}")
            return
        except (RuntimeError, ValueError, LookupError) as exc:
            self.render.line(f"nothing undone: {exc}")
            return
        if inspect.isawaitable(result):
            result = self.loop.run_until_complete(result)
        # An `undone` event reaches the renderer through the subscription; show a result too.
        if isinstance(result, Event):
            self.render.event(result.to_dict())
        elif result is None:
            self.render.line("undone")
        self._save()

    def cmd_tables(self, argument: str) -> None:
        from sqlalchemy import func, select

        with self.engine.connect() as connection:
            for table in self.app.base.metadata.sorted_tables:
                count = connection.scalar(select(func.count()).select_from(table))
                self.render.line(f"  {table.fullname:<24} {count:>8,}")

    def cmd_new(self, argument: str) -> None:
        self.state.close()
        self.conversation = None
        self.state = self._open_state(None)
        who = f" {self.conversation.id}" if self.conversation else ""
        self.render.line(f"new conversation{who} (same database)")

    # -- the end ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self.state.pending is not None:
            self.render.line(self.render.style.yellow("(a step was waiting for approval: it was rolled back)"))
        self._save()
        if self.recorder is not None and self.record is not None:
            if self.recorder.turns:
                self.render.line(f"recorded {self.recorder.turns} turn(s) to {self.record}")
            else:
                self.render.line(f"nothing was recorded to {self.record} (no turn got a reply)")
        self.state.close()
        self.loop.close()


__all__ = ["ChatSession", "HELP", "KEY_MODELS", "ModelChoiceError", "default_model", "resolve_model"]
