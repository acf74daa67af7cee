"""Recorded demos: a conversation saved as JSON, replayed as a model whose code really runs.

A demo is recorded from a real conversation (``py-agent chat --record FILE``, or
:class:`DemoRecorder` on a :class:`~py_agent.State`) and replayed by
:class:`RecordedModel`: the recorded requests become the suggestions a person can
pick, each step's reply streams like a model's, and its code is checked and run
against the database like any model's code. Nothing is hand-written and nothing
matches keywords: a request that was not recorded gets a reply that lists the
ones that were.

The file (``"format": "py-agent-demo"``, version 1)::

    {
      "format": "py-agent-demo", "version": 1,
      "app": "clinic", "model": "openai:gpt-4.1-mini", "recorded_at": "2026-11-20T10:00:00+00:00",
      "turns": [
        {"request": "Which patients have no visit booked?",
         "steps": [
           {"reply": {"message": "I'll look.", "code": "print(...)"}, "failed": false},
           {"reply": {"message": "Two patients: ...", "code": ""}}
         ]}
      ]
    }

``reply`` is the model's whole reply (``message``, ``code`` and any extension
fields); ``failed`` says the step's code failed when it was recorded, so the step
after it is the model's fix. The next reply is read from the conversation itself,
never from hidden state, so a replay survives a reload or a resumed conversation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .events import Event
from .providers.base import ChatMessage, CompletionRequest
from .providers.scripted import FunctionProvider

FORMAT = "py-agent-demo"
VERSION = 1

Reply = dict[str, Any]


class DemoError(ConfigurationError):
    """A demo file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class DemoStep:
    """One model reply of a recorded turn."""

    reply: Reply
    failed: bool = False

    @property
    def code(self) -> str:
        return str(self.reply.get("code", ""))

    @property
    def message(self) -> str:
        return str(self.reply.get("message", ""))


@dataclass(frozen=True)
class DemoTurn:
    """A request and the model's replies to it, in order."""

    request: str
    steps: tuple[DemoStep, ...]


