"""Steering and follow-ups: messages the person sends while a turn runs. Pure Python (also in Pyodide),
except the test that steers from another thread."""

from __future__ import annotations

import threading

import pytest

from py_agent import Agent, FunctionProvider, ScriptedProvider, State, UserMessage
from py_agent.demo import Base

from helpers import of_type

DONE = {"message": "done", "code": ""}
STEERED = "(The person sent this while you were working"


def test_a_steering_message_changes_the_next_step(engine):
    def model(request):
        last = request.messages[-1].content
        if "in euros" in last:
            return {"message": "Switching to euros.", "code": "print('total: 12 EUR')"}
        if "total:" in last:
            return DONE
        return {"message": "Adding up.", "code": "print('working in dollars')"}

    provider = FunctionProvider(model)
    agent = Agent(base=Base, model=provider)
    state = State(engine=engine)

    def person(event):  # types while the first step's code runs
        if event.type == "signal" and event.signal.value == "execution" and event.step == 1:
            state.steer("actually, give it to me in euros")

    state.subscribe(person)
    state.messages.append(UserMessage("what is the total?"))
    events = list(agent.run(state))

    outputs = [e.output.strip() for e in of_type(events, "execution_result")]
    assert outputs == ["working in dollars", "total: 12 EUR"]  # the next step followed the steer
    steer = [e for e in of_type(events, "user_message") if e.mode == "steer"]
    assert len(steer) == 1 and steer[0].content == "actually, give it to me in euros"
    kinds = [e.type for e in events]
    # Delivered at the next step: after step 1's result, before step 2's request.
    assert kinds.index("execution_result") < events.index(steer[0]) < [i for i, e in enumerate(events) if e.type == "signal" and e.step == 2][0]
    sent = provider.requests[1].messages[-1].content
    assert "working in dollars" in sent and STEERED in sent and sent.endswith("actually, give it to me in euros")
    assert events[-1].reason == "done" and events[-1].steps == 3
    assert state.queued == []


def test_a_steer_that_arrives_as_the_model_finishes_keeps_the_turn_going(engine):
    replies = iter([DONE, {"message": "ok, in French", "code": ""}])
    provider = FunctionProvider(lambda request: next(replies))
    agent = Agent(base=Base, model=provider)
    state = State(engine=engine)
    state.subscribe(lambda e: e.type == "signal" and e.signal.value == "completion" and e.step == 1 and state.steer("in French please"))
    state.messages.append(UserMessage("hello"))
    events = list(agent.run(state))
    assert [e.message for e in of_type(events, "assistant_reply")] == ["done", "ok, in French"]
    assert len(of_type(events, "turn_end")) == 1 and events[-1].steps == 2
    assert STEERED in provider.requests[1].messages[-1].content


def test_a_follow_up_starts_the_next_turn_when_this_one_ends(engine):
    provider = ScriptedProvider(
        [{"message": "", "code": "print('first')"}, {"message": "first done", "code": ""}, {"message": "second done", "code": ""}]
    )
    agent = Agent(base=Base, model=provider)
    state = State(engine=engine)
    state.subscribe(lambda e: e.type == "execution_result" and state.follow_up("and now the second thing"))
    state.messages.append(UserMessage("the first thing"))
    events = list(agent.run(state))
    ends = of_type(events, "turn_end")
    assert [e.reason for e in ends] == ["done", "done"]
    users = of_type(events, "user_message")
    assert [(u.content, u.mode) for u in users] == [("the first thing", ""), ("and now the second thing", "follow_up")]
    assert events.index(users[1]) > events.index(ends[0])  # only after the first turn ended
    # The model saw it as a new request of its own, not mixed into the first turn's steps.
    assert provider.requests[2].messages[-1].content == "and now the second thing"
    assert state.turn == 2 and state.queued == []


def test_queued_messages_wait_through_an_approval_and_are_saved(engine):
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "session.add(Author(name='Q'))"}, DONE, DONE]), approve=None)
    state = State(engine=engine)
    state.messages.append(UserMessage("add Q"))
    events = list(agent.run(state))
    assert events[-1].reason == "paused"
    state.follow_up("then list them")
    state.steer("quickly")
    saved = state.to_dict()
    assert saved["queued"] == [{"mode": "steer", "text": "quickly"}, {"mode": "follow_up", "text": "then list them"}]
    assert State.from_dict(saved).queued == state.queued
    state.resume(True)
    events = list(agent.run(state))
    assert [(u.content, u.mode) for u in of_type(events, "user_message")] == [("quickly", "steer"), ("then list them", "follow_up")]
    assert [e.reason for e in of_type(events, "turn_end")] == ["done", "done"]
    assert state.clear_queue() == []


def test_a_message_queued_while_idle_starts_the_next_run(engine):
    provider = ScriptedProvider([DONE])
    agent = Agent(base=Base, model=provider)
    state = State(engine=engine)
    state.follow_up("hello there")
    events = list(agent.run(state))
    assert of_type(events, "user_message")[0].content == "hello there" and events[-1].reason == "done"
    state.steer("one more thing")
    assert state.queued == [{"mode": "steer", "text": "one more thing"}]
    assert state.clear_queue() == [{"mode": "steer", "text": "one more thing"}] and state.queued == []


@pytest.mark.cpython_only
def test_steering_from_another_thread_while_the_model_streams(engine):
    seen = threading.Event()

    def model(request):
        if len(provider.requests) == 1:
            seen.set()
            return {"message": "", "code": "print('step one')"}
        return {"message": "saw: " + request.messages[-1].content.splitlines()[-1], "code": ""}

    provider = FunctionProvider(model, delay=0.02, chunk_size=4)
    agent = Agent(base=Base, model=provider)
    state = State(engine=engine)
    state.messages.append(UserMessage("start"))
    sender = threading.Thread(target=lambda: seen.wait(5) and state.steer("from the UI thread"))
    sender.start()
    events = list(agent.run(state))
    sender.join()
    assert of_type(events, "assistant_reply")[-1].message == "saw: from the UI thread"
