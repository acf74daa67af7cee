"""Runs checked model code in a persistent namespace.

What it guarantees, whatever the code does: stdout and stderr are captured
(and kept when the code raises); huge output is cut with a note; the error is a
short traceback of the model's own lines only (no host paths); SystemExit,
KeyboardInterrupt and every other BaseException are contained; wall time is
bounded on CPython (in the browser the page's interrupt does that job).
Top-level ``await`` is allowed so that async tools work.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import time
import traceback
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from .limits import Deadline

DEFAULT_MAX_OUTPUT = 20_000
_LAST_VALUE = "_"


@dataclass(frozen=True)
class Outcome:
    output: str
    error: str | None
    duration_ms: float
    truncated: bool = False


class BoundedOutput:
    """A text sink that keeps the head and the tail of what is written.

    Memory stays bounded however much the code prints; the middle is replaced by
    a note saying how much was left out.
    """

    def __init__(self, limit: int) -> None:
        self.head_limit = max(0, limit * 3 // 4)
        self.tail_limit = max(0, limit - self.head_limit)
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.total = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        self.total += len(text)
        room = self.head_limit - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += min(room, len(text))
            text = text[room:]
        if text and self.tail_limit:
            self.tail = (self.tail + text)[-self.tail_limit :]
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def truncated(self) -> bool:
        return self.total > self.head_limit + self.tail_limit

    def getvalue(self) -> str:
        head = "".join(self.head)
        if not self.truncated:
            return head + self.tail
        left_out = self.total - self.head_size - len(self.tail)
        return (
            f"{head}\n[... {left_out:,} characters of output left out; print less, "
            f"e.g. a count or the first rows ...]\n{self.tail}"
        )


def _compile(code: str, filename: str, tree: ast.Module | None = None) -> tuple[CodeType, bool]:
    """Compile with top-level await; a bare last expression is kept in ``_`` for display.

    Returns the code object and whether its last statement was such an expression.
    """
    if tree is None:
        tree = ast.parse(code, filename=filename, mode="exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        # Locate only the two new nodes: fix_missing_locations walks the whole tree
        # and was most of the per-step overhead.
        target = ast.copy_location(ast.Name(id=_LAST_VALUE, ctx=ast.Store()), last)
        tree.body[-1] = ast.copy_location(ast.Assign(targets=[target], value=last.value), last)
        show_last = True
    else:
        show_last = False
    compiled = compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    return compiled, show_last


def model_traceback(exc: BaseException, filename: str, source: str) -> str:
    """The exception with only the model's own frames, each with its source line."""
    lines = source.splitlines()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    out = []
    if frames:
        out.append("Traceback (your code):")
        for frame in frames:
            where = f"line {frame.lineno}" + (f", in {frame.name}" if frame.name != "<module>" else "")
            text = lines[frame.lineno - 1].strip() if frame.lineno and 0 < frame.lineno <= len(lines) else ""
            out.append(f"  {where}: {text}")
    detail = str(exc)
    name = type(exc).__name__
    out.append(f"{name}: {detail}" if detail else name)
    return "\n".join(out)


class Executor:
    """Executes code in ``namespace`` (which persists between steps)."""

    def __init__(
        self,
        namespace: MutableMapping[str, Any],
        *,
        max_output: int = DEFAULT_MAX_OUTPUT,
        timeout: float | None = 30.0,
    ) -> None:
        self.namespace = namespace
        self.max_output = max_output
        self.timeout = timeout
        self.steps = 0

    async def run(self, code: str, *, filename: str | None = None, tree: ast.Module | None = None) -> Outcome:
        """Run ``code``; ``tree`` is its already-parsed AST if the caller has one (it is modified)."""
        self.steps += 1
        filename = filename or f"<step {self.steps}>"
        sink = BoundedOutput(self.max_output)
        started = time.perf_counter()
        error: str | None = None
        try:
            code_obj, show_last = _compile(code, filename, tree)
        except SyntaxError as exc:
            return Outcome("", f"SyntaxError: {exc.msg} (line {exc.lineno})", 0.0)
        if show_last:
            self.namespace.pop(_LAST_VALUE, None)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), Deadline(self.timeout):
                result = eval(code_obj, self.namespace)  # noqa: S307 - checked code, curated builtins
                if inspect.iscoroutine(result):
                    await result
                if show_last:
                    value = self.namespace.get(_LAST_VALUE)
                    if inspect.iscoroutine(value):  # `some_async_tool()` without await
                        value.close()
                        print(f"(that returned a coroutine: write `await {code.strip().splitlines()[-1].strip()}`)")
                    elif value is not None:
                        print(repr(value))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and getattr(task, "cancelling", lambda: 0)():
                raise  # the run is being aborted: let cancellation through
            error = model_traceback(asyncio.CancelledError("cancelled"), filename, code)
        except KeyboardInterrupt:
            error = "KeyboardInterrupt: the step was interrupted (it ran too long or the person stopped it)"
        except BaseException as exc:  # noqa: BLE001 - SystemExit & co. must not escape model code
            error = model_traceback(exc, filename, code)
        duration = (time.perf_counter() - started) * 1000
        return Outcome(sink.getvalue(), error, duration, sink.truncated)
