"""The command driver of the browser worker: it answers the page's messages.

Pure Python (unit-tested on CPython); ``glue.py`` connects it to Pyodide.
``web/app/worker.js`` boots Pyodide, installs the wheels and hands every
message from the page to :meth:`glue.JsRuntime.handle`. Messages are JSON objects
with a ``type``; one may carry one binary field (``bytes`` for fetch chunks,
``db`` for database files), which travels as a ``Uint8Array`` beside the JSON.
Commands may carry a ``request`` id, echoed by their reply or ``error``.

Page -> worker
    ``init {shared, testHooks}`` (read by worker.js: the interrupt memory);
    ``open {schema, conversation?, db?}``; ``configure {provider, model, baseUrl,
    approve: "auto"|"ask", maxLoops?}`` (never a key); ``send {text}``;
    ``approve``; ``decline``; ``abort``; ``interrupt``; ``reset``; ``export``;
    ``import {db}``; ``fetch_start {id, status, headers}``; ``fetch_chunk {id,
    bytes}``; ``fetch_end {id}``; ``fetch_error {id, kind, message, hint}``;
    with test hooks: ``debug {code}`` and ``debug_scan {needle}``.
Worker -> page
    ``boot {stage, message, loaded, total}``, ``booted {ms, isolated}`` and
    ``fatal {message, hint}`` (from worker.js); the core's events as they are
    (``py_agent.events``: system, signal, user_message, message_delta, ...,
    turn_end); ``ready {schema, restored, tables, python, messages}``;
    ``configured {model}``; ``snapshot {reason, conversation, db?}`` (``db``
    after every commit, import, reset and the first seed); ``fetch {id, method,
    url, headers, body, auth, stream, timeouts}``; ``fetch_abort {id}``;
    ``exported {db}``; ``imported {tables}``; ``reset_done {tables}``;
    ``debug_result {ok, value}``, ``debug_scan_result {heap, files}``; and
    ``error {kind, message, hint, command?}`` when a command fails.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError, PyAgentError
from .files import DB_PATH, check_database, snapshot_bytes, table_counts
from .transport import BrowserTransport, Post

DEFAULT_CONFIG: dict[str, Any] = {
    "provider": "demo",  # demo | openai | anthropic | gemini | openai-compatible
    "model": "",
    "baseUrl": "",
    "approve": "auto",  # auto | ask
    "maxLoops": 12,
}


def provider_from_config(config: dict[str, Any], transport: Any) -> Any:
    """The provider the settings name; the demo model when there is none."""
    name = (config.get("provider") or "demo").strip()
    if name == "demo":
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
        self.schema: Any = None
        self.engine: Any = None
        self.state: Any = None
        self.agent: Any = None
        self.agent_error: PyAgentError | None = None
        self.task: asyncio.Task[None] | None = None
        self._set_executing = set_executing or (lambda flag: None)
        self._executing = False
        self.test_hooks = test_hooks

    # -- plumbing ------------------------------------------------------------------------------
    def post(self, message: dict[str, Any], data: bytes | None = None) -> None:
        self._post(message, data)

    def error(self, kind: str, message: str, hint: str = "", **extra: Any) -> None:
        self.post({"type": "error", "kind": kind, "message": message, "hint": hint, **extra})

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

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

    def _require_idle(self, what: str) -> None:
        if self.busy:
            raise PyAgentError(f"cannot {what} while the agent is working", hint="wait for the turn to end, or press Stop")
        if self.state is None:
            raise PyAgentError(f"cannot {what} before the database is open", hint="wait for the page to finish loading")

    # -- opening the database -------------------------------------------------------------------
    def on_open(self, message: dict[str, Any], data: bytes | None) -> None:
        """Open (or create and seed) the database; ``data`` restores a saved file."""
        module_name = message.get("schema") or "py_agent.demo"
        self.schema = importlib.import_module(module_name)
        if not hasattr(self.schema, "Base"):
            raise ConfigurationError(f"the schema module {module_name!r} has no Base", hint="define the declarative Base (and its mapped classes) in that module")
        restored = bool(data)
        if data:
            problems = check_database(data)
            if problems:
                # A broken saved copy must not stop the app: start fresh and say so.
                self.error("restore", "the saved database could not be read, so a fresh one was created", "; ".join(problems))
                restored = False
            else:
                self._write_file(data)
        if not restored and os.path.exists(self.db_path):
            os.remove(self.db_path)
        seeded = self._open_state(message.get("conversation"), seed=not restored)
        self.post(
            {
                "type": "ready",
                "schema": module_name,
                "restored": restored,
                "tables": table_counts(self.db_path),
                "python": sys.version.split()[0],
                "messages": len(self.state.messages),
            }
        )
        if seeded:
            self.post_snapshot("seed")

    def _write_file(self, data: bytes) -> None:
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        with open(self.db_path, "wb") as f:
            f.write(data)

    def _open_state(self, conversation: dict[str, Any] | None, *, seed: bool) -> bool:
        """A fresh engine and State over the file; returns True when seed rows were added."""
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        from ..state import State

        self._close_state()
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        self.engine = create_engine(f"sqlite:///{self.db_path}")
        self.schema.Base.metadata.create_all(self.engine)
        seeded = False
        seed_fn = getattr(self.schema, "seed", None)
        if seed and callable(seed_fn):
            with Session(self.engine) as session:
                seed_fn(session)
                session.commit()
            seeded = True
        try:
            self.state = State.from_dict(conversation, engine=self.engine) if conversation else State(engine=self.engine)
        except (KeyError, TypeError, ValueError) as exc:
            # A conversation saved by another version must not keep the app from starting.
            self.error("restore", "the saved conversation could not be read, so a new one was started", f"{type(exc).__name__}: {exc}")
            self.state = State(engine=self.engine)
        self._build_agent()
        return seeded

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
            provider = provider_from_config(self.config, self.transport)
        except PyAgentError as exc:
            self.agent_error = exc
            return
        self.agent = Agent(
            base=self.schema.Base,
            model=provider,
            approve=True if self.config.get("approve") != "ask" else None,
            max_loops=int(self.config.get("maxLoops") or DEFAULT_CONFIG["maxLoops"]),
        )

    # -- settings ----------------------------------------------------------------------------------
    def on_configure(self, message: dict[str, Any], data: bytes | None) -> None:
        """Change provider, model, base URL, approval mode. The key never comes here."""
        if self.busy:
            raise PyAgentError("cannot change settings while the agent is working", hint="wait for the turn to end, or press Stop")
        self.config.update({k: message[k] for k in DEFAULT_CONFIG if k in message})
        if self.schema is not None:
            self._build_agent()
            if self.agent_error is not None:
                raise self.agent_error
        self.post({"type": "configured", "request": message.get("request"), "model": self._model_label()})

    def _model_label(self) -> str:
        provider = self.config.get("provider") or "demo"
        return "demo" if provider == "demo" else f"{provider}:{self.config.get('model', '')}"

    # -- turns --------------------------------------------------------------------------------------
    def on_send(self, message: dict[str, Any], data: bytes | None) -> Any:
        from ..messages import UserMessage

        text = (message.get("text") or "").strip()
        if not text:
            raise PyAgentError("the message is empty", hint="type a request first")
        self._require_idle("send a message")
        if self.state.pending is not None:
            raise PyAgentError("a step is waiting for approval", hint="approve or decline it first")
        if self.agent is None:
            raise self.agent_error or ConfigurationError("no model is configured", hint="open Settings")
        self.state.messages.append(UserMessage(text))
        self.task = self._spawn(self._run_turn(), message)

    def on_approve(self, message: dict[str, Any], data: bytes | None) -> None:
        self._decide(True)

    def on_decline(self, message: dict[str, Any], data: bytes | None) -> None:
        self._decide(False)

    def _decide(self, approved: bool) -> None:
        self._require_idle("decide")
        if self.state.pending is None:
            raise PyAgentError("no step is waiting for approval", hint="the step may have been decided already")
        self.state.resume(approved)
        self.task = self._spawn(self._run_turn(), {"type": "approve" if approved else "decline"})

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

    async def _run_turn(self) -> None:
        state, agent = self.state, self.agent
        end: str | None = None  # the reason of the turn_end posted, once there is one
        try:
            async for event in agent.arun(state):
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
        except Exception as exc:  # noqa: BLE001 - a bug in the loop must still end the turn visibly
            self.error("internal", f"the agent loop failed: {type(exc).__name__}: {exc}", "this is a py-agent bug; reload the page to continue")
        finally:
            self.executing = False
            if end is None:
                self._end_turn("aborted" if state._aborted else "error")
            self.post_snapshot("turn", with_db=False)

    def _end_turn(self, reason: str) -> None:
        usage = self.state.usage
        self.post({"type": "turn_end", "reason": reason, "steps": 0, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens})

    def _on_event(self, payload: dict[str, Any]) -> None:
        # Mark the window in which model code runs, for the page's interrupt button.
        self.executing = payload["type"] == "signal" and payload.get("signal") == "execution"
        if payload["type"] == "execution_result" and (payload.get("error") or "").startswith("KeyboardInterrupt"):
            # Only the page's interrupt raises this in the browser: end the turn, not just the step.
            self.state.abort()
        self.post(payload)
        if payload["type"] == "changes" and payload.get("status") == "committed":
            self.post_snapshot("commit")

    @property
    def executing(self) -> bool:
        return self._executing

    @executing.setter
    def executing(self, flag: bool) -> None:
        if flag != self._executing:
            self._executing = flag
            self._set_executing(flag)

    def post_snapshot(self, reason: str, *, with_db: bool = True) -> None:
        """Send the conversation (and the committed database file) for persistence and sql.js."""
        message = {"type": "snapshot", "reason": reason, "conversation": self.state.to_dict() if self.state else None}
        self.post(message, snapshot_bytes(self.db_path) if with_db else None)

    # -- database commands --------------------------------------------------------------------------
    def on_export(self, message: dict[str, Any], data: bytes | None) -> None:
        if self.state is None:
            raise PyAgentError("the database is not open yet", hint="wait for the page to finish loading")
        self.post({"type": "exported", "request": message.get("request")}, snapshot_bytes(self.db_path))

    def on_import(self, message: dict[str, Any], data: bytes | None) -> None:
        self._require_idle("import a database")
        if self.state.pending is not None:
            raise PyAgentError("a step is waiting for approval", hint="approve or decline it before importing")
        problems = check_database(data or b"")
        if problems:
            raise PyAgentError("the file was not imported: " + "; ".join(problems), hint="choose an intact .sqlite file; the current database is unchanged")
        conversation = self.state.to_dict()
        self._close_state()
        self._write_file(data or b"")
        self._open_state(conversation, seed=False)
        self.post({"type": "imported", "request": message.get("request"), "tables": table_counts(self.db_path)})
        self.post_snapshot("import")

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


