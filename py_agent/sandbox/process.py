"""Model code in a separate worker process: the workspace for servers.

:class:`ProcessWorkspace` implements the loop's :class:`~py_agent.workspace.Workspace`
interface by running a :class:`~py_agent.workspace.LocalWorkspace` in a child process,
one per conversation, so the loop has a single code path whichever runs the code. The
in-process workspace stays the default (notebooks, tests, the browser).

What the worker holds: the app module (imported in the worker: the mapped classes and
its tools), one database connection with the URL it was given (the app's
least-privilege role), and the conversation's variables. Not the server's environment:
it starts with a scrubbed one (no API keys, no credentials; the URL arrives over the
pipe, never in its environment or command line). Model functions that need a model
(``@llm_func`` tools) cannot run there yet: calling one raises a clear error.

Limits: the step's time limit and memory cap apply in the worker as in process; on top,
the worker's address space is capped (``RLIMIT_AS``), its CPU time per step is capped
(``RLIMIT_CPU``: SIGXCPU ends it), core dumps are off, and the parent waits at most the
step's time limit plus a grace period before it kills the worker. Messages are JSON
lines of bounded size (the parent never unpickles anything from the worker, which an
escaped child could forge); a worker that sends too much, or what does not parse, is
killed.

Starting: on Linux the first worker of an app starts a *template* process that imports
py-agent, SQLAlchemy, the driver and the app once (with the scrubbed environment, no
connection, no secret); each conversation's worker is forked from it, so it starts in
milliseconds and shares those pages. Elsewhere (or with ``fork=False``, or ``run_as=``)
each worker is a new Python.

A crash, a kill or an escape ends that worker, never the server: the step reports what
happened, and the next call starts a fresh worker from the last commit; the model is told
its variables are gone. An escape runs with the worker's rights: its database role and
its operating-system user. On Linux the parent marks itself non-dumpable, so a worker of
the same user cannot read its memory or environment through ``/proc``; run workers as a
dedicated user (``run_as=``, when the server starts as root) so they cannot signal the
server either.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..database.changes import ChangeSet
from ..database.history import HistoryPoint
from ..database.step import CommitRefused, Committed, Reverted, UndoError
from ..errors import ConfigurationError, PyAgentError
from .executor import DEFAULT_MAX_OUTPUT, Outcome
from .limits import DEFAULT_MEMORY_MB

if TYPE_CHECKING:
    from ..workspace import StepRun

MAX_MESSAGE = 8 * 1024 * 1024  # bytes of one message from the worker
WORKER_MEMORY_MB = 3072  # the worker's whole address space (its own imports included)
GRACE = 10.0  # seconds past a step's time limit before the worker is killed
CALL_TIMEOUT = 120.0  # seconds for anything but running a step
# Kept in the worker's environment; everything else (keys, tokens, passwords) is dropped.
KEEP_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "PGTZ", "PGSSLMODE", "PGSSLROOTCERT")

# Threads that wait for workers' replies (each waits on a pipe, using no CPU): one per running
# step, so many conversations' steps run at once whatever the machine's core count.
_WAITERS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="py-agent-worker-wait")

LOST = (
    "The worker process running your code stopped ({reason}). Nothing of this step was saved, and "
    "your variables are gone: the next step starts in a fresh process with an empty namespace "
    "(the database is as of the last commit). Query what you need again."
)


class WorkerLost(PyAgentError):
    """The worker process ended, or was ended, while it worked."""

    kind = "worker"


def scrubbed_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: only harmless variables, plus what it needs to import py-agent."""
    environ = os.environ if environ is None else environ
    env = {k: environ[k] for k in KEEP_ENVIRONMENT if k in environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["HOME"] = "/tmp"
    return env


_hardened = False


def protect_parent() -> bool:
    """Mark this (server) process non-dumpable: same-user processes cannot read its /proc files.

    Linux only; idempotent. Returns whether it is in effect.
    """
    global _hardened
    if _hardened or not sys.platform.startswith("linux"):
        return _hardened
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_dumpable = 4
        _hardened = libc.prctl(pr_set_dumpable, 0, 0, 0, 0) == 0
    except OSError:
        _hardened = False
    return _hardened


# -- JSON <-> the step's results (the parent's side checks every field) -----------------------------

def _str(value: Any, limit: int = MAX_MESSAGE) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value[:limit]


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def changes_to_json(changes: ChangeSet) -> dict[str, Any]:
    return {"tables": changes.tables, "rows": changes.rows, "schema": list(changes.schema), "untracked": list(changes.untracked), "note": changes.note}


def changes_from_json(data: Any) -> ChangeSet:
    data = _json_object(data)
    tables: dict[str, dict[str, int]] = {}
    for table, counts in _json_object(data.get("tables", {})).items():
        counts = _json_object(counts)
        tables[_str(table, 500)] = {op: int(counts.get(op, 0)) for op in ("inserted", "updated", "deleted")}
    rows = _json_object(data.get("rows", {}))
    schema = [_str(s, 2000) for s in data.get("schema", [])]
    untracked = [_str(s, 2000) for s in data.get("untracked", [])]
    return ChangeSet(tables=tables, rows=rows, schema=schema, untracked=untracked, journal=None, note=_str(data.get("note", ""), 2000))


def point_to_json(point: HistoryPoint | None) -> dict[str, Any] | None:
    return None if point is None else point.to_dict()


def point_from_json(data: Any) -> HistoryPoint:
    data = _json_object(data)
    return HistoryPoint(
        id=int(data["id"]), kind=_str(data["kind"], 20), request=_str(data.get("request", ""), 100_000), at=_str(data.get("at", ""), 64),
        tables=changes_from_json({"tables": data.get("tables", {})}).tables, undoable=bool(data.get("undoable")),
        undone=bool(data.get("undone")), note=_str(data.get("note", ""), 2000), reverts=tuple(int(i) for i in data.get("reverts", [])),
    )


def outcome_from_json(data: Any, max_output: int) -> Outcome:
    data = _json_object(data)
    error = data.get("error")
    return Outcome(
        _str(data.get("output", ""), 2 * max_output + 1000),
        None if error is None else _str(error, 2 * max_output + 1000),
        float(data.get("duration_ms", 0.0)),
        bool(data.get("truncated", False)),
    )


# -- the parent's side ---------------------------------------------------------------------------

class _Worker:
    """One worker process and its pipes: requests on its stdin, replies on ``replies``."""

    def __init__(self, pid: int, requests: int, replies: int, stderr: int, process: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.requests = os.fdopen(requests, "wb", buffering=0)
        self.replies = replies
        self.process = process  # None when a fork server started it (then it is not our child)
        self.buffer = bytearray()
        self.stderr: list[bytes] = []
        threading.Thread(target=_drain, args=(stderr, self.stderr), daemon=True).start()

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process now holds the id: ours is gone
            return False
        return _state(self.pid) not in ("Z", "X", "")

    def exit_code(self) -> int | None:
        """The exit status (negative: killed by that signal), when known."""
        if self.process is not None:
            return self.process.poll()
        return None

    def send(self, data: bytes) -> None:
        self.requests.write(data)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.wait(10)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        for closing in (self.requests.close, lambda: os.close(self.replies)):
            try:
                closing()
            except OSError:
                pass


def _state(pid: int) -> str:
    """A process's state letter from /proc (R, S, Z...), '' when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "" if not os.path.exists(f"/proc/{pid}") else "?"


class _ForkServer:
    """A template process that imported py-agent, SQLAlchemy, the driver and the app once,
    and forks a worker for each conversation: a worker starts in milliseconds, not seconds.

    It runs with the scrubbed environment and holds no connection and no secret: a worker
    is a copy of it plus the pipes it is given. Started on first use, one per app (and
    Python); if it dies, the next start makes a new one.
    """

    def __init__(self, python: str, app: str) -> None:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.process = subprocess.Popen(
            [python, "-c", "from py_agent.sandbox.process import forkserver_main; forkserver_main()", str(theirs.fileno()), app],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),),
            env=scrubbed_environment(), close_fds=True, start_new_session=True, cwd="/",
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.errors: list[bytes] = []
        assert self.process.stderr is not None
        stderr = os.dup(self.process.stderr.fileno())
        self.process.stderr.close()
        threading.Thread(target=_drain, args=(stderr, self.errors), daemon=True).start()
        ours.settimeout(CALL_TIMEOUT)
        if ours.recv(16) != b"ready":
            self.close()
            tail = b"".join(self.errors)[-600:].decode(errors="replace").strip().splitlines()
            raise ConfigurationError("the worker template process could not start" + (f": {tail[-1]}" if tail else ""), hint="see the server's log")

    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self) -> _Worker:
        import socket
        import struct

        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            with self.lock:
                socket.send_fds(self.sock, [b"F"], [requests_r, replies_w, stderr_w])
                answer = self.sock.recv(8)
        finally:
            for fd in (requests_r, replies_w, stderr_w):
                os.close(fd)
        if len(answer) != 8:
            for fd in (requests_w, replies_r, stderr_r):
                os.close(fd)
            raise OSError("the worker template process did not answer")
        (pid,) = struct.unpack("q", answer)
        return _Worker(pid, requests_w, replies_r, stderr_r)

    def close(self) -> None:
        self.sock.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


_FORK_SERVERS: dict[tuple[str, str], _ForkServer] = {}
_FORK_SERVERS_LOCK = threading.Lock()


def _fork_server(python: str, app: str) -> _ForkServer:
    with _FORK_SERVERS_LOCK:
        server = _FORK_SERVERS.get((python, app))
        if server is None or not server.alive():
            server = _FORK_SERVERS[(python, app)] = _ForkServer(python, app)
        return server


class ProcessWorkspace:
    """A conversation's code, namespace and database connection in a worker process.

    ``app`` is what :func:`py_agent.app.load_app` takes (a module name, ``.py`` file or
    package folder): the worker imports it for the mapped classes and the tools. ``url``
    is the database URL of the app's role (the worker opens it; the parent never does).
    ``conversation`` keys this conversation's history points on a shared database.
    """

    def __init__(
        self,
        app: str | os.PathLike[str],
        url: str,
        *,
        conversation: str | None = None,
        allow_schema_changes: bool = False,
        history: bool = True,
        worker_memory_mb: float = WORKER_MEMORY_MB,
        grace: float = GRACE,
        max_message: int = MAX_MESSAGE,
        run_as: str | None = None,
        strict_role: bool = False,
        python: str = sys.executable,
        harden_parent: bool = True,
        fork: bool | None = None,
    ) -> None:
        app = os.fspath(app)
        # A path is made absolute here: the worker does not start in the caller's folder.
        self.app = os.path.abspath(app) if os.path.exists(app) else app
        self.url = url
        self.conversation = conversation
        self.allow_schema_changes = allow_schema_changes
        self.history_on = history
        self.worker_memory_mb = worker_memory_mb
        self.grace = grace
        self.max_message = max_message
        self.run_as = run_as
        self.strict_role = strict_role
        self.python = python
        self.harden_parent = harden_parent
        # Fork workers from a template process (Linux; not when they must run as another user).
        self.fork = fork if fork is not None else (sys.platform.startswith("linux") and not run_as)
        self.timeout: float | None = 30.0
        self.max_output = DEFAULT_MAX_OUTPUT
        self.on_output: Callable[[str], None] | None = None
        self._configuration: dict[str, Any] | None = None
        self._names: set[str] = set()
        self._worker: _Worker | None = None
        self._pending = False
        self._lock = threading.Lock()
        self.restarts = 0  # workers started after the first (crashes, kills)
        self.lost: str = ""  # why the last worker ended, if it did

    # -- Workspace interface -----------------------------------------------------------------------
    @property
    def session(self) -> None:
        return None

    @property
    def pending(self) -> bool:
        return self._pending

    @property
    def pid(self) -> int | None:
        """The worker's process id (None when none is running)."""
        return self._worker.pid if self._worker is not None else None

    def set_policy(self, *, allow_schema_changes: bool, history: bool) -> None:
        if (allow_schema_changes, history) != (self.allow_schema_changes, self.history_on):
            self.allow_schema_changes, self.history_on = allow_schema_changes, history
            self._stop("its settings changed")

    def configure(self, *, names: Mapping[str, Any], timeout: float | None = 30.0, max_output: int = DEFAULT_MAX_OUTPUT,
                  memory_limit: float | None = DEFAULT_MEMORY_MB, on_output: Callable[[str], None] | None = None) -> None:
        from .runtime import runtime_layer

        layer = runtime_layer(dict(names))
        if layer is None:
            raise ConfigurationError("a separate worker needs the run-time layer's builtins in the names", hint="pass the loop's names")
        policy = layer.policy
        self.timeout, self.max_output, self.on_output = timeout, max_output, on_output
        self._names = {n for n in names if n != "__builtins__"}
        configuration = {
            "op": "configure",
            "policy": {
                "allowed_imports": sorted(policy.allowed_imports), "blocked_names": sorted(policy.blocked_names),
                "blocked_modules": sorted(policy.blocked_modules), "blocked_attributes": sorted(policy.blocked_attributes),
                "allowed_attributes": sorted(policy.allowed_attributes), "validator": policy.validator, "runtime": policy.runtime,
            },
            "timeout": timeout, "max_output": max_output, "memory_limit": memory_limit, "stream": on_output is not None,
        }
        if configuration != self._configuration:
            self._configuration = configuration
            if self._worker is not None:
                self._configure_worker()

    def ensure_schema(self, metadata: Any) -> bool:
        """Done by the worker when it starts (so that starting it never blocks the caller's loop)."""
        return False

    async def run(self, code: str, *, step: int, tree: Any = None) -> StepRun:
        from ..workspace import StepRun

        message = {"op": "run", "code": code, "step": step}
        limit = (self.timeout or 0) + self.grace if self.timeout else None
        loop = asyncio.get_running_loop()
        on_output = self.on_output

        def delta(text: str) -> None:  # from the reading thread to the loop's thread
            if on_output is not None:
                loop.call_soon_threadsafe(on_output, text)

        try:
            if self._worker is None or not self._worker.alive():
                await loop.run_in_executor(_WAITERS, self._ensure_worker)
            reply = await loop.run_in_executor(_WAITERS, self._exchange, message, limit, delta)
        except asyncio.CancelledError:
            self._stop("the step was stopped")
            raise
        except WorkerLost as lost:
            return StepRun(Outcome("", LOST.format(reason=lost.message), 0.0), ChangeSet(), False)
        try:
            run = StepRun(outcome_from_json(reply.get("outcome"), self.max_output), changes_from_json(reply.get("changes", {})), bool(reply.get("open")))
        except (KeyError, TypeError, ValueError) as exc:
            self._stop(f"it sent a malformed result ({exc})")
            return StepRun(Outcome("", LOST.format(reason=self.lost), 0.0), ChangeSet(), False)
        self._pending = run.open
        return run

    def commit(self, *, request: str = "", turn: Any = None) -> Committed:
        return self._commit({"op": "commit", "request": request, "turn": turn})

    def commit_import(self, *, request: str = "") -> Committed:
        return self._commit({"op": "commit_import", "request": request})

    def _commit(self, message: dict[str, Any]) -> Committed:
        try:
            reply = self._call(message, refusal=CommitRefused)
        except WorkerLost as lost:
            raise CommitRefused(f"the changes were not saved: the worker process stopped ({lost.message})", hint="nothing was committed; run the step again") from None
        finally:
            self._pending = False
        point = reply.get("point")
        return Committed(changes_from_json(reply.get("changes", {})), point_from_json(point) if point else None, [_str(w, 2000) for w in reply.get("warnings", [])])

    def rollback(self) -> None:
        self._pending = False
        if self._worker is not None:
            try:
                self._call({"op": "rollback"})
            except WorkerLost:
                pass  # a worker that is gone took its transaction with it

    def end_turn(self) -> None:
        if self._worker is not None:
            self._call({"op": "end_turn"})

    def history(self) -> list[HistoryPoint]:
        return [point_from_json(p) for p in self._call({"op": "history"}).get("points", [])]

    def undo(self, point: int | None = None) -> Reverted:
        return self._reverted(self._call({"op": "undo", "point": point}, refusal=UndoError))

    def restore(self, point: int) -> Reverted:
        return self._reverted(self._call({"op": "restore", "point": point}, refusal=UndoError))

    def _reverted(self, reply: dict[str, Any]) -> Reverted:
        return Reverted(point_from_json(reply["point"]), changes_from_json(reply.get("changes", {})), tuple(int(i) for i in reply.get("reverted", [])))

    def check_import(self, data: Any, metadata: Any) -> Any:
        raise PyAgentError("importing a database file is not available when code runs in a separate process", hint="import it on the server with your own tools")

    def stage_import(self, data: Any, metadata: Any) -> Any:
        from ..database.importing import ImportRefused

        raise ImportRefused("importing a database file is not available when code runs in a separate process", None)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop("")

    # -- the worker --------------------------------------------------------------------------------
    def _ensure_worker(self) -> _Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._worker is not None:
            self._stop(self._exit_reason(self._worker))
        if self.harden_parent:
            protect_parent()
        worker = self._fork() if self.fork else self._spawn()
        if self.lost:
            self.restarts += 1
        self._worker = worker
        self._pending = False
        started = self._exchange({
            "op": "init", "app": self.app, "url": self.url, "conversation": self.conversation,
            "allow_schema_changes": self.allow_schema_changes, "history": self.history_on,
            "memory_mb": self.worker_memory_mb, "strict_role": self.strict_role, "ensure_schema": True,
        }, CALL_TIMEOUT)
        if started.get("error") is not None:
            error = _json_object(started["error"])
            self._stop("it could not start")
            raise ConfigurationError(f"the worker process could not start: {_str(error.get('message', ''), 10_000)}", hint=_str(error.get("hint", ""), 2000))
        if self._configuration is not None:
            self._configure_worker()
        return worker

    def _spawn(self) -> _Worker:
        """A new Python process for the worker (what a fork server saves)."""
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        options: dict[str, Any] = {}
        if self.run_as and os.geteuid() == 0:
            options["user"] = self.run_as
        try:
            process = subprocess.Popen(
                [self.python, "-c", "from py_agent.sandbox.process import worker_main; worker_main()", str(replies_w)],
                stdin=requests_r, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(replies_w,),
                env=scrubbed_environment(), close_fds=True, start_new_session=True, cwd="/", **options,
            )
        finally:
            os.close(replies_w)
            os.close(requests_r)
        assert process.stderr is not None
        stderr = os.dup(process.stderr.fileno())
        process.stderr.close()
        return _Worker(process.pid, requests_w, replies_r, stderr, process)

    def _fork(self) -> _Worker:
        try:
            return _fork_server(self.python, self.app).spawn()
        except OSError:
            with _FORK_SERVERS_LOCK:  # a template that died: the next one is new
                server = _FORK_SERVERS.pop((self.python, self.app), None)
            if server is not None:
                server.close()
            return _fork_server(self.python, self.app).spawn()

    def _configure_worker(self) -> None:
        reply = self._exchange(dict(self._configuration or {}), CALL_TIMEOUT)
        theirs = set(reply.get("names", []))
        if self._names and theirs != self._names:
            missing = sorted(self._names - theirs)
            self._stop("its names differ from the agent's")
            raise ConfigurationError(
                "the worker process does not have the same names as the agent: " + ", ".join(missing[:10]),
                hint="give the agent the app module's own tools (the worker imports them from the app)",
            )

    def _call(self, message: dict[str, Any], *, refusal: type[PyAgentError] = PyAgentError) -> dict[str, Any]:
        self._ensure_worker()
        reply = self._exchange(message, CALL_TIMEOUT)
        error = reply.get("error")
        if error is not None:
            error = _json_object(error)
            kind = refusal if error.get("type") == refusal.__name__ else PyAgentError
            raise kind(_str(error.get("message", ""), 10_000), hint=_str(error.get("hint", ""), 2000))
        return reply

    def _exchange(self, message: dict[str, Any], limit: float | None, on_delta: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Send one message and wait for its reply (at most ``limit`` seconds).

        Output printed while a step runs arrives first as ``{"delta": text}`` lines.
        """
        with self._lock:
            worker = self._worker
            if worker is None or not worker.alive():
                raise WorkerLost(self.lost or "it was not running")
            try:
                worker.send(json.dumps(message).encode() + b"\n")
            except (BrokenPipeError, OSError):
                raise WorkerLost(self._stop(self._exit_reason(worker))) from None
            deadline = time.monotonic() + limit if limit else None
            while True:
                line = self._read_line(worker, None if deadline is None else max(0.001, deadline - time.monotonic()))
                try:
                    reply = _json_object(json.loads(line))
                except ValueError as exc:
                    raise WorkerLost(self._stop(f"it sent something that is not a reply ({exc})")) from None
                if set(reply) != {"delta"}:
                    return reply
                if on_delta is not None:
                    on_delta(_str(reply["delta"], self.max_message))

    def _read_line(self, worker: _Worker, limit: float | None) -> bytes:
        deadline = time.monotonic() + limit if limit else None
        while True:
            newline = worker.buffer.find(b"\n")
            if newline >= 0:
                line = bytes(worker.buffer[:newline])
                del worker.buffer[: newline + 1]
                return line
            if len(worker.buffer) > self.max_message:
                raise WorkerLost(self._stop(f"it sent more than {self.max_message:,} bytes at once"))
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise WorkerLost(self._stop(f"it did not answer within {limit:g} s"))
            ready, _, _ = select.select([worker.replies], [], [], wait)
            if not ready:
                continue
            chunk = os.read(worker.replies, 1 << 16)
            if not chunk:
                worker.wait(5)
                raise WorkerLost(self._stop(self._exit_reason(worker)))
            worker.buffer += chunk

    def _exit_reason(self, worker: _Worker) -> str:
        code = worker.exit_code()
        if code is None:
            tail = b"".join(worker.stderr)[-600:].decode(errors="replace").strip().splitlines()
            return "it stopped answering" if worker.alive() else "it ended" + (f": {tail[-1]}" if tail else "")
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = {"SIGXCPU": "it used more CPU time than a step may", "SIGKILL": "it was killed (out of memory, or by the system)",
                   "SIGSEGV": "it crashed"}.get(name, f"it was ended by {name}")
            return why
        tail = b"".join(worker.stderr)[-600:].decode(errors="replace").strip().splitlines()
        return f"it exited with status {code}" + (f": {tail[-1]}" if tail else "")

    def _stop(self, reason: str) -> str:
        """End the worker (if any); returns ``reason``, remembered as why it was lost."""
        worker, self._worker = self._worker, None
        self._pending = False
        if reason:
            self.lost = reason
        if worker is None:
            return reason
        try:
            if not reason and worker.alive():  # a normal close: let it roll back and disconnect
                try:
                    worker.send(b'{"op": "close"}\n')
                    worker.wait(5)
                except OSError:
                    pass
            if worker.alive():
                worker.kill()
        finally:
            worker.close()
        return reason

    def kill(self) -> None:
        """Kill the worker now (as a crash would): for tests and operators."""
        if self._worker is not None:
            self._worker.kill()


def _drain(fd: int, keep: list[bytes], limit: int = 8192) -> None:
    """Read a worker's stderr so it never blocks; keep the last ``limit`` bytes for messages."""
    try:
        for chunk in iter(lambda: os.read(fd, 4096), b""):
            keep.append(chunk)
            while sum(map(len, keep)) > limit and len(keep) > 1:
                keep.pop(0)
    except OSError:
        pass
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


# -- the worker's side -----------------------------------------------------------------------------

class _Child:
    """The worker: a LocalWorkspace driven by messages on stdin, replies on its pipe."""

    def __init__(self, out: int) -> None:
        self.out = os.fdopen(out, "wb", buffering=0)
        self.workspace: Any = None
        self.app: Any = None
        self.configured: dict[str, Any] | None = None
        self.step_cpu: float | None = None
        self.max_output = DEFAULT_MAX_OUTPUT
        self.streamed = 0  # characters of output sent while the current step runs

    def stream(self, text: str) -> None:
        """Output as it is printed (at most max_output characters a step; the result has it all)."""
        room = self.max_output - self.streamed
        if room > 0 and text:
            self.streamed += min(room, len(text))
            self.reply({"delta": text[:room]})

    def reply(self, data: dict[str, Any]) -> None:
        self.out.write(json.dumps(data, default=str).encode() + b"\n")

    def serve(self) -> None:
        for line in sys.stdin.buffer:
            message = json.loads(line)
            op = message.get("op")
            if op == "close":
                break
            try:
                self.reply(getattr(self, f"op_{op}")(message) or {})
            except PyAgentError as exc:
                self.reply({"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}})
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                self.reply({"error": {"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}", "hint": ""}})
        if self.workspace is not None:
            self.workspace.close()

    def op_init(self, message: dict[str, Any]) -> dict[str, Any]:
        from ..app import engine_for, load_app
        from ..database.engines import enforce_foreign_keys, use_savepoint_recipe

        self.app = load_app(message["app"])
        engine = engine_for(message["url"])
        options = {"allow_schema_changes": message["allow_schema_changes"], "history": message["history"]}
        if engine.dialect.name == "postgresql":
            from ..database.postgres import local_workspace

            self.workspace = local_workspace(engine, conversation=message.get("conversation"), strict=bool(message.get("strict_role")), **options)
        else:
            from ..workspace import LocalWorkspace

            self.workspace = LocalWorkspace(use_savepoint_recipe(enforce_foreign_keys(engine)), **options)
        if message.get("ensure_schema"):
            self.workspace.ensure_schema(self.app.base.metadata)
        _limit_resources(float(message.get("memory_mb") or WORKER_MEMORY_MB))
        return {"pid": os.getpid()}

    def op_configure(self, message: dict[str, Any]) -> dict[str, Any]:
        names = self.names(message["policy"])
        self.max_output = int(message["max_output"])
        self.workspace.configure(
            names=names, timeout=message["timeout"], max_output=message["max_output"], memory_limit=message["memory_limit"],
            on_output=self.stream if message.get("stream") else None,
        )
        timeout = message["timeout"]
        self.step_cpu = 2 * timeout + 5 if timeout else None
        return {"names": sorted(n for n in names if n != "__builtins__")}

    def names(self, policy_data: dict[str, Any]) -> dict[str, Any]:
        """What the loop puts in the namespace, built here from the app (tools run in this process)."""
        import sqlalchemy

        from ..loop import SQL_HELPERS
        from ..schema import schema_symbols
        from ..tools import Toolbox
        from .runtime import safe_builtins
        from .validator import Policy

        policy = Policy(**{k: frozenset(v) if isinstance(v, list) else v for k, v in policy_data.items()})
        names: dict[str, Any] = {"__builtins__": safe_builtins(policy)}
        names.update({name: getattr(sqlalchemy, name) for name in SQL_HELPERS})
        names.update(schema_symbols(self.app.base))
        names.update(Toolbox(_local_tools(self.app.tools)).namespace())
        return names

    def op_run(self, message: dict[str, Any]) -> dict[str, Any]:
        self.streamed = 0
        _cpu_limit(self.step_cpu)
        try:
            run = asyncio.run(self.workspace.run(message["code"], step=int(message["step"])))
        finally:
            _cpu_limit(None)
        outcome = run.outcome
        return {
            "outcome": {"output": outcome.output, "error": outcome.error, "duration_ms": outcome.duration_ms, "truncated": outcome.truncated},
            "changes": changes_to_json(run.changes), "open": run.open,
        }

    def op_commit(self, message: dict[str, Any]) -> dict[str, Any]:
        committed = self.workspace.commit(request=message.get("request", ""), turn=message.get("turn"))
        return {"changes": changes_to_json(committed.changes), "point": point_to_json(committed.point), "warnings": committed.warnings}

    def op_commit_import(self, message: dict[str, Any]) -> dict[str, Any]:
        committed = self.workspace.commit_import(request=message.get("request", ""))
        return {"changes": changes_to_json(committed.changes), "point": point_to_json(committed.point), "warnings": committed.warnings}

    def op_rollback(self, message: dict[str, Any]) -> None:
        self.workspace.rollback()

    def op_end_turn(self, message: dict[str, Any]) -> None:
        self.workspace.end_turn()

    def op_history(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in self.workspace.history()]}

    def op_undo(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._reverted(self.workspace.undo(message.get("point")))

    def op_restore(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._reverted(self.workspace.restore(int(message["point"])))

    @staticmethod
    def _reverted(result: Reverted) -> dict[str, Any]:
        return {"point": result.point.to_dict(), "changes": changes_to_json(result.changes), "reverted": list(result.reverted)}


def _local_tools(tools: Any) -> list[Any]:
    """The app's tools as the worker offers them: model functions get a stand-in that explains."""
    from ..tools import Tool, as_tool

    out = []
    for obj in tools:
        tool = as_tool(obj)
        if getattr(tool.function, "llm_func", None) is not None:
            name = tool.name

            def unavailable(*args: Any, _name: str = name, **kwargs: Any) -> Any:
                raise PyAgentError(
                    f"{_name}() asks a language model, which is not available while code runs in a separate worker process",
                    hint="do the work in code, or ask the person",
                )

            tool = Tool(tool.name, unavailable, tool.description)
        out.append(tool)
    return out


def _limit_resources(memory_mb: float) -> None:
    try:
        import resource
    except ImportError:  # not a POSIX system: the parent's time limit still holds
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cap = int(memory_mb * 1024 * 1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _cpu_limit(seconds: float | None) -> None:
    """RLIMIT_CPU for the next step: SIGXCPU ends the worker past it (None: lift it)."""
    try:
        import resource
    except ImportError:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def worker_main() -> None:
    """Entry point of a worker started as its own Python (``python -c ... worker_main() FD``)."""
    out = int(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends it; a terminal's Ctrl-C does not
    _Child(out).serve()


def forkserver_main() -> None:
    """Entry point of the template process (``python -c ... forkserver_main() FD APP``)."""
    import socket
    import struct

    sock = socket.socket(fileno=int(sys.argv[1]))
    app = sys.argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What every worker needs, imported once (the app's module too: its import runs its code).
    import psycopg  # noqa: F401
    import sqlalchemy  # noqa: F401

    from ..app import load_app
    from ..database import postgres  # noqa: F401
    from ..loop import Agent  # noqa: F401
    from ..workspace import LocalWorkspace  # noqa: F401

    try:
        load_app(app)
    except Exception as exc:  # noqa: BLE001 - each worker reports it properly when it loads the app
        print(f"the app could not be imported in advance: {exc}", file=sys.stderr)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the system
    sock.sendall(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 16, 3)
        except OSError:
            break
        if not message:
            break  # the server went away
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.setsid()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                requests, replies, stderr = fds
                os.dup2(requests, 0)
                os.dup2(stderr, 2)
                os.close(requests)
                os.close(stderr)
                sys.stdin = open(0, encoding="utf-8", closefd=False)
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
                sys.argv = [sys.argv[0], str(replies)]  # as a worker started on its own sees it
                _Child(replies).serve()
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        sock.sendall(struct.pack("q", pid))


__all__ = ["ProcessWorkspace", "WorkerLost", "protect_parent", "scrubbed_environment"]
