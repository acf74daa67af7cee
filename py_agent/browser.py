"""The Python side of the browser worker: transport, command driver, snapshots.

This is the only module of py-agent that touches ``js``/``pyodide``, and only
inside :func:`start` and :class:`JsRuntime`, so the rest (the transport, the
command handling) imports and runs on CPython, where it is unit-tested.

``web/app/worker.js`` boots Pyodide, installs the wheels and hands every
message from the page to :meth:`JsRuntime.handle`. Messages are JSON objects
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
import itertools
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from typing import Any

from .errors import ConfigurationError, PyAgentError
from .providers import errors as provider_errors
from .transports.base import Headers, HttpRequest, HttpResponse

Post = Callable[[dict[str, Any], "bytes | None"], None]

DB_PATH = "/data/app.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"


# --- the postMessage transport ----------------------------------------------------------


class ShimRefusedError(provider_errors.ProviderError):
    """The page's fetch shim would not send the request (wrong origin, no key)."""

    kind = "refused"


# fetch_error kinds the page's shim sends, and the error each becomes in Python.
_FETCH_ERRORS: dict[str, type[provider_errors.ProviderError]] = {
    "cors": provider_errors.CorsRefusedError,
    "unreachable": provider_errors.EndpointUnreachableError,
    "timeout": provider_errors.ProviderTimeoutError,
    "interrupted": provider_errors.StreamInterruptedError,
    "missing_key": provider_errors.MissingApiKeyError,
    "refused": ShimRefusedError,
}


def fetch_error(kind: str, message: str, hint: str = "", *, started: bool = False) -> provider_errors.ProviderError:
    """The typed error for a ``fetch_error`` message.

    Once the body has started, any failure means the stream broke off.
    """
    if started and kind in ("unreachable", "cors"):
        kind = "interrupted"
    cls = _FETCH_ERRORS.get(kind, provider_errors.ProviderError)
    return cls(message or f"the request failed ({kind})", hint=hint)


class _Exchange:
    """One request in flight: a future for the status line, a queue for the body."""

    def __init__(self, exchange_id: int) -> None:
        self.id = exchange_id
        self.started: asyncio.Future[tuple[int, dict[str, str]]] = asyncio.get_event_loop().create_future()
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class BrowserTransport:
    """Sends provider requests through the page's fetch shim.

    The request goes out as ``{type: "fetch", id, method, url, headers, body,
    auth, stream, timeouts}`` (``HttpRequest.to_json()``, which never holds the
    key); the page answers with ``fetch_start``, ``fetch_chunk``\\* and
    ``fetch_end`` or ``fetch_error``. Closing the response early posts
    ``fetch_abort`` so the page cancels the fetch.
    """

    def __init__(self, post: Post) -> None:
        self._post = post
        self._exchanges: dict[int, _Exchange] = {}
        self._ids = itertools.count(1)

    async def send(self, request: HttpRequest) -> HttpResponse:
        exchange = _Exchange(next(self._ids))
        self._exchanges[exchange.id] = exchange
        self._post({"type": "fetch", "id": exchange.id, **request.to_json()}, None)
        try:
            status, headers = await exchange.started
        except BaseException:
            # Cancelled while waiting for headers (abort), or the page reported an error.
            self._forget(exchange, abort=True)
            raise

        async def close() -> None:
            self._forget(exchange, abort=not exchange.finished)

        return HttpResponse(status, Headers(headers), exchange.chunks(), url=request.url, on_close=close)

    def _forget(self, exchange: _Exchange, *, abort: bool) -> None:
        if self._exchanges.pop(exchange.id, None) is not None and abort:
            exchange.finished = True
            self._post({"type": "fetch_abort", "id": exchange.id}, None)

    @property
    def in_flight(self) -> int:
        return len(self._exchanges)

    def receive(self, message: dict[str, Any], data: bytes | None = None) -> None:
        """Feed one ``fetch_*`` message from the page."""
        exchange = self._exchanges.get(message.get("id"))  # type: ignore[arg-type]
        if exchange is None or exchange.finished:
            return  # a late message for a request that was aborted: nothing waits for it
        kind = message["type"]
        if kind == "fetch_start":
            if not exchange.started.done():
                exchange.started.set_result((int(message["status"]), dict(message.get("headers") or {})))
        elif kind == "fetch_chunk":
            if data:
                exchange.queue.put_nowait(bytes(data))
        elif kind == "fetch_end":
            exchange.finished = True
            exchange.queue.put_nowait(None)
        elif kind == "fetch_error":
            started = exchange.started.done()
            error = fetch_error(message.get("kind", ""), message.get("message", ""), message.get("hint", ""), started=started)
            exchange.finished = True
            if started:
                exchange.queue.put_nowait(error)
            else:
                exchange.started.set_exception(error)


