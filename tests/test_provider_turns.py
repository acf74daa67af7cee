"""A whole agent turn through each wire format, against the fake servers over real HTTP:
the model's code streams in, is checked and run against the demo database, its output is
fed back in the next request, and the model's final reply ends the turn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_servers import FakeAnthropic, FakeGemini, FakeModelServer, FakeOpenAI, Fault
from sqlalchemy import select
from sqlalchemy.orm import Session

from py_agent import State, UserMessage, run
from py_agent.demo import Author, Base
from py_agent.providers import resolve
from py_agent.providers.base import Usage
from py_agent.providers.retry import NO_RETRIES

pytestmark = pytest.mark.cpython_only

ADD_AUTHOR = 'lem = Author(name="Stanisław Lem", country="PL")\nsession.add(lem)\nsession.flush()\nprint("added", lem.name)'
FIRST = {"message": "I will add Stanisław Lem — ✓.", "code": ADD_AUTHOR}
LAST = {"message": "Done: Stanisław Lem is in the catalogue.", "code": ""}
MODEL_IDS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-5", "gemini": "gemini:gemini-2.5-flash"}
SERVERS = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[FakeModelServer]:
    with SERVERS[request.param]() as fake:
        yield fake


def model_for(server: FakeModelServer, **options: Any) -> Any:
    return resolve(MODEL_IDS[server.name], api_key="test-key", base_url=server.base_url, **options)


def authors_named(engine: Any, name: str) -> int:
    with Session(engine) as session:
        return len(session.scalars(select(Author).where(Author.name == name)).all())


def last_user_text(server: FakeModelServer) -> str:
    """The newest user turn of the last request, whatever the wire format."""
    body = server.requests[-1].body
    if server.name == "gemini":
        return body["contents"][-1]["parts"][0]["text"]
    return body["messages"][-1]["content"]


def test_a_full_turn_through_each_format(server: FakeModelServer, engine: Any) -> None:
    server.reply(FIRST, LAST)
    state = State(engine=engine)
    state.messages.append(UserMessage("Add Stanisław Lem, from Poland"))

    events = list(run(state=state, base=Base, model=model_for(server)))
    kinds = [e.type for e in events]

    # The message and the code streamed in as deltas before each whole reply.
    assert "message_delta" in kinds and "code_delta" in kinds
    assert kinds.index("code_delta") < kinds.index("assistant_reply")
    code = "".join(e.text for e in events if e.type == "code_delta" and e.step == 1)
    assert code == ADD_AUTHOR

    # The code ran, its output went back to the model in the second request.
    results = [e for e in events if e.type == "execution_result"]
    assert results and results[0].error is None and "added Stanisław Lem" in results[0].output
    assert len(server.requests) == 2
    assert "added Stanisław Lem" in last_user_text(server)

    # The turn ended on the model's final reply; the change was committed; usage was summed.
    replies = [e for e in events if e.type == "assistant_reply"]
    assert [r.message for r in replies] == [FIRST["message"], LAST["message"]]
    assert replies[0].model == MODEL_IDS[server.name]
    assert events[-1].type == "turn_end" and events[-1].reason == "done"
    assert authors_named(engine, "Stanisław Lem") == 1
    total = Usage(sum(r.input_tokens for r in replies), sum(r.output_tokens for r in replies))
    assert state.usage == total and total.input_tokens > 0 and total.output_tokens > 0


def test_a_failed_completion_ends_the_turn_and_the_next_turn_works(server: FakeModelServer, engine: Any) -> None:
    server.fault(Fault.http(500, "The server had an error"))
    state = State(engine=engine)
    state.messages.append(UserMessage("Add Stanisław Lem"))
    model = model_for(server, retry=NO_RETRIES)

    events = list(run(state=state, base=Base, model=model))
    errors = [e for e in events if e.type == "error"]
    assert errors and errors[0].kind == "server_error" and errors[0].hint
    assert events[-1].reason == "error"
    assert authors_named(engine, "Stanisław Lem") == 0

    server.reply(FIRST, LAST)
    state.messages.append(UserMessage("Please try again"))
    events = list(run(state=state, base=Base, model=model))
    assert events[-1].reason == "done"
    assert authors_named(engine, "Stanisław Lem") == 1


def test_a_turn_with_a_plain_text_reply(engine: Any) -> None:
    with FakeOpenAI(api_key=None) as server:
        server.reply(
            "I will add her.\n```python\n" + ADD_AUTHOR + "\n```",
            "She is in the catalogue now.",
        )
        state = State(engine=engine)
        state.messages.append(UserMessage("Add Stanisław Lem"))
        model = resolve("ollama:llama3.2", base_url=server.base_url, structured="text")
        events = list(run(state=state, base=Base, model=model))
        assert events[-1].reason == "done"
        assert [e.output for e in events if e.type == "execution_result"][0].startswith("added")
        assert authors_named(engine, "Stanisław Lem") == 1
        assert "response_format" not in server.requests[0].body
