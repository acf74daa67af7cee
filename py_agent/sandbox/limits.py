"""Limits on a step of model code: wall time (and, later, memory).

On CPython a repeating interval timer raises :class:`StepTimeout` into the running
code; off the main thread a trace function checks the clock. In the browser the
page's interrupt does this job (see ``web/app/agent.js``).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any


class StepTimeout(BaseException):
    """Raised into model code when a step runs past its time limit.

    A ``BaseException`` so that ``except Exception`` in model code cannot swallow it.
    """


class Deadline:
    """Raises StepTimeout into the running code once time is up (CPython only).

    On the main thread a repeating interval timer is used (no overhead while the
    code runs, and it fires again if the code swallows the first one); elsewhere
    a trace function checks the clock.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._previous: Any = None
        self._mode = ""

    def __enter__(self) -> "Deadline":
        if not self.seconds or sys.platform == "emscripten":
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds, 0.05)
            self._mode = "signal"
        else:
            end = time.monotonic() + self.seconds

            def tracer(frame: FrameType, event: str, arg: Any) -> Any:
                if time.monotonic() > end:
                    raise StepTimeout(self._message())
                return tracer

            self._previous = sys.gettrace()
            sys.settrace(tracer)
            self._mode = "trace"
        return self

    def _message(self) -> str:
        return f"the step ran longer than {self.seconds:g} s and was stopped"

    def _on_alarm(self, signum: int, frame: Any) -> None:
        raise StepTimeout(self._message())

    def __exit__(self, *exc: object) -> None:
        if self._mode == "signal":
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, self._previous)
        elif self._mode == "trace":
            sys.settrace(self._previous)
        self._mode = ""


