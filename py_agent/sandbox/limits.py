"""Limits on a step of model code: wall time and memory.

Time, on CPython: a repeating interval timer raises :class:`StepTimeout` into the
running code (off the main thread, a trace function checks the clock). In the browser
there is no timer: the page writes SIGALRM into Pyodide's interrupt buffer when the
step's time is up, and :class:`Deadline` turns it into the same StepTimeout.

Either way the rule is the same: **a StepTimeout is raised only while the step's code
runs.** Once ``Deadline.__exit__`` has begun, the handler does nothing: an alarm that
arrives as the step ends (the timer fires again every 50 ms while a long C call
finishes, and a signal is only handled at the next bytecode) can no longer escape
into the host's code.

Memory, on CPython under Linux: :class:`MemoryCap` lowers the process's address-space
limit (``RLIMIT_AS``) to what is in use plus the cap while the step runs, so a huge
allocation fails at once with MemoryError, and raises it back afterwards. Elsewhere
(macOS, Windows) it does nothing; in the browser the worker's memory is bounded by the
page (``memoryLimit``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Self


class StepTimeout(BaseException):
    """Raised into model code when a step runs past its time limit.

    A ``BaseException`` so that ``except Exception`` in model code cannot swallow it.
    """


def _in_exit(frame: FrameType | None) -> bool:
    """Whether ``Deadline.__exit__`` is on the stack (the step is ending)."""
    while frame is not None:
        if frame.f_code is _EXIT_CODE:
            return True
        frame = frame.f_back
    return False


class Deadline:
    """Raises StepTimeout into the running code once ``seconds`` have passed.

    On CPython's main thread a repeating interval timer is used (no overhead while the
    code runs, and it fires again if the code swallows the first one); on other
    threads a trace function checks the clock. In the browser (``emscripten``) the
    page's SIGALRM is the timer. ``seconds`` of None or 0 means no limit.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._previous: Any = None
        self._mode = ""
        self._armed = False

    def __enter__(self) -> Self:
        if not self.seconds:
            return self
        on_main = threading.current_thread() is threading.main_thread()
        if sys.platform == "emscripten":
            if on_main:
                self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
                self._mode = "page"
        elif on_main and hasattr(signal, "setitimer"):
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds, 0.05)
            self._mode = "signal"
        else:
            end = time.monotonic() + self.seconds

            def tracer(frame: FrameType, event: str, arg: Any) -> Any:
                if self._armed and time.monotonic() > end and not _in_exit(frame):
                    raise StepTimeout(self.message())
                return tracer

            self._previous = sys.gettrace()
            sys.settrace(tracer)
            self._mode = "trace"
        self._armed = True
        return self

    def message(self) -> str:
        return f"the step ran longer than {self.seconds:g} s and was stopped"

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        # Ignored once the step is ending: raising inside __exit__ would skip the disarming
        # below and leave the timer firing into the host's code.
        if self._armed and not _in_exit(frame):
            raise StepTimeout(self.message())

    def __exit__(self, *exc: object) -> None:
        # An alarm handled from here on finds this frame on the stack and does nothing.
        self._armed = False
        if self._mode == "signal":
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, self._previous)
        elif self._mode == "page":
            signal.signal(signal.SIGALRM, self._previous)
        elif self._mode == "trace":
            sys.settrace(self._previous)
        self._mode = ""


_EXIT_CODE = Deadline.__exit__.__code__


def ignore_page_alarms() -> None:
    """In the browser: an alarm from the page outside any step does nothing.

    Call once at start-up (the worker does), so a time-limit signal that arrives just
    after a step ended is dropped instead of raising in the event loop.
    """
    if sys.platform == "emscripten":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)


# -- memory ------------------------------------------------------------------------------------

DEFAULT_MEMORY_MB = 1024


def _address_space() -> int | None:
    """Bytes of address space this process uses now (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class MemoryCap:
    """Limits how much more memory the process may take while a step runs.

    ``megabytes`` on top of what is in use when the step starts (None: no cap). On Linux
    the soft ``RLIMIT_AS`` is set to that total and restored on exit, so an allocation
    past it raises MemoryError in the step and the process goes on. The limit is
    process-wide while it holds: other threads (a web server's, say) see it too.
    It never loosens a limit already in place. Elsewhere it does nothing.
    """

    def __init__(self, megabytes: float | None) -> None:
        self.megabytes = megabytes
        self._restore: tuple[int, int] | None = None

    @property
    def active(self) -> bool:
        return self._restore is not None

    def __enter__(self) -> Self:
        if not self.megabytes or not sys.platform.startswith("linux"):
            return self
        try:
            import resource
        except ImportError:
            return self
        used = _address_space()
        if used is None:
            return self
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = used + int(self.megabytes * 1024 * 1024)
        for bound in (soft, hard):
            if bound != resource.RLIM_INFINITY:
                cap = min(cap, bound)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        except (ValueError, OSError):
            return self
        self._restore = (soft, hard)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, self._restore)
            self._restore = None

    def message(self) -> str:
        return (
            f"the step needed more than the {self.megabytes:g} MB of memory a step may use, so it was stopped; "
            "work in smaller pieces (iterate over query results instead of loading everything, avoid huge lists)"
        )
