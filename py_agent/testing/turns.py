"""Running one agent turn in a test and looking at what happened.

    result = run_turn(app, "Book Grace Hopper", replies=[{"message": "...", "code": "..."}, {"message": "Done.", "code": ""}])
    assert result.end.reason == "done"
    assert result.changes[0].status == "committed"

``replies`` makes a :class:`~py_agent.ScriptedProvider`; ``model`` takes any model id or
provider instead (a fake server's ``openai-compatible:...`` with ``provider_options``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import events as ev
from ..app import App, load_app
from ..loop import Agent
from ..messages import UserMessage
from ..providers.scripted import ScriptedProvider
from ..state import State


@dataclass
class TurnResult:
    """The events of one turn, the state after it and the agent that ran it."""

    events: list[ev.Event]
    state: State
    agent: Agent

    def of(self, kind: str) -> list[Any]:
        """The events whose ``type`` is ``kind`` (``"changes"``, ``"execution_result"``, ...)."""
        return [e for e in self.events if e.type == kind]

    @property
    def end(self) -> ev.TurnEnd:
        ends = self.of("turn_end")
        assert ends, "the turn has no turn_end event"
        return ends[-1]  # type: ignore[no-any-return]

    @property
    def replies(self) -> list[ev.AssistantReply]:
        return self.of("assistant_reply")

    @property
    def outputs(self) -> list[str]:
        """What each step's code printed."""
        return [e.output for e in self.of("execution_result")]

    @property
    def errors(self) -> list[str]:
        """Each step's error, and every error event's message."""
        return [e.error for e in self.of("execution_result") if e.error] + [e.message for e in self.of("error")]

    @property
    def changes(self) -> list[ev.Changes]:
        return self.of("changes")

    @property
    def message(self) -> str:
        """The model's last message (the answer, when the turn is done)."""
        replies = self.replies
        return replies[-1].message if replies else ""


def run_turn(
    app: App | Any,
    request: str,
    *,
    replies: Iterable[Any] | None = None,
    model: Any = None,
    state: State | None = None,
    engine: Any = None,
    **agent_options: Any,
) -> TurnResult:
    """Send ``request`` to an agent over ``app`` and run the turn to its end (CPython).

    Without ``state`` or ``engine`` the turn runs on a fresh in-memory database seeded by
    the app. ``approve`` defaults to True (save every change).
    """
    app = load_app(app)
    if (replies is None) == (model is None):
        raise TypeError("pass replies=[...] (a scripted model) or model=... (an id or a provider), not both or neither")
    provider = ScriptedProvider(list(replies)) if replies is not None else model
    agent_options.setdefault("approve", True)
    agent = app.agent(provider, **agent_options)
    if state is None:
        state = State(engine=engine if engine is not None else app.open_database("sqlite://"))
    state.messages.append(UserMessage(request))
    events = list(agent.run(state))
    return TurnResult(events, state, agent)


def agent_for_server(app: App | Any, server: Any, **agent_options: Any) -> Agent:
    """An agent over ``app`` talking to a fake model server (``py_agent.testing.FakeOpenAI`` & co)."""
    from .servers import FakeAnthropic, FakeGemini

    app = load_app(app)
    # A server without a key accepts any: send one anyway, since the real providers insist on it.
    options: Mapping[str, Any] = {"base_url": server.base_url, "api_key": server.api_key or "no-key"}
    if isinstance(server, FakeAnthropic):
        model = "anthropic:fake-model"
    elif isinstance(server, FakeGemini):
        model = "gemini:fake-model"
    else:
        model = "openai-compatible:fake-model"
    agent_options.setdefault("approve", True)
    return app.agent(model, provider_options={**options, **agent_options.pop("provider_options", {})}, **agent_options)


__all__ = ["TurnResult", "agent_for_server", "run_turn"]