# --- database files -----------------------------------------------------------------------


def snapshot_bytes(path: str) -> bytes:
    """The committed contents of the SQLite file at ``path``.

    Read through a separate connection rather than as raw file bytes, so an
    open transaction of the agent's connection can never leak half a step.
    """
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.serialize()


def check_database(data: bytes) -> list[str]:
    """Problems that make ``data`` unfit to import (an empty list when it is fine)."""
    if not data.startswith(SQLITE_MAGIC):
        return ["it is not an SQLite database (the file does not start with 'SQLite format 3')"]
    try:
        with closing(sqlite3.connect(":memory:")) as conn:
            conn.deserialize(data)
            rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(3)")]
    except sqlite3.DatabaseError as exc:
        return [f"SQLite cannot read it: {exc}"]
    if rows == ["ok"]:
        return []
    # Name the first real problem, cut short: a wrecked file can report thousands.
    lines = [line for row in rows for line in row.splitlines() if line and not line.startswith("***")]
    return [f"its integrity check failed ({_shorten(lines[0] if lines else 'no details', 120)})"]


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def table_counts(path: str) -> dict[str, int]:
    """Rows per table in the committed database file."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


# --- the command driver ---------------------------------------------------------------------

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
        from .demo.model import DemoModel

        return DemoModel()
    model = (config.get("model") or "").strip()
    if not model:
        raise ConfigurationError(f"no model is set for {name}", hint="open Settings and enter a model name, e.g. gpt-4.1-mini")
    from .providers import resolve

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

        from .state import State

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
        from . import Agent

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
        from .messages import UserMessage

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


# --- Pyodide glue (the only place that imports js/pyodide) ----------------------------------------


def start(post_js: Any, executing: Any = None, interrupt: Any = None, test_hooks: bool = False) -> "JsRuntime":
    """Called by worker.js once the wheels are installed.

    ``post_js(text, data)`` posts a message (JSON text + optional Uint8Array).
    With cross-origin isolation, ``executing`` is an Int32Array over shared
    memory whose element 0 says "model code is running", and ``interrupt`` is
    Pyodide's interrupt buffer; both are None without it.
    """
    from pyodide.ffi import to_js

    def post(message: dict[str, Any], data: bytes | None) -> None:
        post_js(json.dumps(message, default=str), to_js(data) if data is not None else None)

    def set_executing(flag: bool) -> None:
        if executing is None:
            return
        import js

        js.Atomics.store(executing, 0, 1 if flag else 0)
        if not flag and interrupt is not None:
            # An interrupt raised after the code finished must not fire somewhere else later.
            js.Atomics.store(interrupt, 0, 0)

    return JsRuntime(Runtime(post, set_executing=set_executing, test_hooks=bool(test_hooks)))


class JsRuntime:
    """What worker.js holds: ``handle(text, data)`` for each message from the page."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def handle(self, text: str, data: Any = None) -> None:
        try:
            message = json.loads(text)
            payload = data.to_bytes() if data is not None and hasattr(data, "to_bytes") else data
            self.runtime.receive(message, payload)
        except KeyboardInterrupt:
            # A late interrupt hit while handling a message: end the turn rather than crash.
            self.runtime.executing = False
            self.runtime.on_abort({}, None)


__all__ = ["BrowserTransport", "Runtime", "ShimRefusedError", "check_database", "snapshot_bytes", "start", "table_counts"]
