"""Gated calls: every tool and model function model code calls goes through a :class:`Gate`.

The gate applies the tool's approval rule (``"never"``, ``"ask"``, ``"blocked"`` or a
function of the arguments), records each call as ``tool_call`` events (started, then
finished / failed / declined / blocked, with the arguments, the result or error and the
duration) and, for model functions, their usage and cost.

Model code runs synchronously, so a call cannot wait for a person in the middle of a
step. A call that needs a decision therefore *ends the step*: the gate raises
:class:`ApprovalNeeded` (a ``BaseException``, so ``except Exception`` in model code does
not swallow it, and the gate remembers it even if a bare ``except:`` does), the loop
rolls the step's transaction back, emits ``approval_required {kind: "call", detail:
{name, arguments}}`` and pauses. Once the person decides, the same code runs again from
its start: an approved call (same name, same arguments) then goes through, a declined
one raises :class:`PermissionError` at that point, which the model reads like any error.

The consequence: whatever the step did *before* the gated call happens twice. Database
changes do not (the first run is rolled back), names the step bound are put back as they
were, and a gated call that was approved and ran is not made again: its result is
replayed (so a step with two gated calls sends the first e-mail once). But an ungated
tool with outside effects (an e-mail, a file, an HTTP call) called before the gated call
runs again. Tools with outside effects should be idempotent or gated themselves; the
prompt tells the model to call gated tools early in a step.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events as ev

if TYPE_CHECKING:
    from .tools import Tool

#: At most this many decisions per step: code whose gated calls change on every run
#: (a time stamp in the arguments) would otherwise ask for ever.
MAX_DECISIONS_PER_STEP = 8
#: Arguments and results in events are shown up to this many characters each.
PREVIEW_CHARS = 300


class ApprovalNeeded(BaseException):
    """A call needs the person's decision: ends the step (internal; the loop handles it)."""


@dataclass(frozen=True)
class CallRequest:
    """A call waiting for a decision: the tool's name and its arguments (as shown)."""

    name: str
    arguments: dict[str, Any]

    @property
    def key(self) -> str:
        return call_key(self.name, self.arguments)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


def call_key(name: str, arguments: dict[str, Any]) -> str:
    """What identifies a call across runs of a step: its name and shown arguments."""
    return name + json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


