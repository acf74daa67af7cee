"""The conversation: what the person said, what the model replied, what happened."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .providers.base import ChatMessage, Role


@dataclass
class Message:
    kind: ClassVar[str] = "message"
    role: ClassVar[Role] = "user"

    def model_text(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass
class UserMessage(Message):
    """A request from the person.

    ``mode`` is ``""`` for a request that starts a turn, ``"follow_up"`` for one that was
    queued until the previous turn ended, and ``"steer"`` for a message sent while the
    turn ran, given to the model at its next step (it is told so).
    """

    kind: ClassVar[str] = "user"
    content: str
    mode: str = ""

    def model_text(self) -> str:
        if self.mode == "steer":
            return f"(The person sent this while you were working; take it into account from now on:)\n{self.content}"
        return self.content


@dataclass
class AssistantMessage(Message):
    """One parsed model reply: ``message``, ``code`` and extension fields."""

    kind: ClassVar[str] = "assistant"
    role: ClassVar[Role] = "assistant"
    message: str
    code: str
    extensions: dict[str, Any] = field(default_factory=dict)
    raw: str = ""

    def model_text(self) -> str:
        # The model sees its own reply exactly as it sent it, so it keeps the format.
        return self.raw or _reply_json(self)


@dataclass
class ResultMessage(Message):
    """What the loop tells the model after a step: output, errors, refusals, declines."""

    kind: ClassVar[str] = "result"
    content: str

    def model_text(self) -> str:
        return self.content


def _reply_json(message: AssistantMessage) -> str:
    return json.dumps({**message.extensions, "message": message.message, "code": message.code}, ensure_ascii=False)


_KINDS: dict[str, type[Message]] = {cls.kind: cls for cls in (UserMessage, AssistantMessage, ResultMessage)}


def message_from_dict(data: dict[str, Any]) -> Message:
    data = dict(data)
    cls = _KINDS[data.pop("kind")]
    return cls(**data)


def to_chat(messages: list[Message]) -> tuple[ChatMessage, ...]:
    """Messages as alternating user/assistant turns, starting with a user turn.

    Results go to the model as user turns; consecutive turns of one role are
    merged (Anthropic and Gemini reject two user turns in a row).
    """
    merged: list[ChatMessage] = []
    for message in messages:
        text = message.model_text()
        if merged and merged[-1].role == message.role:
            merged[-1] = ChatMessage(message.role, merged[-1].content + "\n\n" + text)
        else:
            merged.append(ChatMessage(message.role, text))
    if merged and merged[0].role != "user":
        merged.insert(0, ChatMessage("user", "(conversation resumed)"))
    return tuple(merged)
