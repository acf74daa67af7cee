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


@dataclass(frozen=True)
class ApprovalRequired(Event):
    """The step ran in an open transaction and waits for ``resume(approved)``."""

    type: ClassVar[str] = "approval_required"
    step: int
    code: str
    tables: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ApprovalDecision(Event):
    type: ClassVar[str] = "approval_decision"
    step: int
    approved: bool


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


__all__ = [name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, Event)] + [
    "Signal",
    "event_from_dict",
]
