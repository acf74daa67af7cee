"""Events the agent loop yields: frozen dataclasses in Python, plain JSON across postMessage.

Every event has a ``type`` tag; ``to_dict()`` gives the JSON object the browser
worker posts to the page, and ``event_from_dict()`` turns it back into the
same dataclass, so Python, the worker protocol and transcripts share one schema.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar


class Signal(str, enum.Enum):
    """Phase markers, llmalchemy-style: a UI can show a spinner per phase."""

    COMPLETION = "completion"  # a completion request is about to be sent
    VALIDATION = "validation"  # the reply's code is being checked
    EXECUTION = "execution"  # the checked code is running
    APPROVAL = "approval"  # the step's changes wait for a decision
    EXCEEDED = "exceeded"  # max_loops reached; the turn ends


_EVENT_TYPES: dict[str, type["Event"]] = {}


@dataclass(frozen=True)
class Event:
    """Base class. Subclasses set ``type`` and are registered for ``event_from_dict``."""

    type: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _EVENT_TYPES[cls.type] = cls

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.value if isinstance(value, enum.Enum) else value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        return event_from_dict(data)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_dict()`` form."""
    cls = _EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    kwargs = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
    if cls is SignalEvent:
        kwargs["signal"] = Signal(kwargs["signal"])
    return cls(**kwargs)


@dataclass(frozen=True)
class SystemInstruction(Event):
    """The rendered system prompt, sent once at the start of each turn."""

    type: ClassVar[str] = "system"
    text: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SignalEvent(Event):
    type: ClassVar[str] = "signal"
    signal: Signal
    step: int


@dataclass(frozen=True)
class UserMessageEvent(Event):
    """The person's message that starts a turn."""

    type: ClassVar[str] = "user_message"
    content: str
    # "" for a request that starts a turn; "steer" for a message the person sent while the
    # turn ran (given to the model at its next step); "follow_up" for one queued until the
    # previous turn ended (it starts this turn).
    mode: str = ""


@dataclass(frozen=True)
class MessageDelta(Event):
    """A piece of the assistant's ``message`` field, as it streams in."""

    type: ClassVar[str] = "message_delta"
    step: int
    text: str


@dataclass(frozen=True)
class CodeDelta(Event):
    """A piece of the assistant's ``code`` field, as it streams in."""

    type: ClassVar[str] = "code_delta"
    step: int
    text: str


@dataclass(frozen=True)
class AssistantReply(Event):
    """The whole parsed reply of one step."""

    type: ClassVar[str] = "assistant_reply"
    step: int
    message: str
    code: str
    extensions: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class MalformedReply(Event):
    """The model's reply could not be read; the problem is fed back to it."""

    type: ClassVar[str] = "malformed_reply"
    step: int
    problem: str
    raw: str


@dataclass(frozen=True)
class ReplyTruncated(Event):
    """A reply that was not whole; none of it is read or run.

    ``reason`` is ``"max_tokens"`` (the server cut it off at ``limit`` output tokens;
    ``limit`` is ``None`` when unknown) or ``"too_long"`` (reading stopped past ``limit``
    characters). ``chars`` is how much arrived. When ``retry_with`` is set, nothing had
    shown yet and the same request was sent again with that higher output limit;
    otherwise ``message`` is what the model is told (reply again, shorter).
    """

    type: ClassVar[str] = "reply_truncated"
    step: int
    reason: str
    limit: int | None
    chars: int
    message: str = ""
    retry_with: int | None = None


@dataclass(frozen=True)
class PackageInstalled(Event):
    """An extra package the app allows (``allowed_packages``) was installed for a step.

    Installed the first time the step's code imports it, from the site's own wheels;
    ``error`` says why it could not be (the step then runs and meets the ImportError).
    """

    type: ClassVar[str] = "package_installed"
    step: int
    name: str
    version: str
    duration_ms: float
    error: str | None = None


@dataclass(frozen=True)
class ValidationFailed(Event):
    """The validator refused the step's code; nothing ran."""

    type: ClassVar[str] = "validation_failed"
    step: int
    violations: list[dict[str, Any]]
    message: str


@dataclass(frozen=True)
class ExecutionResult(Event):
    """What the step's code printed, and its error if it raised."""

    type: ClassVar[str] = "execution_result"
    step: int
    output: str
    error: str | None = None
    duration_ms: float = 0.0
    truncated: bool = False


@dataclass(frozen=True)
class Changes(Event):
    """Rows inserted / updated / deleted per table by one step.

    ``status`` is ``"committed"``, ``"pending"`` (waiting for approval),
    ``"declined"`` or ``"rolled_back"`` (the step raised).
    """

    type: ClassVar[str] = "changes"
    step: int
    tables: dict[str, dict[str, int]]
    status: str
    # Row-level preview: {table: {"key": [pk columns], "inserted": [row], "updated":
    # [{"key", "before", "after"}], "deleted": [row]}}, lists capped (``tables`` stays exact).
    rows: dict[str, Any] = field(default_factory=dict)
    schema: list[str] = field(default_factory=list)  # schema changes (only when the policy allows them)


