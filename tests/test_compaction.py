"""Context that fits: older steps compacted as the conversation nears the model's context window,
before a request (the estimate) or after a server said the request was too long. Pure Python
(also in Pyodide), except the loopback fake-server test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from py_agent import Agent, FunctionProvider, State, UserMessage
from py_agent.compaction import DEFAULT_CONTEXT_WINDOW, NOTE_START, SHORTENED, compact, request_chars
from py_agent.demo import Base
from py_agent.messages import AssistantMessage, ResultMessage
from py_agent.providers.base import CompletionRequest, StreamItem
from py_agent.providers.errors import ContextTooLongError
from py_agent.providers.models import ModelFacts, set_model_facts

from helpers import of_type

DONE = {"message": "done", "code": ""}


class SmallWindow(FunctionProvider):
    """A model server with a small context window: a request over it is refused, as servers do."""

    def __init__(self, function, window: int, **options) -> None:
        super().__init__(function, **options)
        self.window = window
        self.sizes: list[int] = []

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        tokens = (len(request.system) + sum(len(m.content) for m in request.messages)) // 4
        self.sizes.append(tokens)
        if tokens > self.window:
            raise ContextTooLongError(
                f"This model's maximum context length is {self.window} tokens; the request has {tokens}",
                hint="start a new conversation", status=400,
            )
        async for item in super().stream(request):
            yield item


def chatty(request: CompletionRequest) -> dict[str, str]:
    """Each request: one step that prints a long report, then done."""
    last = request.messages[-1].content
    if last.startswith("Output:"):
        return {"message": f"Reported ({len(request.messages)} messages seen).", "code": ""}
    return {"message": "Looking.", "code": "print('row ' * 400)"}


def talk(agent: Agent, state: State, turns: int) -> list:
    events = []
    for n in range(turns):
        state.messages.append(UserMessage(f"request number {n}: report on the stock"))
        events += list(agent.run(state))
    return events


def test_a_conversation_that_crosses_the_threshold_is_compacted_and_keeps_working(engine):
    model = SmallWindow(chatty, window=6000, model="test:small")
    agent = Agent(base=Base, model=model, context_window=6000)
    state = State(engine=engine)
    events = talk(agent, state, 12)

    assert [e.reason for e in of_type(events, "turn_end")] == ["done"] * 12  # every turn worked
    compacted = of_type(events, "compacted")
    assert compacted and all(e.reason == "threshold" and e.window == 6000 for e in compacted)
    assert all(e.tokens_after < e.tokens_before for e in compacted)
    assert "neared the model's context window (6,000 tokens)" in compacted[0].message
    assert max(model.sizes) <= 6000 and state.compactions == len(compacted)
    # Growth without compaction would have passed the window by far.
    assert request_chars(agent.system_prompt, state.messages) < 6000 * 4
    # What the model still sees: the newest request whole, older outputs shortened,
    # the oldest requests listed in a note.
    sent = model.requests[-1].messages
    assert sent[-1].content.startswith("Output:") and "request number 11" in "".join(m.content for m in sent)
    assert NOTE_START in sent[0].content and "- request number 0: report on the stock" in sent[0].content
    assert sent[-1].content.count("row") == 400  # the newest output whole
    dropped = [i for i in range(1, len(model.sizes)) if model.sizes[i] < model.sizes[i - 1] - 500]
    assert len(dropped) == len(compacted)  # each compaction made the next request much smaller
    # The compaction event comes before the request it made fit.
    kinds = [e.type for e in events]
    first = kinds.index("compacted")
    assert kinds[first - 1] == "signal" and kinds[first + 1] in ("message_delta", "code_delta")


def test_a_server_that_says_too_long_gets_a_compacted_request_once_more(engine):
    set_model_facts("test:unknown-size", ModelFacts())  # py-agent assumes the default window
    model = SmallWindow(chatty, window=3500, model="test:unknown-size")
    agent = Agent(base=Base, model=model)
    assert agent.context_window == DEFAULT_CONTEXT_WINDOW
    state = State(engine=engine)
    events = talk(agent, state, 8)
    assert [e.reason for e in of_type(events, "turn_end")] == ["done"] * 8
    compacted = of_type(events, "compacted")
    assert compacted[0].reason == "overflow" and compacted[0].window < 3500
    refused = [size for size in model.sizes if size > 3500]
    assert len(refused) == 1  # then the learnt window keeps requests under it
    assert state._context_limit is not None and state._context_limit < 3500


def test_a_request_that_cannot_be_made_to_fit_ends_the_turn_with_the_servers_words(engine):
    model = SmallWindow(lambda r: DONE, window=100, model="test:tiny")
    agent = Agent(base=Base, model=model)
    state = State(engine=engine)
    state.messages.append(UserMessage("hello"))
    events = list(agent.run(state))
    error = of_type(events, "error")[0]
    assert error.kind == "context_too_long" and "maximum context length is 100 tokens" in error.message
    assert events[-1].reason == "error"


def test_compaction_shortens_old_steps_first_then_leaves_out_old_turns():
    messages = []
    for n in range(6):
        messages += [
            UserMessage(f"request {n}"),
            AssistantMessage(f"message {n}", "\n".join(f"line_{i} = {i}" for i in range(20))),
            ResultMessage("Output:\n" + "\n".join(f"output line {i}" for i in range(200))),
            AssistantMessage(f"done {n}", ""),
        ]
    full = request_chars("", messages)

    # A little over: only old steps are shortened; every request stays, the newest steps whole.
    light = compact(messages, system_chars=0, budget=int(full * 0.8 / 3.5), tokens_per_char=1 / 3.5)
    assert light is not None and light.turns == 0 and light.steps >= 1
    assert [m.content for m in light.messages if isinstance(m, UserMessage)] == [f"request {n}" for n in range(6)]
    assert light.messages[1].code.endswith(f"# {SHORTENED} (14 more lines)") and SHORTENED in light.messages[2].content
    assert light.messages[-4:] == messages[-4:]
    assert light.after < light.before

    # Far over: the oldest turns go, listed in one note; the current turn stays.
    heavy = compact(messages, system_chars=0, budget=500, tokens_per_char=1 / 3.5)
    assert heavy is not None and heavy.turns >= 3
    note = heavy.messages[0]
    assert isinstance(note, ResultMessage) and note.content.startswith(NOTE_START) and "- request 0" in note.content
    assert [m.content for m in heavy.messages if isinstance(m, UserMessage)][-1] == "request 5"
    # Compacting again keeps one note and adds to it.
    again = compact(heavy.messages + [UserMessage("request 6")], system_chars=0, budget=150, tokens_per_char=1 / 3.5)
    assert again is not None and sum(1 for m in again.messages if isinstance(m, ResultMessage) and m.content.startswith(NOTE_START)) == 1
    assert "- request 0" in again.messages[0].content and "- request 5" in again.messages[0].content

    # Nothing to shorten: None.
    assert compact([UserMessage("hi")], system_chars=0, budget=1) is None


@pytest.mark.cpython_only
@pytest.mark.parametrize("fmt", ["openai", "anthropic", "gemini"])
def test_each_wire_formats_context_error_leads_to_compaction(fmt, engine):
    from fake_servers import FakeAnthropic, FakeGemini, FakeOpenAI, Fault, RecordedSleep

    from py_agent.providers import resolve
    from py_agent.providers.retry import RetryPolicy

    servers = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}
    ids = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-5", "gemini": "gemini:gemini-2.5-flash"}
    look = {"message": "Looking.", "code": "print('row ' * 400)"}
    with servers[fmt]() as server:
        model = resolve(ids[fmt], api_key="test-key", base_url=server.base_url, retry=RetryPolicy(max_attempts=1), sleep=RecordedSleep())
        agent = Agent(base=Base, model=model)
        state = State(engine=engine)
        server.reply(look, DONE)
        state.messages.append(UserMessage("first report"))
        assert list(agent.run(state))[-1].reason == "done"

        # The server's window is full now: it refuses the next request, in its own words.
        server.fault(Fault.http(400, "prompt is too long: the maximum context length is 1000 tokens"))
        server.reply(DONE)
        state.messages.append(UserMessage("second report"))
        events = list(agent.run(state))
        assert events[-1].reason == "done", of_type(events, "error")
        compacted = of_type(events, "compacted")
        assert len(compacted) == 1 and compacted[0].reason == "overflow" and compacted[0].turns == 1
        assert "1 earlier request was left out" in compacted[0].message
        refused, retried = server.requests[-2], server.requests[-1]
        size = lambda received: len(json.dumps(received.body))
        assert size(retried) < size(refused)  # the same request, made to fit
        assert "second report" in json.dumps(retried.body) and "row row" not in json.dumps(retried.body)
        assert "- first report" in json.dumps(retried.body)  # listed in the note
