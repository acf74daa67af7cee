"""The command driver of the browser worker: it answers the page's messages.

Pure Python (unit-tested on CPython); ``glue.py`` connects it to Pyodide.
``web/app/worker.js`` boots Pyodide, installs the wheels and hands every
message from the page to :meth:`glue.JsRuntime.handle`. Messages are JSON objects
with a ``type``; one may carry one binary field (``bytes`` for fetch chunks,
``db`` for database files), which travels as a ``Uint8Array`` beside the JSON.
Commands may carry a ``request`` id, echoed by their reply or ``error``.

Page -> worker
    ``init {shared, testHooks}`` (read by worker.js: the interrupt memory);
    ``open {schema, conversation?, db?, lost?}``; ``configure {provider, model,
    baseUrl, approve: "auto"|"ask", maxLoops?, timeout?, memoryLimit?}`` (never a
    key); ``send {text}``; ``decide {approved, remember?}`` (and the older
    ``approve``/``decline``); ``abort``; ``interrupt``; ``reset``; ``export``;
    ``import {db}``; ``undo {point?}``; ``restore {point}``; ``history``;
    ``new_conversation {conversation?}``; ``ping``; ``fetch_start {id, status,
    headers}``; ``fetch_chunk {id, bytes}``; ``fetch_end {id}``; ``fetch_error
    {id, kind, message, hint}``; with test hooks: ``debug {code}`` and
    ``debug_scan {needle}``.
Worker -> page
    ``boot {stage, message, loaded, total}``, ``booted {ms, isolated}`` and
    ``fatal {message, hint}`` (from worker.js, and from ``open`` when nothing can
    be opened); the core's events as they are (``py_agent.events``: system,
    signal, user_message, message_delta, ..., turn_end); ``ready {schema,
    restored, tables, python, messages, timeout, memoryLimit, history, enums,
    lost}``; ``storage_damaged {what, message}`` (a saved database or
    conversation that could not be read); ``pending_discarded {step, message}``;
    ``configured {model, timeout, memoryLimit}``; ``snapshot {reason,
    conversation, step, db?}`` (``db`` after every commit, import, undo, reset
    and the first seed); ``history {points}``; ``conversation_opened
    {messages, history}``; ``pong``; ``worker_broken {reason, message}``;
    ``fetch {id, method, url, headers, body, auth, stream, timeouts}``;
    ``fetch_abort {id}``; ``exported {db}``; ``import_started``;
    ``reset_done {tables}``; ``debug_result {ok, value}``,
    ``debug_scan_result {heap, files}``; and ``error {kind, message, hint,
    command?}`` when a command fails.

Time limit: the page writes SIGALRM into Pyodide's interrupt buffer when a step
passes ``timeout``; the core's ``Deadline`` turns it into :class:`StepTimeout`, so
the step fails with the same words as on CPython and the turn goes on (outside a
step the signal is ignored, see ``glue.py``). Code that ignores it is ended by the
page: terminate, then ``open {lost}`` on a new worker. Memory: worker.js refuses
to grow WebAssembly memory by more than ``memoryLimit`` MB during a step, so the
step fails with MemoryError; the model's variables are then cleared, and a Python
that still cannot allocate reports ``worker_broken`` so the page restarts it.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ConfigurationError, PyAgentError
from ..sandbox.limits import StepTimeout
from .files import DB_PATH, check_database, snapshot_bytes, table_counts
from .recovery import free_namespace, note_discarded, note_lost_step, pending_step, schema_enums
from .transport import BrowserTransport, Post

DEFAULT_CONFIG: dict[str, Any] = {
    "provider": "demo",  # demo | openai | anthropic | gemini | openai-compatible
    "model": "",
    "baseUrl": "",
    "approve": "auto",  # auto | ask
    "maxLoops": 12,
    "timeout": 30.0,  # seconds a step may run; the page enforces it (interrupt, then restart)
    "memoryLimit": 1024,  # MB of WebAssembly memory; worker.js refuses to grow past it
}
# Accepted ranges of the numeric settings (a value outside is clamped).
_LIMITS = {"maxLoops": (1, 100), "timeout": (1.0, 3600.0), "memoryLimit": (256, 4000)}
# After a MemoryError, Python must be able to allocate this much again to count as healthy.
_HEALTH_BYTES = 16 << 20


def provider_from_config(config: dict[str, Any], transport: Any, demo: Any = None) -> Any:
    """The provider the settings name; the demo model when there is none.

    ``demo``: makes the app's demo model (:meth:`py_agent.app.App.demo_model`: its recorded
    demo, or a model that says how to set one); without it, the built-in bookshop demo.
    """
    name = (config.get("provider") or "demo").strip()
    if name == "demo":
        if demo is not None:
            return demo()
        from ..demo.model import DemoModel

        return DemoModel()
    model = (config.get("model") or "").strip()
    if not model:
        raise ConfigurationError(f"no model is set for {name}", hint="open Settings and enter a model name, e.g. gpt-4.1-mini")
    from ..providers import resolve

    options: dict[str, Any] = {"transport": transport, "browser": True}
    if config.get("baseUrl"):
        options["base_url"] = config["baseUrl"].strip()
    return resolve(f"{name}:{model}", **options)


def clean_config(values: dict[str, Any]) -> dict[str, Any]:
    """The known settings in ``values``, with numbers checked and clamped to their range."""
    out: dict[str, Any] = {}
    for key, default in DEFAULT_CONFIG.items():
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key in _LIMITS:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigurationError(f"the setting {key} must be a number, not {value!r}", hint="open Settings and enter a number") from None
            if not math.isfinite(number):
                raise ConfigurationError(f"the setting {key} must be a finite number", hint="open Settings and enter a number")
            low, high = _LIMITS[key]
            number = min(max(number, low), high)
            out[key] = int(number) if isinstance(default, int) else number
        else:
            out[key] = str(value)
    return out


class Runtime:
    """Runs the agent in the worker and answers the page's commands.

    ``post(message, data)`` sends one message to the page (``data`` is the
    optional binary field). ``set_executing(flag)`` tells the page, through
    shared memory, whether model code is running right now, so an interrupt
    is only raised while there is code to interrupt (a late one would land in
    the event loop's own machinery).
    """

    def __init__(
        self,
        post: Post,
        *,
        db_path: str = DB_PATH,
        set_executing: Callable[[bool], None] | None = None,
        test_hooks: bool = False,
    ) -> None:
        self._post = post
        self.db_path = db_path
        self.transport = BrowserTransport(post)
        self.config = dict(DEFAULT_CONFIG)
        self.schema: Any = None  # the app's module
        self.app: Any = None  # its py_agent.app.App
        self.engine: Any = None
        self.state: Any = None
        self.agent: Any = None
        self.agent_error: PyAgentError | None = None
        self.task: asyncio.Task[None] | None = None
        self._set_executing = set_executing or (lambda flag: None)
        self._executing = False
        self._out_of_memory = False  # a step of this turn raised MemoryError
        self.on_demand: Any = None  # glue.py: the installer of the app's extra packages (ondemand.py)
        self.test_hooks = test_hooks

    # -- plumbing ------------------------------------------------------------------------------
    def post(self, message: dict[str, Any], data: bytes | None = None) -> None:
        self._post(message, data)

    def error(self, kind: str, message: str, hint: str = "", **extra: Any) -> None:
        self.post({"type": "error", "kind": kind, "message": message, "hint": hint, **extra})

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def timeout(self) -> float:
        return float(self.config.get("timeout") or DEFAULT_CONFIG["timeout"])

    def timeout_message(self) -> str:
        """What a step stopped at its time limit reports (the same words as on CPython)."""
        return f"the step ran longer than {self.timeout:g} s and was stopped"

    def receive(self, message: dict[str, Any], data: bytes | None = None) -> None:
        """Handle one message from the page. Never raises: failures become ``error`` messages."""
        kind = message.get("type", "")
        if kind.startswith("fetch_"):
            self.transport.receive(message, data)
            return
        handler = getattr(self, f"on_{kind}", None)
        if handler is None or (kind == "debug" and not self.test_hooks):
            self.error("protocol", f"the worker does not know the command {kind!r}", "this is a bug in the page's code")
            return
        try:
            result = handler(message, data)
            if asyncio.iscoroutine(result):
                self._spawn(result, message)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the person
            self._report(exc, message)

    def _report(self, exc: Exception, message: dict[str, Any]) -> None:
        """An ``error`` for a failed command, tagged so the page can match it to its request."""
        tags = {"command": message.get("type"), "request": message.get("request")}
        if isinstance(exc, PyAgentError):
            self.error(exc.kind, exc.message, exc.hint, **tags)
        else:
            self.error("internal", f"{tags['command']} failed: {type(exc).__name__}: {exc}", "reload the page; if it happens again, this is a py-agent bug", **tags)

    def _spawn(self, coroutine: Any, message: dict[str, Any]) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coroutine
            except Exception as exc:  # noqa: BLE001
                self._report(exc, message)

        return asyncio.ensure_future(guarded())

    def _require_idle(self, what: str, *, pending_ok: bool = True) -> None:
        if self.busy:
            raise PyAgentError(f"cannot {what} while the agent is working", hint="wait for the turn to end, or press Stop")
        if self.state is None:
            raise PyAgentError(f"cannot {what} before the database is open", hint="wait for the page to finish loading")
        if not pending_ok and self.state.pending is not None:
            raise PyAgentError("a step is waiting for approval", hint=f"approve or decline it before you {what}")

    # -- opening the database -------------------------------------------------------------------
    def on_open(self, message: dict[str, Any], data: bytes | None) -> None:
        """Open (or create and seed) the database; ``data`` restores a saved file.

        Always ends in ``ready`` or ``fatal``: the page must never wait forever.
        Optional fields: ``conversation`` (the saved one), ``lost {step, message,
        code, reason}`` (a step that died with the previous worker).
        """
        try:
            self._open(message, data)
        except Exception as exc:  # noqa: BLE001 - the page shows this instead of "Starting…"
            detail = exc.message if isinstance(exc, PyAgentError) else f"{type(exc).__name__}: {exc}"
            hint = getattr(exc, "hint", "") or "reload the page; if it happens again, this is a bug in the app's schema or in py-agent"
            self.post({"type": "fatal", "message": f"The database could not be opened: {detail}", "hint": hint})

    def _open(self, message: dict[str, Any], data: bytes | None) -> None:
        module_name = message.get("schema") or "py_agent.demo"
        from ..app import AppError, load_site_app

        try:
            # The app contract (py_agent.app): Base, seed/DATA, DEMO, tools, allowed_imports, prompt.
            self.app = load_site_app(module_name)
        except AppError as exc:
            raise ConfigurationError(f"the app {module_name!r} is not usable: {exc.message}", hint=exc.hint or "fix the app module and build the site again") from None
        self.schema = self.app.module
        restored = False
        if data:
            problems = check_database(data)
            if problems:
                # A broken saved copy must not stop the app. The page keeps the bytes it sent.
                self.post(
                    {
                        "type": "storage_damaged",
                        "what": "database",
                        "message": f"The saved database could not be read ({'; '.join(problems)}), so the app started from its initial data.",
                    }
                )
            else:
                self._write_file(data)
                restored = True
        if not restored and os.path.exists(self.db_path):
            os.remove(self.db_path)
        conversation = message.get("conversation")
        seeded, conversation_ok = self._open_state(conversation, seed=not restored)
        changed = seeded
        # A step that waited for approval when the conversation was saved: its transaction
        # died with the old worker, so it is reported as discarded (never left open).
        discarded = (getattr(self.state, "discarded_step", None) or pending_step(conversation)) if conversation_ok else None
        if discarded is not None:
            note_discarded(self.state, discarded)
            changed = True
        lost = message.get("lost")
        lost_error = None
        if isinstance(lost, dict) and conversation_ok:
            lost_error = note_lost_step(self.state, lost, timeout=self.timeout, memory=int(self.config["memoryLimit"]))
            changed = True
        self.post(
            {
                "type": "ready",
                "schema": module_name,
                "restored": restored,
                "tables": table_counts(self.db_path),
                "python": sys.version.split()[0],
                "messages": len(self.state.messages),
                "timeout": self.timeout,
                "memoryLimit": self.config["memoryLimit"],
                "history": self._history(),
                "autoApprove": bool(getattr(self.state, "auto_approve", False)),
                "enums": schema_enums(self.schema.Base),
                "lost": lost_error,
            }
        )
        if discarded is not None:
            self.post(
                {
                    "type": "pending_discarded",
                    "step": discarded,
                    "message": f"The changes of step {discarded} were waiting for your approval when the page was closed; they were not saved.",
                }
            )
        if changed:
            self.post_snapshot("seed" if seeded else "recovered", with_db=seeded)

    def _write_file(self, data: bytes) -> None:
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        with open(self.db_path, "wb") as f:
            f.write(data)

    def _open_state(self, conversation: Any, *, seed: bool) -> tuple[bool, bool]:
        """A fresh engine and State over the file.

        Returns (seed rows were added, the saved conversation was read).
        """
        from ..database import sqlite_engine
        from ..state import State

        self._close_state()
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        # Foreign keys enforced on every connection (seeding and reading too), SAVEPOINTs that work.
        self.engine = sqlite_engine(f"sqlite:///{self.db_path}")
        if seed:  # a fresh file: the app's tables, then its seed() or its DATA
            seeded = self.app.prepare(self.engine)
        else:  # a saved file: tables a newer schema added, nothing else
            self.schema.Base.metadata.create_all(self.engine)
            seeded = False
        ok = True
        try:
            self.state = State.from_dict(conversation, engine=self.engine) if conversation else State(engine=self.engine)
        except Exception as exc:  # noqa: BLE001 - any shape of damage: keep the app usable
            # The page keeps a copy of what it sent, for the person to download.
            self.post(
                {
                    "type": "storage_damaged",
                    "what": "conversation",
                    "message": f"The saved conversation could not be read ({type(exc).__name__}: {exc}), so a new one was started; your data is unchanged.",
                }
            )
            self.state = State(engine=self.engine)
            ok = False
        self._build_agent()
        return seeded, ok

    def _close_state(self) -> None:
        if self.state is not None:
            self.state.close()
            self.state = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _build_agent(self) -> None:
        """(Re)build the agent from the schema and settings; a bad setting is kept for the next send."""
        from .. import Agent

        self.agent, self.agent_error = None, None
        try:
            provider = provider_from_config(self.config, self.transport, demo=self._demo_factory())
        except PyAgentError as exc:
            self.agent_error = exc
            return
        options = self.app.agent_options() if self.app is not None else {"base": self.schema.Base}
        on_demand = self._on_demand_options(Agent)
        if on_demand.get("allowed_imports"):
            on_demand["allowed_imports"] = sorted({*options.get("allowed_imports", ()), *on_demand["allowed_imports"]})
        options.update(on_demand)
        self.agent = Agent(
            model=provider,
            approve=None if self.config.get("approve") == "ask" else True,
            max_loops=int(self.config.get("maxLoops") or DEFAULT_CONFIG["maxLoops"]),
            timeout=self.timeout,
            # In the browser worker.js enforces it (WebAssembly memory a step may add);
            # the core uses it for the wording of the MemoryError.
            memory_limit=float(self.config["memoryLimit"]),
            **options,
        )

    def _demo_factory(self) -> Callable[[], Any] | None:
        """The app's demo model; None (the built-in one) for py_agent's own demo schema."""
        if self.app is None or (self.app.demo_path is None and self.app.module.__name__ == "py_agent.demo"):
            return None
        return self.app.demo_model

    def _on_demand_options(self, agent_class: Any) -> dict[str, Any]:
        """Let model code import the site's on-demand packages, installed before the step runs."""
        on_demand = self.on_demand
        if on_demand is None or not on_demand.import_names:
            return {}
        options: dict[str, Any] = {"allowed_imports": sorted(on_demand.import_names)}
        if "before_run" in inspect.signature(agent_class).parameters:  # the core's hook (issue 13.3)
            options["before_run"] = on_demand.before_run
        return options

    # -- settings ----------------------------------------------------------------------------------
    def on_configure(self, message: dict[str, Any], data: bytes | None) -> None:
        """Change provider, model, base URL, approval mode, limits. The key never comes here."""
        if self.busy:
            raise PyAgentError("cannot change settings while the agent is working", hint="wait for the turn to end, or press Stop")
        self.config.update(clean_config(message))
        if self.schema is not None:
            self._build_agent()
            if self.agent_error is not None:
                raise self.agent_error
        self.post(
            {
                "type": "configured",
                "request": message.get("request"),
                "model": self._model_label(),
                "timeout": self.timeout,
                "memoryLimit": self.config["memoryLimit"],
            }
        )

    def _model_label(self) -> str:
        provider = self.config.get("provider") or "demo"
        return "demo" if provider == "demo" else f"{provider}:{self.config.get('model', '')}"

    # -- turns --------------------------------------------------------------------------------------
    def on_send(self, message: dict[str, Any], data: bytes | None) -> Any:
        from ..messages import UserMessage

        text = (message.get("text") or "").strip()
        if not text:
            raise PyAgentError("the message is empty", hint="type a request first")
        self._require_idle("send a message", pending_ok=False)
        if self.agent is None:
            raise self.agent_error or ConfigurationError("no model is configured", hint="open Settings")
        self.state.messages.append(UserMessage(text))
        self.task = self._spawn(self._run_turn(), message)

    def on_decide(self, message: dict[str, Any], data: bytes | None) -> None:
        """``decide {approved, remember?}``: remember = allow writes for the rest of the conversation."""
        self._decide(bool(message.get("approved")), remember=bool(message.get("remember")))

    def on_approve(self, message: dict[str, Any], data: bytes | None) -> None:
        self._decide(True)

    def on_decline(self, message: dict[str, Any], data: bytes | None) -> None:
        self._decide(False)

    def _decide(self, approved: bool, *, remember: bool = False) -> None:
        self._require_idle("decide")
        if self.state.pending is None:
            raise PyAgentError("no step is waiting for approval", hint="the step may have been decided already")
        # remember: "allow for the rest of this conversation" (State.auto_approve).
        self.state.resume(approved, remember=remember)
        self.task = self._spawn(self._run_turn(), {"type": "decide"})

    def on_abort(self, message: dict[str, Any], data: bytes | None) -> None:
        """Stop the turn; a paused step counts as declined."""
        if self.busy:
            self.state.abort()
            if self.transport.in_flight:
                # Waiting on the model: the loop would only notice at its next chunk, which
                # may never come. Cancelling is safe here: no database step is open.
                self.task.cancel()  # type: ignore[union-attr]
        elif self.state is not None and self.state.pending is not None:
            self._decide(False)

    def on_interrupt(self, message: dict[str, Any], data: bytes | None) -> None:
        # The shared-memory flag already stopped the running code (the executor turns
        # KeyboardInterrupt into the step's error); this message ends the turn as well.
        self.executing = False
        self.on_abort(message, data)

    async def _run_turn(self, events: AsyncIterator[Any] | None = None) -> None:
        state, agent = self.state, self.agent
        end: str | None = None  # the reason of the turn_end posted, once there is one
        self._out_of_memory = False
        try:
            async for event in events if events is not None else agent.arun(state):
                payload = event.to_dict()
                if payload["type"] == "turn_end":
                    end = payload["reason"]
                self._on_event(payload)
        except asyncio.CancelledError:
            pass  # Stop while waiting on the model (see on_abort)
        except KeyboardInterrupt:
            # An interrupt that landed outside the model's code (just after it finished).
            state.abort()
            self.error("interrupted", "the turn was stopped", "the database keeps every committed step")
        except StepTimeout:
            # The time limit struck just outside the model's code: end the turn, say why.
            state.abort()
            self.error("timeout", self.timeout_message(), "ask for less work per step; the database keeps every committed step")
        except Exception as exc:  # noqa: BLE001 - a bug in the loop must still end the turn visibly
            self.error("internal", f"the agent loop failed: {type(exc).__name__}: {exc}", "this is a py-agent bug; reload the page to continue")
        finally:
            self.executing = False
            if end is None:
                self._end_turn("aborted" if state._aborted else "error")
            self.post_snapshot("turn", with_db=False)
            if self._out_of_memory and not self._healthy():
                self.post({"type": "worker_broken", "reason": "memory", "message": "Python is still out of memory after the step ended."})

    def _end_turn(self, reason: str) -> None:
        usage = self.state.usage
        self.post({"type": "turn_end", "reason": reason, "steps": 0, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens})

    def _on_event(self, payload: dict[str, Any]) -> None:
        # Mark the window in which model code runs, for the page's interrupt button.
        self.executing = payload["type"] == "signal" and payload.get("signal") == "execution"
        if payload["type"] == "execution_result":
            error = payload.get("error") or ""
            if error.startswith("KeyboardInterrupt"):
                # Only the page's Stop raises this in the browser: end the turn, not just the step.
                self.state.abort()
            elif error.strip().splitlines()[-1:] and error.strip().splitlines()[-1].startswith("MemoryError"):
                self._relieve_memory()
        self.post(payload)
        if payload["type"] == "changes" and payload.get("status") == "committed":
            self.post_snapshot("commit")

    def _relieve_memory(self) -> None:
        """After a MemoryError: drop the model's variables, which may hold the memory."""
        self._out_of_memory = True
        keep = {"session", *(self.agent.helpers if self.agent else ()), *(self.agent.symbols if self.agent else ())}
        if self.agent is not None:
            keep |= set(self.agent.toolbox.namespace())
        removed = free_namespace(self.state.namespace, keep)
        if removed:
            self.post({"type": "notice", "message": f"The step ran out of memory; its variables were cleared to free it ({', '.join(sorted(removed)[:8])}{'…' if len(removed) > 8 else ''})."})

    def _healthy(self) -> bool:
        """Whether Python can allocate and serialise again (checked after a MemoryError)."""
        try:
            block = bytearray(_HEALTH_BYTES)
            json.dumps({"ok": len(block)})
            del block
            return True
        except MemoryError:
            return False

    @property
    def executing(self) -> bool:
        return self._executing

    @executing.setter
    def executing(self, flag: bool) -> None:
        if flag != self._executing:
            self._executing = flag
            self._set_executing(flag)

    def post_snapshot(self, reason: str, *, with_db: bool = True) -> None:
        """Send the conversation (and the committed database file) for persistence and sql.js.

        A step waiting for approval is noted in the conversation (``pending``), so a
        reloaded page can say that it was discarded instead of leaving the question open.
        """
        conversation = None
        if self.state is not None:
            conversation = self.state.to_dict()
            if self.state.pending is not None:
                conversation.setdefault("pending", {"step": self.state.pending.step})
        message = {"type": "snapshot", "reason": reason, "conversation": conversation, "step": self.state.step if self.state else 0}
        self.post(message, snapshot_bytes(self.db_path) if with_db else None)

    def on_ping(self, message: dict[str, Any], data: bytes | None) -> None:
        """A liveness check from the page: answers ``pong`` if Python can still allocate."""
        if self._healthy():
            self.post({"type": "pong", "request": message.get("request")})
        else:
            self.post({"type": "worker_broken", "reason": "memory", "message": "Python is out of memory.", "request": message.get("request")})

    # -- conversations and history -------------------------------------------------------------------
    def on_new_conversation(self, message: dict[str, Any], data: bytes | None) -> None:
        """Start an empty conversation (or continue the given one); the database is kept."""
        from ..state import State

        self._require_idle("start a new conversation")
        if self.state.pending is not None:
            self.state.resume(False)  # the step's transaction is rolled back with the old session
        conversation = message.get("conversation")
        old = self.state
        try:
            self.state = State.from_dict(conversation, engine=self.engine) if conversation else State(engine=self.engine)
        except Exception as exc:  # noqa: BLE001
            raise PyAgentError(f"that conversation could not be read ({type(exc).__name__}: {exc})", hint="start a new one instead") from None
        old.close()
        self._build_agent()
        self.post({"type": "conversation_opened", "request": message.get("request"), "messages": len(self.state.messages), "history": self._history()})
        self.post_snapshot("conversation", with_db=False)

    def _history(self) -> list[dict[str, Any]]:
        """The history points of the conversation (empty until State keeps a history)."""
        points = getattr(self.state, "history", None) or []
        return [p.to_dict() if hasattr(p, "to_dict") else p for p in points]

    def on_history(self, message: dict[str, Any], data: bytes | None) -> None:
        self._require_idle("list the history")
        self.post({"type": "history", "request": message.get("request"), "points": self._history()})

    def on_undo(self, message: dict[str, Any], data: bytes | None) -> None:
        """``undo {point?}``: undo the last committed turn (or the given point)."""
        point = message.get("point")
        self._history_command("undo", message, *([point] if point is not None else []))

    def on_restore(self, message: dict[str, Any], data: bytes | None) -> None:
        """``restore {point}``: bring the database back to an earlier point."""
        if message.get("point") is None:
            raise PyAgentError("which point? restore needs a point from the history", hint="choose a point in the history")
        self._history_command("restore", message, message["point"])

    def _history_command(self, name: str, message: dict[str, Any], *args: Any) -> None:
        self._require_idle(name, pending_ok=False)
        method = getattr(self.state, name, None)
        if method is None:
            raise PyAgentError(f"{name} is not available in this version of py-agent", hint="update py-agent")
        # State publishes what happened (history_point, undone): pass it on to the page.
        published: list[Any] = []
        unsubscribe = self.state.subscribe(published.append)
        try:
            result = method(*args)
        finally:
            unsubscribe()
        if not published and hasattr(result, "to_dict"):
            published.append(result)
        for event in published:
            self.post(event.to_dict())
        self.post({"type": "history", "request": message.get("request"), "points": self._history()})
        self.post_snapshot(name)

    # -- database commands --------------------------------------------------------------------------
    def on_export(self, message: dict[str, Any], data: bytes | None) -> None:
        if self.state is None:
            raise PyAgentError("the database is not open yet", hint="wait for the page to finish loading")
        self.post({"type": "exported", "request": message.get("request")}, snapshot_bytes(self.db_path))

    def on_import(self, message: dict[str, Any], data: bytes | None) -> None:
        """Import a database file as a step: checked against the schema, previewed, and
        paused with ``approval_required {kind: "import", detail: the schema report}``;
        decided like any write (and undoable afterwards)."""
        self._require_idle("import a database", pending_ok=False)
        problems = check_database(data or b"")
        if problems:
            raise PyAgentError("the file was not imported: " + "; ".join(problems), hint="choose an intact .sqlite file; the current database is unchanged")
        if self.agent is None:
            raise self.agent_error or ConfigurationError("no model is configured", hint="open Settings")
        self.post({"type": "import_started", "request": message.get("request")})
        self.task = self._spawn(self._run_turn(self.agent.aimport(self.state, data)), message)

    def on_reset(self, message: dict[str, Any], data: bytes | None) -> Any:
        """Forget the conversation and start from the seed data."""

        async def reset() -> None:
            if self.busy:
                self.on_abort(message, data)
                await asyncio.wait([self.task])  # type: ignore[list-item]
            self._close_state()
            if os.path.exists(self.db_path):
                os.remove(self.db_path)
            self._open_state(None, seed=True)
            self.post({"type": "reset_done", "request": message.get("request"), "tables": table_counts(self.db_path)})
            self.post_snapshot("reset")

        return reset()

    # -- test hooks ------------------------------------------------------------------------------------
    async def on_debug(self, message: dict[str, Any], data: bytes | None) -> None:
        """Run Python in the worker, outside the validator (tests only: enabled by the page's ?test)."""
        code = message.get("code", "")
        namespace: dict[str, Any] = {"runtime": self}
        reply: dict[str, Any] = {"type": "debug_result", "request": message.get("request")}
        try:
            result = eval(compile(code, "<debug>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)  # noqa: S307 - test hook
            if asyncio.iscoroutine(result):
                await result
            value = namespace.get("result")
            reply.update(ok=True, value=json.loads(json.dumps(value, default=repr)))
        except BaseException as exc:  # noqa: BLE001 - report whatever happened
            reply.update(ok=False, value=f"{type(exc).__name__}: {exc}")
        self.post(reply)
