"""Runs checked model code in a persistent namespace.

What it guarantees, whatever the code does: stdout and stderr are captured
(and kept when the code raises); huge output is cut with a note; the error is a
short traceback of the model's own lines only (no host paths); SystemExit,
KeyboardInterrupt and every other BaseException are contained; wall time is
bounded (``limits.Deadline``). Everything that can run model code — the code, the
``repr`` of its last value, the message of its exception, an optional ``finish``
such as a flush — runs inside those limits; model-defined functions refuse to run
after it (the run-time layer's ``step()``). The decimal context is restored after
each step, so ``decimal.getcontext().prec = 2`` does not leak into host code.
Top-level ``await`` is allowed so that async tools work.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import decimal
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from .limits import Deadline, StepTimeout
from .runtime import RuntimeLayer, runtime_layer
from .source import ValidationError, parse

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

    def __init__(self, limit: int, on_write: Callable[[str], object] | None = None) -> None:
        self.on_write = on_write
        self.head_limit = max(0, limit * 3 // 4)
        self.tail_limit = max(0, limit - self.head_limit)
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.total = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        if self.on_write is not None and text:
            self.on_write(text)  # the live view (e.g. output_delta events), before any cut
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


def _compile(
    code: str, filename: str, tree: ast.Module | None = None, layer: RuntimeLayer | None = None
) -> tuple[CodeType, bool]:
    """Compile with top-level await; a bare last expression is kept in ``_`` for display.

    With a run-time layer, the tree is rewritten first (its compile step); what that
    refuses is raised as :class:`ValidationError`. Returns the code object and whether its
    last statement was such an expression.
    """
    if tree is None:
        tree, problem = parse(code, filename)
        if problem is not None:
            raise ValidationError([problem])
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        # Locate only the two new nodes: fix_missing_locations walks the whole tree
        # and was most of the per-step overhead.
        target = ast.copy_location(ast.Name(id=_LAST_VALUE, ctx=ast.Store()), last)
        tree.body[-1] = ast.copy_location(ast.Assign(targets=[target], value=last.value), last)
        show_last = True
    else:
        show_last = False
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    if layer is not None:
        return layer.compile(code, filename, tree, flags=flags), show_last
    return compile(tree, filename, "exec", flags=flags, dont_inherit=True), show_last


def _message(exc: BaseException) -> str:
    """``str(exc)``, or a note when the exception's own __str__ fails (it is model code)."""
    try:
        return str(exc)
    except Exception as err:  # noqa: BLE001 - a broken __str__ must not break the report
        return f"(its message could not be shown: {type(err).__name__})"


def model_traceback(exc: BaseException, filename: str, source: str) -> str:
    """The exception with only the model's own frames, each with its source line.

    Runs model code (the exception's ``__str__``): call it inside the step's limits.
    """
    lines = source.splitlines()
    frames = [f for f in traceback.extract_tb(exc.__traceback__, limit=200) if f.filename == filename]
    out = []
    if frames:
        out.append("Traceback (your code):")
        for frame in frames[-30:]:
            where = f"line {frame.lineno}" + (f", in {frame.name}" if frame.name != "<module>" else "")
            text = lines[frame.lineno - 1].strip() if frame.lineno and 0 < frame.lineno <= len(lines) else ""
            out.append(f"  {where}: {text}")
    detail = _message(exc)
    name = type(exc).__name__
    out.append(f"{name}: {detail}" if detail else name)
    return "\n".join(out)


_INTERRUPTED = "KeyboardInterrupt: the step was interrupted (it ran too long or the person stopped it)"

# Inside Pyodide, recursion that passes through C (``def __repr__(self): return repr(self)``,
# ``__eq__``, ``__format__``, ``sorted`` in ``__lt__``) exhausts the JavaScript stack, which
# kills the interpreter, long before Python's default limit of 1000 frames; about 250
# frames in all is safe under Node and in Chromium's workers. Model code gets this many
# frames beyond where it starts (SQLAlchemy's own calls included): plenty for ordinary code.
_STEP_FRAMES = 160


@contextlib.contextmanager
def _shallow_stack() -> Iterator[None]:
    """In the browser: a recursion limit low enough that deep recursion is a RecursionError."""
    if sys.platform != "emscripten":
        yield
        return
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(min(previous, depth + _STEP_FRAMES))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