@dataclass(frozen=True)
class Demo:
    """A recorded conversation."""

    turns: tuple[DemoTurn, ...]
    app: str = ""
    model: str = ""
    recorded_at: str = ""

    @property
    def requests(self) -> list[str]:
        """The recorded requests, in order: what a page shows as suggestion chips."""
        seen: list[str] = []
        for turn in self.turns:
            if turn.request not in seen:
                seen.append(turn.request)
        return seen

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        turns = []
        for turn in self.turns:
            steps = []
            for step in turn.steps:
                item: dict[str, Any] = {"reply": step.reply}
                if step.code.strip():
                    item["failed"] = step.failed
                steps.append(item)
            turns.append({"request": turn.request, "steps": steps})
        return {"format": FORMAT, "version": VERSION, "app": self.app, "model": self.model,
                "recorded_at": self.recorded_at, "turns": turns}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "the demo") -> "Demo":
        """Read a demo; a malformed one raises :class:`DemoError` saying what is wrong where."""

        def bad(problem: str) -> DemoError:
            return DemoError(f"{source} is not a py-agent demo: {problem}",
                             hint="record one with `py-agent chat --app APP --record FILE`")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f'it has no "format": "{FORMAT}"')
        if data.get("version") != VERSION:
            raise bad(f"version {data.get('version')!r} is not supported (this py-agent reads version {VERSION})")
        turns_data = data.get("turns")
        if not isinstance(turns_data, list) or not turns_data:
            raise bad('"turns" must be a non-empty list')
        turns = []
        for t, turn in enumerate(turns_data, 1):
            if not isinstance(turn, dict) or not isinstance(turn.get("request"), str) or not turn["request"].strip():
                raise bad(f'turn {t} needs a non-empty "request" string')
            steps_data = turn.get("steps")
            if not isinstance(steps_data, list) or not steps_data:
                raise bad(f'turn {t} ({turn["request"]!r}) needs a non-empty "steps" list')
            steps = []
            for s, step in enumerate(steps_data, 1):
                reply = step.get("reply") if isinstance(step, dict) else None
                if not isinstance(reply, dict) or not isinstance(reply.get("message"), str) or not isinstance(reply.get("code"), str):
                    raise bad(f'turn {t}, step {s}: "reply" must be an object with "message" and "code" strings')
                steps.append(DemoStep(dict(reply), bool(step.get("failed", False))))
            turns.append(DemoTurn(turn["request"], tuple(steps)))
        return cls(tuple(turns), str(data.get("app", "")), str(data.get("model", "")), str(data.get("recorded_at", "")))

    @classmethod
    def load(cls, path: str | Path) -> "Demo":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DemoError(f"cannot read the demo {path}: {exc.strerror or exc}", hint="check the path") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DemoError(f"{path} is not valid JSON: {exc}", hint="record the demo again with `py-agent chat --record`") from None
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | Path) -> None:
        """Write the demo as indented JSON (readable in a diff), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.replace(path)


# -- replaying ---------------------------------------------------------------------------------

# How the loop's feedback after a step begins (py_agent.loop, the validator, max_loops):
# a paragraph that begins otherwise is the person's.
_FEEDBACK = ("Output:", "Error:", "Changes saved", "The step failed", "The person declined",
             "Your code was refused", "(Stopped", "(The conversation was resumed")


def normalize(text: str) -> str:
    """A request as compared with the recorded ones: lower case, single spaces, no end punctuation."""
    return re.sub(r"\s+", " ", text).strip().lower().rstrip(".!?")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _as_reply(text: str) -> Reply | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("message"), str) and isinstance(data.get("code"), str):
        return data
    return None


def _not_saved(feedback: str) -> bool:
    """The person declined the step, or a reload discarded it while it waited (py_agent.loop, browser)."""
    return "The person declined" in feedback or "were NOT saved" in feedback


def _failed(feedback: str) -> bool:
    return "\nError:\n" in feedback or feedback.startswith(("Error:", "Your code was refused"))


class RecordedModel(FunctionProvider):
    """A provider that replays a :class:`Demo`, streaming each reply in small pieces.

    ``delay`` (seconds between pieces) makes the streaming visible; tests pass 0.
    """

    def __init__(self, demo: Demo, *, chunk_size: int = 12, delay: float = 0.0, similarity: float = 0.85) -> None:
        self.demo = demo
        self.similarity = similarity
        self._requests = {normalize(turn.request) for turn in demo.turns}
        super().__init__(self._reply, model=f"demo:{demo.app or 'recorded'}", chunk_size=chunk_size, delay=delay)

    # -- which turn --------------------------------------------------------------------------
    def _match(self, text: str) -> str | None:
        """The normalised recorded request that ``text`` asks for, if any."""
        wanted = normalize(text)
        if wanted in self._requests:
            return wanted
        import difflib  # only for a request typed differently; keeps it out of the browser's boot

        best = difflib.get_close_matches(wanted, list(self._requests), n=1, cutoff=self.similarity)
        return best[0] if best else None

    def _turn(self, request: str, occurrence: int) -> DemoTurn:
        """The ``occurrence``-th recorded turn for ``request`` (the last one when asked more often)."""
        turns = [t for t in self.demo.turns if normalize(t.request) == request]
        return turns[min(occurrence, len(turns) - 1)]

    def _current_request(self, messages: Sequence[ChatMessage]) -> tuple[str, int] | None:
        """The latest recorded request the person made, and how often they made it before."""
        asked: list[str] = []
        for message in messages:
            if message.role == "user":
                for paragraph in _paragraphs(message.content):
                    if not paragraph.startswith(_FEEDBACK):
                        found = self._match(paragraph)
                        if found is not None:
                            asked.append(found)
        if not asked:
            return None
        return asked[-1], asked[:-1].count(asked[-1])

    # -- the reply ---------------------------------------------------------------------------
    def reply_to(self, messages: Sequence[ChatMessage]) -> Reply:
        """The next reply to a conversation (the messages a model would be sent)."""
        last_user = messages[-1].content if messages and messages[-1].role == "user" else ""
        previous = _as_reply(messages[-2].content) if len(messages) >= 2 and messages[-2].role == "assistant" else None
        paragraphs = _paragraphs(last_user)
        new_request = paragraphs[-1] if paragraphs and not paragraphs[-1].startswith(_FEEDBACK) else None
        if previous is not None and previous["code"].strip() and (new_request is None or self._match(new_request) is None):
            return self._continue(messages, previous, last_user)
        if new_request is None:
            return self._off_script()
        if self._match(new_request) is None:
            return self._off_script(new_request)
        current = self._current_request(messages)  # ends with new_request, counted
        assert current is not None
        return dict(self._turn(*current).steps[0].reply)

    def _continue(self, messages: Sequence[ChatMessage], previous: Reply, feedback: str) -> Reply:
        current = self._current_request(messages[:-1])
        turns = ([self._turn(*current)] if current else []) + list(self.demo.turns)
        for turn in turns:
            for index, step in enumerate(turn.steps):
                if step.message == previous["message"] and step.code == previous["code"]:
                    if _failed(feedback) and not step.failed:
                        return self._diverged()
                    if _not_saved(feedback):
                        return self._declined()
                    if index + 1 < len(turn.steps):
                        return dict(turn.steps[index + 1].reply)
                    return {"message": "That is where the recording ends.", "code": ""}
        return self._off_script()

    def _off_script(self, request: str | None = None) -> Reply:
        listing = "\n".join(f"- {r}" for r in self.demo.requests)
        opening = "This is a recorded demo" if request is None else f"This is a recorded demo, and {request!r} is not one of its requests"
        return {
            "message": f"{opening}. It can replay these:\n{listing}\nTo ask anything else, use a real model (set an API key).",
            "code": "",
        }

    def _diverged(self) -> Reply:
        return {
            "message": "In the recording this step worked, but here it failed: the data probably differs from "
                       "when the demo was recorded. Start again from fresh data, or use a real model (set an API key).",
            "code": "",
        }

    def _declined(self) -> Reply:
        return {
            "message": "Understood: I did not save those changes, so the data is as it was. This recorded demo can only "
                       "go on as it was recorded: ask again to replay it, or use a real model (set an API key) to do "
                       "something else.",
            "code": "",
        }

    def _reply(self, request: CompletionRequest) -> Reply:
        return self.reply_to(request.messages)


# -- recording ---------------------------------------------------------------------------------

@dataclass
class DemoRecorder:
    """Builds a :class:`Demo` from a conversation's events (``state.subscribe(recorder.observe)``).

    Malformed replies are left out (replaying them shows nothing useful); steps the
    validator refused or whose code raised are kept with ``failed`` set, so the replay
    shows the model's fix as it happened.
    """

    app: str = ""
    model: str = ""
    _turns: list[tuple[str, list[DemoStep]]] = field(default_factory=list)

    def observe(self, event: Event | Mapping[str, Any]) -> None:
        data = event.to_dict() if isinstance(event, Event) else dict(event)
        kind = data.get("type")
        if kind == "user_message":
            self._turns.append((str(data.get("content", "")), []))
        elif not self._turns:
            return
        elif kind == "assistant_reply":
            reply = {**(data.get("extensions") or {}), "message": data.get("message", ""), "code": data.get("code", "")}
            self._turns[-1][1].append(DemoStep(reply))
            if data.get("model") and not self.model:
                self.model = str(data["model"])
        elif kind in ("execution_result", "validation_failed") and self._turns[-1][1]:
            if kind == "validation_failed" or data.get("error"):
                steps = self._turns[-1][1]
                steps[-1] = DemoStep(steps[-1].reply, failed=True)

    @property
    def turns(self) -> int:
        return sum(1 for _, steps in self._turns if steps)

    def demo(self) -> Demo:
        turns = tuple(DemoTurn(request, tuple(steps)) for request, steps in self._turns if steps)
        return Demo(turns, self.app, self.model, datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save(self, path: str | Path) -> bool:
        """Write what was recorded so far; False (nothing written) while no turn has a reply."""
        if not self.turns:
            return False
        self.demo().save(path)
        return True


__all__ = ["Demo", "DemoError", "DemoRecorder", "DemoStep", "DemoTurn", "RecordedModel", "normalize"]