class Gate:
    """The calls of one conversation: rules applied, decisions kept, events emitted.

    ``remembered`` holds the names allowed "for the rest of this conversation"; the
    other decisions hold for one step (its runs). ``can_ask=False`` refuses calls that
    need a decision instead of pausing (no one to ask). ``on_event`` receives each
    ``tool_call`` event as it happens.
    """

    def __init__(self, *, can_ask: bool = True, on_event: Callable[[ev.Event], object] | None = None) -> None:
        self.can_ask = can_ask
        self.on_event = on_event
        self.remembered: set[str] = set()
        self.step = 0
        self.allowed: set[str] = set()
        self.declined: set[str] = set()
        self.decisions = 0
        self.pending: CallRequest | None = None
        self.events: list[ev.ToolCall] = []
        self._count = 0
        # Results of approved calls that ran in an earlier run of this step, by key, in order:
        # the step's next run gets them back instead of making the call again.
        self._done: dict[str, list[Any]] = {}
        self._seen: dict[str, int] = {}  # calls of each key in this run so far
        self._lock = threading.Lock()  # a sync model function may record from a worker thread

    # -- the loop's side ------------------------------------------------------------------------
    def begin(self, step: int) -> None:
        """A run of ``step`` starts (a new step forgets the previous step's decisions)."""
        if step != self.step:
            self.step, self._count = step, 0
            self.allowed, self.declined, self.decisions = set(), set(), 0
            self._done = {}
        self.pending = None
        self.events = []
        self._seen = {}

    def take_events(self) -> list[ev.ToolCall]:
        events, self.events = self.events, []
        return events

    def decide(self, request: CallRequest, approved: bool, *, remember: bool = False) -> None:
        """Record the person's decision on ``request`` for the next run of the step."""
        self.decisions += 1
        if approved:
            self.allowed.add(request.key)
            if remember:
                self.remembered.add(request.name)
        else:
            self.declined.add(request.key)
        self.pending = None

    # -- the model code's side -------------------------------------------------------------------
    def wrap(self, tool: Tool) -> Callable[..., Any]:
        """The function model code calls for ``tool``: rule, events, then the tool itself."""
        gate = self
        signature = _signature(tool.function)
        if tool.kind == "model":
            from .llm_func import _outcome

            spec = tool.function.llm_func  # type: ignore[attr-defined]

            async def call_model(*args: Any, **kwargs: Any) -> Any:
                record = gate._enter(tool, signature, args, kwargs)
                if isinstance(record, _Replay):
                    return record.value
                started = time.perf_counter()
                call = None
                try:
                    call = await spec.acall(*args, **kwargs)
                    value = _outcome(call)
                except BaseException as exc:
                    gate._finish(record, started, error=exc, call=call or getattr(exc, "call", None))
                    raise
                gate._finish(record, started, result=value, call=call)
                return value

            call_model.__name__ = tool.name
            call_model.__doc__ = tool.description
            return call_model
        if inspect.iscoroutinefunction(tool.function):

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                record = gate._enter(tool, signature, args, kwargs)
                if isinstance(record, _Replay):
                    return record.value
                started = time.perf_counter()
                try:
                    value = await tool.function(*args, **kwargs)
                except BaseException as exc:
                    gate._finish(record, started, error=exc)
                    raise
                gate._finish(record, started, result=value)
                return value

            call_async.__name__ = tool.name
            call_async.__doc__ = tool.description
            return call_async

        def call(*args: Any, **kwargs: Any) -> Any:
            record = gate._enter(tool, signature, args, kwargs)
            if isinstance(record, _Replay):
                return record.value
            started = time.perf_counter()
            try:
                value = tool.function(*args, **kwargs)
            except BaseException as exc:
                gate._finish(record, started, error=exc)
                raise
            gate._finish(record, started, result=value)
            return value

        call.__name__ = tool.name
        call.__doc__ = tool.description
        return call

    def _enter(self, tool: Tool, signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Started | _Replay:
        """Apply the rule; the ``started`` event, a replayed result, or raise (refused, or a
        decision is needed)."""
        if self.pending is not None:
            raise ApprovalNeeded(self.pending.name)  # the step is over: it waits for a decision
        name = tool.name
        try:
            arguments = _bind(signature, args, kwargs)
        except TypeError as wrong:
            raise TypeError(f"{name}(): {wrong}") from None
        shown = {key: describe(value) for key, value in arguments.items()}
        with self._lock:
            self._count += 1
            call_id = f"{self.step}-{self._count}"
        base = ev.ToolCall(self.step, call_id, name, shown, "started", kind=tool.kind)
        decision = _decision(tool, arguments)
        if decision == "blocked":
            self._emit(dataclasses.replace(base, status="blocked", error=f"{name} is blocked in this app"))
            raise PermissionError(f"{name}() is blocked in this app{' for these arguments' if callable(tool.approval) else ''}: the call was not made. Do not retry it; tell the person.")
        if decision == "never":
            self._emit(base)
            return _Started(base, None)
        key = call_key(name, shown)
        if name not in self.remembered:
            if key in self.declined:
                self._emit(dataclasses.replace(base, status="declined", error="the person declined this call"))
                raise PermissionError(
                    f"the person declined the call {_call_text(name, shown)}: it was not made. Do not retry it; "
                    "ask the person what they want instead."
                )
            if key not in self.allowed:
                refusal = self._why_not_ask(name)
                if refusal:
                    self._emit(dataclasses.replace(base, status="blocked", error=refusal))
                    raise PermissionError(f"{_call_text(name, shown)} was not made: {refusal}.")
                self.pending = CallRequest(name, shown)
                raise ApprovalNeeded(name)
        # Approved (for this step or the conversation). Made already in an earlier run of
        # this step? Then its result, not the call again.
        with self._lock:
            nth = self._seen.get(key, 0)
            self._seen[key] = nth + 1
            done = self._done.get(key, [])
        if nth < len(done):
            return _Replay(done[nth])
        self._emit(base)
        return _Started(base, key)

    def _why_not_ask(self, name: str) -> str:
        if not self.can_ask:
            return f"{name} needs the person's approval, which cannot be asked for here"
        if self.decisions >= MAX_DECISIONS_PER_STEP:
            return (
                f"this step already asked the person {self.decisions} times (calls whose arguments change on every "
                "run cannot be approved); call it in a step of its own, with fixed arguments"
            )
        return ""

    def _finish(self, started_call: _Started, started: float, *, result: Any = None, error: BaseException | None = None, call: Any = None) -> None:
        record = started_call.event
        if error is None and started_call.key is not None:
            with self._lock:
                self._done.setdefault(started_call.key, []).append(result)
        usage = getattr(call, "usage", None)
        extra: dict[str, Any] = {}
        if usage is not None:
            extra = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cost": call.cost}
        self._emit(
            dataclasses.replace(
                record,
                status="failed" if error is not None else "finished",
                result=None if error is not None else describe(result),
                error=None if error is None else _error_text(error),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                **extra,
            )
        )

    def _emit(self, event: ev.ToolCall) -> None:
        with self._lock:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


@dataclass(frozen=True)
class _Started:
    """A call under way: its ``started`` event, and its key if an approval let it through."""

    event: ev.ToolCall
    key: str | None


@dataclass(frozen=True)
class _Replay:
    """The result of an approved call already made in an earlier run of the step."""

    value: Any


# -- the step's time, for model functions called inside it -------------------------------------

_STEP_TIME: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("py_agent_step_time", default=None)


@contextlib.contextmanager
def step_time(seconds: float | None) -> Iterator[None]:
    """While open: a step with this time limit runs (model functions it calls read it)."""
    token = _STEP_TIME.set((time.monotonic() + seconds, seconds) if seconds else None)
    try:
        yield
    finally:
        _STEP_TIME.reset(token)


def step_time_left() -> tuple[float, float] | None:
    """``(seconds left, the step's limit)`` of the step running now, or None outside one."""
    current = _STEP_TIME.get()
    if current is None:
        return None
    end, seconds = current
    return end - time.monotonic(), seconds


# -- helpers ---------------------------------------------------------------------------------------


def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _bind(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name (defaults applied); a call that does not fit raises TypeError."""
    if signature is None:
        return {**{str(i): a for i, a in enumerate(args)}, **kwargs}
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _decision(tool: Tool, arguments: dict[str, Any]) -> str:
    rule = tool.approval
    if not callable(rule):
        return rule
    try:
        decision = rule(dict(arguments))
    except Exception as exc:  # noqa: BLE001 - a broken rule must not let the call through
        raise PermissionError(
            f"the app's approval rule for {tool.name} failed ({type(exc).__name__}: {exc}), so the call was not made"
        ) from None
    if decision not in ("never", "ask", "blocked"):
        raise PermissionError(
            f"the app's approval rule for {tool.name} returned {decision!r} instead of 'never', 'ask' or 'blocked', "
            "so the call was not made"
        )
    return decision


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe(value: Any, limit: int = PREVIEW_CHARS, _depth: int = 0) -> Any:
    """``value`` as JSON-safe data to show a person: plain values as they are, containers
    one or two levels deep, mapped objects as ``Book(id=3, title='Dune')``, anything else
    as its ``repr`` (without memory addresses, so it is the same on every run), cut short."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if _depth < 2 and isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        shown = [describe(v, limit, _depth + 1) for v in items[:20]]
        return shown + ([f"… {len(items) - 20} more"] if len(items) > 20 else [])
    if _depth < 2 and isinstance(value, dict):
        pairs = list(value.items())
        shown_dict = {str(k): describe(v, limit, _depth + 1) for k, v in pairs[:20]}
        if len(pairs) > 20:
            shown_dict["…"] = f"{len(pairs) - 20} more"
        return shown_dict
    text = _mapped(value)
    if text is None:
        try:
            text = _ADDRESS.sub("", repr(value))
        except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the call
            text = f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"
    return text if len(text) <= limit else text[:limit] + "…"


def _mapped(value: Any) -> str | None:
    """``Book(id=3, title='Dune')`` for an ORM object (loaded column values only: no SQL)."""
    if not hasattr(type(value), "__mapper__"):
        return None
    try:
        from sqlalchemy import inspect as sa_inspect

        state = sa_inspect(value)
        columns = [attr.key for attr in state.mapper.column_attrs]
        loaded = state.dict
        shown = ", ".join(f"{key}={loaded[key]!r}" for key in columns if key in loaded)
    except Exception:  # noqa: BLE001
        return None
    return f"{type(value).__name__}({shown})"


def _call_text(name: str, arguments: dict[str, Any]) -> str:
    inner = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False, default=str)}" for key, value in arguments.items())
    text = f"{name}({inner})"
    return text if len(text) <= 400 else text[:400] + "…)"


def _error_text(error: BaseException) -> str:
    try:
        detail = str(error)
    except Exception:  # noqa: BLE001 - the message of a model-made exception
        detail = ""
    name = type(error).__name__
    return f"{name}: {detail}" if detail else name


__all__ = ["MAX_DECISIONS_PER_STEP", "ApprovalNeeded", "CallRequest", "Gate", "call_key", "describe", "step_time", "step_time_left"]
