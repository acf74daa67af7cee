"""Stopping a step that runs in the server's own process (``separate_process=False``).

A Panel server runs its sessions on one event loop. A step executed on that loop
blocks every session until it ends, and the Stop button cannot even be received, so
``while True: pass`` ran until the 30 s time limit. :class:`StoppableWorkspace` wraps an
in-process workspace and runs each step in a thread of its own, which leaves the loop
free; :meth:`StoppableWorkspace.stop` (what cancelling the step's coroutine calls)
ends the step:

- a query that is running is interrupted (the database layer's deadline is moved to
  now: SQLite's progress handler, PostgreSQL's statement timeout);
- :class:`StepStopped` (a ``KeyboardInterrupt``, so ``except Exception`` in model code
  does not swallow it) is raised into the thread, again every few milliseconds, but only
  while a frame of the model's code is on that thread's stack, so it never lands in
  py-agent's own bookkeeping. The executor reports it as an interrupted step; the step's
  transaction is rolled back as for any failed step.

Code stuck inside one long C call (``sum(range(10**12))``) cannot be interrupted in a
process: it ends when the call returns. Use the separate-process workspace on a server
(``create_app(app=..., url=...)``), whose stop ends the worker process at once.

In-process steps of all conversations run one at a time (a process-wide lock): the
executor captures output by redirecting the process's ``sys.stdout``, which two steps
at once would mix.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..database.changes import ChangeSet
from ..sandbox.executor import DEFAULT_MAX_OUTPUT, Outcome
from ..sandbox.limits import DEFAULT_MEMORY_MB, Deadline
from ..workspace import StepRun

STOPPED = "KeyboardInterrupt: the step was stopped at the person's request; nothing it did was saved"
INTERRUPT_EVERY = 0.02  # seconds between two attempts to interrupt a step that goes on
INTERRUPT_FOR = 120.0  # seconds of attempts before giving up (the step is then in a long C call)

_STEP_LOCK = threading.Lock()
_DEADLINE_EXIT = Deadline.__exit__.__code__


class StepStopped(KeyboardInterrupt):
    """Raised into model code when the person stops its step."""


def _in_model_code(thread_id: int) -> bool:
    """Whether the model's code (``<step N>`` frames) is running on that thread right now."""
    frame = sys._current_frames().get(thread_id)
    found = False
    while frame is not None:
        code = frame.f_code
        if code is _DEADLINE_EXIT:
            return False  # the step is ending: leave its clean-up alone
        if code.co_filename.startswith("<step "):
            found = True
        frame = frame.f_back
    return found


def _raise_in(thread_id: int, exception: type[BaseException]) -> bool:
    """Make ``exception`` raise in thread ``thread_id`` at its next bytecode."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))
    return done == 1


class StoppableWorkspace:
    """An in-process workspace whose steps run off the event loop and can be stopped.

    Everything but :meth:`run` (and the output relay) is the wrapped workspace's own.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._thread: threading.Thread | None = None
        self._stop_asked = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_output: Callable[[str], None] | None = None
        self.stopped = 0  # steps stopped so far (for tests and the app's notices)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def session(self) -> Any:
        return self.inner.session

    @property
    def pending(self) -> bool:
        return bool(self.inner.pending)

    @property
    def running(self) -> bool:
        """A step's thread is alive (running, or being stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def configure(
        self,
        *,
        names: Mapping[str, Any],
        timeout: float | None = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
        memory_limit: float | None = DEFAULT_MEMORY_MB,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        # Output printed in the step's thread is handed to the loop's thread.
        self._on_output = on_output
        relay = self._relay if on_output is not None else None
        self.inner.configure(names=names, timeout=timeout, max_output=max_output, memory_limit=memory_limit, on_output=relay)

    def _relay(self, text: str) -> None:
        loop, callback = self._loop, self._on_output
        if loop is not None and callback is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, text)

    def set_policy(self, *, allow_schema_changes: bool, history: bool) -> None:
        setter = getattr(self.inner, "set_policy", None) or getattr(getattr(self.inner, "db", None), "set_policy", None)
        if setter is not None:
            setter(allow_schema_changes=allow_schema_changes, history=history)

    async def run(self, code: str, *, step: int, tree: Any = None) -> StepRun:
        loop = asyncio.get_running_loop()
        self._loop = loop
        done: asyncio.Future[StepRun] = loop.create_future()
        stop = self._stop_asked = threading.Event()

        def main() -> None:
            result: StepRun | BaseException
            with _STEP_LOCK:
                if stop.is_set():
                    result = _stopped_run()
                else:
                    try:
                        result = asyncio.run(self.inner.run(code, step=step, tree=tree))
                    except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread
                        result = exc
                if stop.is_set():
                    self._tidy()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, done, result, stop.is_set())

        thread = threading.Thread(target=main, name=f"py-agent step {step}", daemon=True)
        self._thread = thread
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self.stop()
            await _outlast_cancellation(done)
            raise

    def _tidy(self) -> None:
        """After a stopped step: make sure its transaction is gone (an interrupt may have cut the rollback short)."""
        try:
            if self.inner.pending:
                self.inner.rollback()
        except Exception:  # noqa: BLE001 - the next step begins with its own rollback check
            pass

    def stop(self) -> bool:
        """Stop the running step (from any thread); False when none runs."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        self._stop_asked.set()
        self.stopped += 1
        db = getattr(self.inner, "db", None)
        if db is not None and hasattr(db, "deadline"):
            db.deadline = 0.0  # a running query ends at its next progress check
        threading.Thread(target=self._interrupt, args=(thread,), name="py-agent stop", daemon=True).start()
        return True

    @staticmethod
    def _interrupt(thread: threading.Thread) -> None:
        until = time.monotonic() + INTERRUPT_FOR
        while thread.is_alive() and time.monotonic() < until:
            ident = thread.ident
            if ident is not None and _in_model_code(ident):
                _raise_in(ident, StepStopped)
            time.sleep(INTERRUPT_EVERY)

    def close(self) -> None:
        self.stop()
        self.inner.close()


def _stopped_run() -> StepRun:
    return StepRun(Outcome("", STOPPED, 0.0), ChangeSet(), False)


def _settle(done: asyncio.Future[StepRun], result: StepRun | BaseException, stopped: bool) -> None:
    if done.done():
        return
    if isinstance(result, StepRun):
        if stopped and result.outcome.error and "KeyboardInterrupt" in result.outcome.error:
            result = _stopped_run()
        done.set_result(result)
    elif isinstance(result, Exception):
        done.set_exception(result)
    else:  # an interrupt that landed outside the model's code: the step is over and rolled back
        done.set_result(_stopped_run())


async def _outlast_cancellation(done: asyncio.Future[Any]) -> None:
    """Wait for the step's thread to finish, however often this task is cancelled meanwhile."""
    while not done.done():
        try:
            await asyncio.wait({done})
        except asyncio.CancelledError:
            continue
    if not done.cancelled():
        done.exception()  # retrieved: the step's error is not interesting once it was stopped