class Executor:
    """Executes code in ``namespace`` (which persists between steps).

    If the namespace's builtins are a run-time layer's (``safe_builtins(policy)`` with the
    layer on), every step is compiled through that layer and runs inside its ``step()``:
    functions the model defined can run only then.
    """

    def __init__(
        self,
        namespace: MutableMapping[str, Any],
        *,
        max_output: int = DEFAULT_MAX_OUTPUT,
        timeout: float | None = 30.0,
        on_output: Callable[[str], object] | None = None,
        on_value: Callable[[Any], bool] | None = None,
    ) -> None:
        self.namespace = namespace
        self.max_output = max_output
        self.timeout = timeout
        self.on_output = on_output  # called with each piece of output as it is printed
        # Called with a step's last bare value; True means it was shown (e.g. a query result
        # as a table, py_agent.display) and its repr is not printed. Runs inside the limits.
        self.on_value = on_value
        self.steps = 0

    @property
    def layer(self) -> RuntimeLayer | None:
        """The run-time layer of the namespace (looked up each time: builtins may change)."""
        return runtime_layer(self.namespace)

    async def run(
        self,
        code: str,
        *,
        filename: str | None = None,
        tree: ast.Module | None = None,
        finish: Callable[[], object] | None = None,
    ) -> Outcome:
        """Run ``code``; ``tree`` is its already-parsed AST if the caller has one (it is modified).

        ``finish`` (e.g. flushing the session) runs after the code, still inside the step's
        limits and while model-defined functions may run (a flush may call a model's
        ``__eq__``). If it raises, the exception propagates to the caller (after the limits
        are lifted); errors of the code itself become ``Outcome.error``.
        """
        self.steps += 1
        filename = filename or f"<step {self.steps}>"
        sink = BoundedOutput(self.max_output, self.on_output)
        started = time.perf_counter()
        error: str | None = None
        layer = self.layer
        try:
            code_obj, show_last = _compile(code, filename, tree, layer)
        except ValidationError as refused:
            first = refused.violations[0]
            if first.rule == "syntax":
                return Outcome("", f"SyntaxError: {first.message} (line {first.line})", 0.0)
            text = "\n".join(str(v) for v in refused.violations)
            return Outcome("", f"The code was refused before it ran:\n{text}", 0.0)
        except SyntaxError as exc:
            return Outcome("", f"SyntaxError: {exc.msg} (line {exc.lineno})", 0.0)
        if show_last:
            self.namespace.pop(_LAST_VALUE, None)
        if layer is not None:
            layer.guard_namespace(self.namespace)  # tools' results are checked too
        finish_error: BaseException | None = None
        step = layer.step() if layer is not None else contextlib.nullcontext()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), Deadline(self.timeout), step, decimal.localcontext(), _shallow_stack():
                # Everything that may run model code happens in here, under the limits:
                # the code, the display of its last value, the message of its error.
                try:
                    result = eval(code_obj, self.namespace)  # noqa: S307 - checked code, curated builtins
                    if inspect.iscoroutine(result):
                        await result
                    if show_last:
                        value = self.namespace.get(_LAST_VALUE)
                        if inspect.iscoroutine(value):  # `some_async_tool()` without await
                            value.close()
                            print(f"(that returned a coroutine: write `await {code.strip().splitlines()[-1].strip()}`)")
                        elif value is not None and not (self.on_value is not None and self.on_value(value)):
                            print(repr(value))
                except asyncio.CancelledError:
                    raise
                except KeyboardInterrupt:
                    error = _INTERRUPTED
                except BaseException as exc:  # noqa: BLE001 - SystemExit & co. must not escape model code
                    error = model_traceback(exc, filename, code)
                if error is None and finish is not None:
                    try:
                        finish()
                    except Exception as exc:  # noqa: BLE001 - handed to the caller below
                        finish_error = exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and getattr(task, "cancelling", lambda: 0)():
                raise  # the run is being aborted: let cancellation through
            error = model_traceback(asyncio.CancelledError("cancelled"), filename, code)
        except KeyboardInterrupt:
            error = _INTERRUPTED
        except BaseException as exc:  # noqa: BLE001 - e.g. the time limit hit while reporting an error
            # Outside the limits now: no model code may run, so no str() of a model's exception.
            detail = str(exc) if type(exc) is StepTimeout else "(raised while the error was being reported)"
            error = f"{type(exc).__name__}: {detail}"
        if finish_error is not None:
            raise finish_error
        duration = (time.perf_counter() - started) * 1000
        return Outcome(sink.getvalue(), error, duration, sink.truncated)
