"""The demo model: recorded replies, chosen by what the person asked, run for real.

Used by the browser app when no API key is set, and by docs and tests. The
replies live in ``recorded.json`` beside this file (prompts as data): each
recorded conversation has patterns that pick it from the person's message and
the steps the model sends, in order. Their code is ordinary model code: it is
validated and executed against the demo database like a real model's.

Which step comes next is read from the conversation itself, never from hidden
state: if the model's last reply was step *k* of a recording and had code, the
reply is step *k + 1* (or an apology when that code failed); otherwise a new
request has arrived and a recording is chosen for it.
"""

from __future__ import annotations

import json
import pkgutil
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from ..providers.base import ChatMessage, CompletionRequest
from ..providers.scripted import FunctionProvider

Reply = dict[str, str]


@cache
def load_recording() -> dict[str, Any]:
    """The recorded conversations (``recorded.json``), parsed once."""
    data = pkgutil.get_data(__package__, "recorded.json")  # through the loader: no importlib.resources at boot
    assert data is not None, "py_agent/demo/recorded.json is missing from the package"
    return json.loads(data)


def _as_reply(text: str) -> Reply | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("message"), str) and isinstance(data.get("code"), str):
        return {"message": data["message"], "code": data["code"]}
    return None


def _locate(recording: dict[str, Any], reply: Reply) -> tuple[dict[str, Any], int] | None:
    """The recorded conversation and step index that ``reply`` is, if it is one."""
    for conversation in recording["conversations"]:
        for index, step in enumerate(conversation["steps"]):
            if step["message"] == reply["message"] and step["code"] == reply["code"]:
                return conversation, index
    return None


# How the loop's feedback after a step begins (py_agent.loop._feedback, the validator,
# max_loops). A paragraph that begins otherwise is the person's.
_FEEDBACK = ("Output:", "Error:", "Changes saved", "The step failed", "The person declined", "Your code was refused", "(Stopped")


def _failed(feedback: str) -> bool:
    return "\nError:\n" in feedback or feedback.startswith("Your code was refused")


# What the loop says when the person declined a step, or a reload discarded one.
_NOT_SAVED = ("The person declined these changes", "were NOT saved")
DECLINED_REPLY: Reply = {
    "message": "Understood: I did not save those changes, so the data is as it was. Tell me what you would like instead.",
    "code": "",
}


def _not_saved(feedback: str) -> bool:
    return any(marker in feedback for marker in _NOT_SAVED)


def _new_request(content: str) -> str | None:
    """The person's words when they follow the loop's feedback in one merged user turn.

    A turn that was stopped mid-way leaves feedback without a final reply; the next
    request is then merged into the same user message (see ``messages.to_chat``).
    """
    last = content.rsplit("\n\n", 1)[-1].strip()
    return None if not last or last.startswith(_FEEDBACK) else last


def choose_reply(messages: Sequence[ChatMessage], recording: dict[str, Any] | None = None) -> Reply:
    """The demo model's next reply to ``messages``."""
    recording = recording or load_recording()
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    last_assistant = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "assistant"), None)

    if last_assistant is not None and last_assistant < len(messages) - 1:
        previous = _as_reply(messages[last_assistant].content)
        found = _locate(recording, previous) if previous else None
        new_request = _new_request(last_user)
        if new_request is not None:
            last_user = new_request
        elif _not_saved(last_user):
            # A declined step is not a success: never carry on to the recording's "Done".
            return dict(DECLINED_REPLY)
        elif found and previous and previous["code"].strip():
            conversation, index = found
            if _failed(last_user):
                return dict(recording["failed"])
            if index + 1 < len(conversation["steps"]):
                return dict(conversation["steps"][index + 1])

    request = last_user.lower()
    for conversation in recording["conversations"]:
        if any(re.search(pattern, request) for pattern in conversation.get("match", [])):
            return dict(conversation["steps"][0])
    fallback = next(c for c in recording["conversations"] if c["name"] == recording["fallback"])
    return dict(fallback["steps"][0])


class DemoModel(FunctionProvider):
    """A provider that replays ``recorded.json``; streams like a real model.

    ``delay`` between chunks makes the streaming visible in the page; tests
    pass ``delay=0``.
    """

    def __init__(self, recording: dict[str, Any] | None = None, *, chunk_size: int = 12, delay: float = 0.01) -> None:
        self.recording = recording or load_recording()
        super().__init__(self._reply, model=self.recording.get("model", "demo:recorded"), chunk_size=chunk_size, delay=delay)

    def _reply(self, request: CompletionRequest) -> Reply:
        return choose_reply(request.messages, self.recording)


__all__ = ["DECLINED_REPLY", "DemoModel", "choose_reply", "load_recording"]
