"""The agent loop end to end with scripted models: turns, feedback, limits, approvals, abort."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from py_agent import Agent, FunctionProvider, ScriptedProvider, State, UserMessage, event_from_dict, tool
from py_agent.demo import Author, Base, Book
from py_agent.providers.base import Completion, TextDelta, Usage

from helpers import of_type

ADD_TOLKIEN = """
tolkien = Author(name="J. R. R. Tolkien", country="GB")
session.add(tolkien)
for title in ("The Hobbit", "The Lord of the Rings"):
    session.add(Book(title=title, author=tolkien, genre=Genre.FANTASY, price=Decimal("12.50")))
session.flush()
print(tolkien.id, [b.title for b in tolkien.books])
"""


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_turn_writes_runs_feeds_back_and_commits(turn, engine):
    before = count(engine, Book)
    events, state, _ = turn(
        [
            {"message": "Adding them.", "code": "from decimal import Decimal\n" + ADD_TOLKIEN},
            {"message": "Done: Tolkien and two books.", "code": ""},
        ],
        request="Add Tolkien and two of his books",
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "system" and kinds[1] == "user_message"
    assert kinds[-1] == "turn_end" and events[-1].reason == "done" and events[-1].steps == 2
    result = of_type(events, "execution_result")[0]
    assert result.error is None and "The Hobbit" in result.output
    changes = of_type(events, "changes")[0]
    assert changes.status == "committed"
    assert changes.tables == {"authors": {"inserted": 1, "updated": 0, "deleted": 0}, "books": {"inserted": 2, "updated": 0, "deleted": 0}}
    # committed: a separate session sees it
    assert count(engine, Book) == before + 2
    # the model was shown the output and the change summary
    feedback = state.messages[2].model_text()
    assert "The Hobbit" in feedback and "authors: 1 inserted" in feedback


def test_the_model_sees_results_and_conversation_continues_with_same_namespace(engine):
    seen = []

    def model(request):
        seen.append(request)
        last = request.messages[-1].content
        if "first" in last:
            return {"message": "", "code": "n = session.scalar(select(func.count()).select_from(Author))\nprint('authors', n)"}
        if "second" in last:
            return {"message": "", "code": "print('still have', n)"}
        return {"message": "ok", "code": ""}

    agent = Agent(base=Base, model=FunctionProvider(model), allowed_imports=["sqlalchemy"])
    state = State(engine=engine)
    state.messages.append(UserMessage("first"))
    list(agent.run(state))
    state.messages.append(UserMessage("second"))
    events = list(agent.run(state))
    out = of_type(events, "execution_result")[0]
    n = count(engine, Author)
    assert out.error is None, out.error
    assert out.output.strip() == f"still have {n}"
    # roles alternate and the result of step 1 was in the request of step 2
    roles = [m.role for m in seen[1].messages]
    assert roles == ["user", "assistant", "user"]
    assert f"authors {n}" in seen[1].messages[-1].content


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("this is not json", "not valid JSON"),
        ('{"message": "hi"}', "field 'code': field required"),
        ('{"message": 1, "code": ""}', "field 'message'"),
        ("[1, 2]", "JSON list, not an object"),
        ("", "reply was empty"),
    ],
)
def test_malformed_replies_are_fed_back_and_count_as_steps(turn, bad, problem):
    events, state, _ = turn([bad, {"message": "sorry", "code": ""}])
    malformed = of_type(events, "malformed_reply")
    assert len(malformed) == 1 and problem in malformed[0].problem
    assert events[-1].reason == "done" and events[-1].steps == 2
    # the model sees its own bad reply and what was wrong
    assert state.messages[1].raw == bad and problem in state.messages[2].content


def test_max_loops_ends_with_exceeded(turn):
    events, _, _ = turn([{"message": "", "code": "print(1)"}] * 10, max_loops=3)
    assert [e.signal.value for e in of_type(events, "signal")].count("exceeded") == 1
    assert events[-1].reason == "exceeded" and events[-1].steps == 3
    assert len(of_type(events, "execution_result")) == 3


def test_refused_code_never_runs_and_the_model_is_told_why(turn, engine):
    before = count(engine, Author)
    events, state, _ = turn(
        [{"message": "", "code": "import os\nsession.add(Author(name='x'))"}, {"message": "ok", "code": ""}]
    )
    refused = of_type(events, "validation_failed")[0]
    assert refused.violations[0]["line"] == 1 and "os" in refused.message
    assert not of_type(events, "execution_result")
    assert "refused" in state.messages[2].content
    assert count(engine, Author) == before


def test_an_error_rolls_the_step_back_and_keeps_what_was_printed(turn, engine):
    before = count(engine, Author)
    code = "session.add(Author(name='Someone'))\nsession.flush()\nprint('added one')\n1/0"
    events, state, _ = turn([{"message": "", "code": code}, {"message": "oops", "code": ""}])
    result = of_type(events, "execution_result")[0]
    assert "added one" in result.output
    assert "ZeroDivisionError" in result.error and "line 4: 1/0" in result.error
    assert "/" not in result.error.split("ZeroDivisionError")[0].replace("1/0", "")  # no host paths
    assert of_type(events, "changes")[0].status == "rolled_back"
    assert count(engine, Author) == before
    assert "rolled back" in state.messages[2].content


def test_constraint_errors_at_flush_roll_back(turn, engine):
    existing = "Ursula K. Le Guin"
    with Session(engine) as s:
        existing = s.scalars(select(Author.name)).first()
    events, _, _ = turn([{"message": "", "code": f"session.add(Author(name={existing!r}))"}, {"message": "", "code": ""}])
    assert "IntegrityError" in of_type(events, "execution_result")[0].error


def test_streaming_deltas_reassemble_message_and_code(turn):
    reply = {"message": "Counting the \"books\" — ünïcode ok", "code": "print(len('é' * 3))"}
    provider = ScriptedProvider([reply], chunk_size=3)
    events, _, _ = turn([], provider=provider)
    message = "".join(e.text for e in of_type(events, "message_delta") if e.step == 1)
    code = "".join(e.text for e in of_type(events, "code_delta") if e.step == 1)
    assert message == reply["message"] and code == reply["code"]
    assert len(of_type(events, "message_delta")) > 3  # it really streamed


def test_output_extensions_come_first_and_the_reply_is_an_instance(turn):
    class Confidence(BaseModel):
        confidence: float
        sources: list[str] = []

    events, state, agent = turn(
        [{"confidence": 0.9, "sources": ["db"], "message": "sure", "code": ""}], output_extensions=Confidence
    )
    assert list(agent.reply_model.model_fields)[:2] == ["confidence", "sources"]
    assert isinstance(state.last_reply, Confidence) and state.last_reply.confidence == 0.9
    assert of_type(events, "assistant_reply")[0].extensions == {"confidence": 0.9, "sources": ["db"]}
    # the schema sent to the model lists the extension fields too
    assert "confidence" in agent._schema["properties"]


def test_async_tools_with_top_level_await_and_disclose(turn):
    @tool
    async def lookup_isbn(title: str) -> str:
        """Find the ISBN of a title.

        Returns a made-up ISBN in this test."""
        await asyncio.sleep(0)
        return f"isbn-{len(title)}"

    code = "disclose('lookup_isbn')\nprint(await lookup_isbn('Dune'))\ndisclose('nope')"
    events, _, agent = turn([{"message": "", "code": code}, {"message": "", "code": ""}], tools=[lookup_isbn])
    out = of_type(events, "execution_result")[0]
    assert out.error is None, out.error
    assert "async def lookup_isbn(title: str) -> str" in out.output and "Returns a made-up ISBN" in out.output
    assert "isbn-4" in out.output
    assert "no tool named 'nope'" in out.output and "lookup_isbn" in out.output
    # the prompt lists the tool with its first docstring line only
    assert "- lookup_isbn: Find the ISBN of a title." in agent.system_prompt
    assert "made-up" not in agent.system_prompt


def test_usage_is_recorded_per_completion_and_summed(turn):
    events, state, _ = turn([{"message": "", "code": "print(1)"}, {"message": "", "code": ""}])
    replies = of_type(events, "assistant_reply")
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in replies)
    assert state.usage.input_tokens == sum(r.input_tokens for r in replies)
    assert events[-1].output_tokens == state.usage.output_tokens


def test_every_event_round_trips_through_json(turn):
    events, _, _ = turn(
        [{"message": "x", "code": "print('hi')\nsession.add(Author(name='RT'))"}, "bad", {"message": "", "code": "import os"}, {"message": "", "code": ""}]
    )
    assert {"system", "signal", "assistant_reply", "malformed_reply", "validation_failed", "changes"} <= {e.type for e in events}
    for event in events:
        data = json.loads(json.dumps(event.to_dict()))
        assert event_from_dict(data) == event


class _Boom:
    model = "boom:test"

    async def stream(self, request):
        from py_agent.errors import PyAgentError

        raise PyAgentError("the endpoint said no", hint="check the key")
        yield  # pragma: no cover


def test_a_provider_error_ends_the_turn_with_a_clear_event_and_state_stays_usable(engine):
    state = State(engine=engine)
    state.messages.append(UserMessage("hi"))
    events = list(Agent(base=Base, model=_Boom()).run(state))
    error = of_type(events, "error")[0]
    assert error.message == "the endpoint said no" and error.hint == "check the key"
    assert events[-1].reason == "error"
    # same state, working model: the conversation goes on
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "hello", "code": ""}])).run(state))
    assert events[-1].reason == "done"


def test_abort_during_streaming_closes_the_stream(engine):
    closed = []

    class Slow:
        model = "slow:test"

        async def stream(self, request):
            try:
                for piece in ['{"message": "', "a" * 10, "b" * 10, '", "code": ""}']:
                    yield TextDelta(piece)
                yield Completion('{"message": "", "code": ""}', self.model, Usage(1, 1))
            finally:
                closed.append(True)

    state = State(engine=engine)
    state.messages.append(UserMessage("hi"))
    state.subscribe(lambda e: state.abort() if e.type == "message_delta" else None)
    events = list(Agent(base=Base, model=Slow()).run(state))
    assert events[-1].reason == "aborted"
    assert closed == [True]
    assert not of_type(events, "assistant_reply")


def test_subscribe_sees_every_event_and_can_unsubscribe(turn, engine):
    seen = []
    state = State(engine=engine)
    off = state.subscribe(seen.append)
    events, _, _ = turn([{"message": "", "code": ""}], state=state)
    assert seen == events
    off()
    turn([{"message": "", "code": ""}], state=state)
    assert len(seen) == len(events)


@pytest.mark.cpython_only
def test_a_runaway_step_is_stopped_by_the_time_bound(turn):
    events, _, _ = turn(
        [{"message": "", "code": "while True:\n    try:\n        pass\n    except Exception:\n        pass"}, {"message": "", "code": ""}],
        timeout=0.3,
    )
    error = of_type(events, "execution_result")[0].error
    assert "StepTimeout" in error and "0.3 s" in error
    assert events[-1].reason == "done"


def test_a_runaway_query_is_stopped_by_the_time_bound(turn):
    slow = "session.execute(text('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c')).scalar()"
    events, _, _ = turn(
        [{"message": "", "code": "from sqlalchemy import text\n" + slow}, {"message": "", "code": ""}], timeout=0.3
    )
    error = of_type(events, "execution_result")[0].error
    assert "StepTimeout" in error or "interrupted" in error


def test_transcripts_resume_a_conversation(turn, engine):
    _, state, _ = turn([{"message": "", "code": "print('step one')"}, {"message": "first done", "code": ""}])
    saved = json.loads(json.dumps(state.to_dict()))
    restored = State.from_dict(saved, engine=engine)
    assert [m.to_dict() for m in restored.messages] == [m.to_dict() for m in state.messages]
    assert restored.usage == state.usage and restored.step == state.step
    seen = []
    provider = FunctionProvider(lambda r: seen.append(r) or {"message": "again", "code": ""})
    restored.messages.append(UserMessage("and now?"))
    events = list(Agent(base=Base, model=provider).run(restored))
    assert events[-1].reason == "done"
    assert "step one" in "".join(m.content for m in seen[0].messages)
    # numbering continues
    assert of_type(events, "assistant_reply")[0].step == state.step + 1


def test_state_from_a_session_or_nothing(engine):
    with Session(engine) as s:
        state = State(session=s)
        events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(session.scalar(select(func.count()).select_from(Author)))"}])).run(_ask(state)))
        assert of_type(events, "execution_result")[0].output.strip() == str(count(engine, Author))
    empty = State()  # an in-memory database with no tables yet
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(1 + 1)"}])).run(_ask(empty)))
    assert of_type(events, "execution_result")[0].output == "2\n"


def test_module_level_run_and_resume(engine):
    from py_agent import resume, run

    provider = ScriptedProvider([{"message": "", "code": "session.add(Author(name='Via Module'))"}, {"message": "", "code": ""}])
    state = _ask(State(engine=engine))
    events = list(run(state=state, base=Base, model=provider, approve=None))
    assert events[-1].reason == "paused"
    events = list(resume(True, state=state, base=Base, model=provider, approve=None))
    assert events[-1].reason == "done"
    with Session(engine) as s:
        assert s.scalar(select(Author).where(Author.name == "Via Module")) is not None


def _ask(state: State, text: str = "go") -> State:
    state.messages.append(UserMessage(text))
    return state