@dataclass(frozen=True)
class ApprovalRequired(Event):
    """The step ran in an open transaction and waits for ``resume(approved)``."""

    type: ClassVar[str] = "approval_required"
    step: int
    code: str
    tables: dict[str, dict[str, int]]
    rows: dict[str, Any] = field(default_factory=dict)  # as in ``changes``
    kind: str = "write"  # "write" | "import" | "call"
    detail: Any = None  # import: the schema report; call: {name, arguments}
    schema: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApprovalDecision(Event):
    type: ClassVar[str] = "approval_decision"
    step: int
    approved: bool
    remember: bool = False  # "allow for the rest of this conversation"


@dataclass(frozen=True)
class OutputDelta(Event):
    """What a running step printed, as it prints it (to subscribers only: the loop cannot
    yield while code runs; ``execution_result`` still carries the whole output)."""

    type: ClassVar[str] = "output_delta"
    step: int
    text: str


@dataclass(frozen=True)
class Display(Event):
    """A table or chart the step's code showed (``show()``, ``chart()``, or a last expression
    that is a query result); follows the step's ``execution_result``.

    ``rows`` are JSON-safe (``py_agent.display.values``), at most the display limit of them;
    ``total`` counts all the rows the data had and ``truncated`` says some were left out.
    A chart's ``spec`` is Vega-Lite with its data inline; its ``columns``/``rows`` are the
    plotted data as a table.
    """

    type: ClassVar[str] = "display"
    step: int
    kind: str  # "table" | "chart"
    title: str | None
    columns: list[str]
    rows: list[list[Any]]
    total: int
    truncated: bool = False
    spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolCall(Event):
    """A call of a tool or model function from model code (``kind``: "tool" | "model").

    ``status``: "started", then "finished" (``result``), "failed" (``error``), or at once
    "declined" (the person said no) / "blocked" (the app's rule). ``arguments`` and
    ``result`` are JSON-safe previews. Published to subscribers as it happens and yielded
    by the loop after the step, before its ``execution_result``. Model functions add
    their usage (``input_tokens``, ``output_tokens``) and ``cost``.
    """

    type: ClassVar[str] = "tool_call"
    step: int
    id: str
    name: str
    arguments: dict[str, Any]
    status: str
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    kind: str = "tool"
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


@dataclass(frozen=True)
class Compacted(Event):
    """Older steps of the conversation were shortened so the next request fits the model's
    context window (``tokens_before`` -> ``tokens_after``, estimated, of ``window``).

    ``reason``: "threshold" (it neared the window) or "overflow" (the server said it was
    too long). ``steps``: older steps whose code and output were shortened; ``turns``:
    earlier requests left out altogether (listed in a note the model keeps).
    """

    type: ClassVar[str] = "compacted"
    step: int
    reason: str
    tokens_before: int
    tokens_after: int
    window: int
    steps: int = 0
    turns: int = 0
    message: str = ""


@dataclass(frozen=True)
class HistoryPointEvent(Event):
    """A history point was recorded or extended (``point``: id, kind, request, at, tables,
    undoable, undone, note, reverts)."""

    type: ClassVar[str] = "history_point"
    point: dict[str, Any]


@dataclass(frozen=True)
class Undone(Event):
    """An undo or restore changed the database: ``point`` is the point that records it,
    ``tables``/``rows`` what it changed (as in ``changes``), ``reverted`` the points it undid."""

    type: ClassVar[str] = "undone"
    point: dict[str, Any]
    kind: str  # "undo" | "restore"
    tables: dict[str, dict[str, int]]
    rows: dict[str, Any] = field(default_factory=dict)
    reverted: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ErrorEvent(Event):
    """An error that ends the turn (provider failure, configuration, abort)."""

    type: ClassVar[str] = "error"
    kind: str
    message: str
    hint: str = ""
    step: int = 0


@dataclass(frozen=True)
class TurnEnd(Event):
    """The last event of every call to ``arun``.

    ``reason`` is ``"done"`` (the model returned empty code), ``"exceeded"``,
    ``"paused"`` (waiting for approval), ``"aborted"`` or ``"error"``.
    """

    type: ClassVar[str] = "turn_end"
    reason: str
    steps: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # US dollars spent by this turn's model calls (None: no known price)
    total_cost: float | None = None  # the same, for the whole conversation


__all__ = [name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, Event)] + [
    "Signal",
    "event_from_dict",
]
