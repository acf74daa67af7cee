"""Recorded demos (py_agent.recording): the file format, recording a conversation from its
events, and replaying it as a model whose code really runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import of_type

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.demo import Base, create_demo_engine
from py_agent.providers.base import ChatMessage
from py_agent.recording import Demo, DemoError, DemoRecorder, RecordedModel

COUNT_BOOKS = {"message": "Counting the books.", "code": "print(session.scalar(select(func.count()).select_from(Book)))"}
BAD = {"message": "Counting authors.", "code": "print(session.scalar(select(func.count()).select_from(Writer)))"}
COUNT_AUTHORS = {"message": "Writer is not a class; Author is.", "code": "print(session.scalar(select(func.count()).select_from(Author)))"}
ADD_TAG = {"message": "Adding the tag.", "code": "session.add(Tag(name='poetry'))"}


def record(requests_and_replies: list[tuple[str, list[dict[str, str]]]]) -> tuple[Demo, list[list[Any]]]:
    """Run scripted turns on a fresh demo database, recording them; returns the demo and each turn's events."""
    replies = [r for _, rs in requests_and_replies for r in rs]
    agent = Agent(base=Base, model=ScriptedProvider(replies))
    state = State(engine=create_demo_engine())
    recorder = DemoRecorder(app="bookshop")
    state.subscribe(recorder.observe)
    turns = []
    for request, _ in requests_and_replies:
        state.messages.append(UserMessage(request))
        turns.append(list(agent.run(state)))
    return recorder.demo(), turns


CONVERSATION = [
    ("How many books are there?", [COUNT_BOOKS, {"message": "There are 26 books.", "code": ""}]),
    ("And how many authors?", [BAD, COUNT_AUTHORS, {"message": "There are 10 authors.", "code": ""}]),
    ("Add a poetry tag", [ADD_TAG, {"message": "Added.", "code": ""}]),
]


def replay(demo: Demo, requests: list[str]) -> list[list[Any]]:
    agent = Agent(base=Base, model=RecordedModel(demo))
    state = State(engine=create_demo_engine())
    turns = []
    for request in requests:
        state.messages.append(UserMessage(request))
        turns.append(list(agent.run(state)))
    return turns


def test_recording_keeps_requests_replies_and_failures() -> None:
    demo, _ = record(CONVERSATION)
    assert demo.requests == ["How many books are there?", "And how many authors?", "Add a poetry tag"]
    assert [len(t.steps) for t in demo.turns] == [2, 3, 2]
    assert [s.failed for s in demo.turns[1].steps] == [True, False, False]
    assert demo.turns[1].steps[1].reply == COUNT_AUTHORS
    assert demo.app == "bookshop" and demo.model == "scripted:demo"


def test_the_file_round_trips(tmp_path: Path) -> None:
    demo, _ = record(CONVERSATION)
    path = tmp_path / "demo.json"
    demo.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "py-agent-demo" and data["version"] == 1
    assert "failed" not in data["turns"][0]["steps"][1]  # a step without code has no outcome
    assert Demo.load(path) == demo


def test_a_replay_runs_the_recorded_code_for_real() -> None:
    demo, recorded = record(CONVERSATION)
    replayed = replay(demo, demo.requests)
    for before, after in zip(recorded, replayed):
        assert [e.output for e in of_type(after, "execution_result")] == [e.output for e in of_type(before, "execution_result")]
        assert of_type(after, "turn_end")[0].reason == "done"
    assert replayed[1][-1].steps == 3  # the refused class, the fix, the answer
    assert "Writer" in of_type(replayed[1], "execution_result")[0].error
    assert of_type(replayed[2], "changes")[0].status == "committed"


def test_requests_match_loosely_and_repeat() -> None:
    demo, _ = record(CONVERSATION)
    turns = replay(demo, ["how many BOOKS are there", "How many books are there?"])
    assert [of_type(t, "assistant_reply")[-1].message for t in turns] == ["There are 26 books.", "There are 26 books."]


def test_an_unrecorded_request_lists_the_recorded_ones() -> None:
    demo, _ = record(CONVERSATION)
    (turn,) = replay(demo, ["Delete every customer"])
    message = of_type(turn, "assistant_reply")[-1].message
    assert "'Delete every customer' is not one of its requests" in message
    assert "- How many books are there?" in message and "- Add a poetry tag" in message
    assert of_type(turn, "turn_end")[0].reason == "done" and not of_type(turn, "execution_result")


def test_a_step_that_fails_on_replay_stops_with_an_explanation() -> None:
    demo, _ = record(CONVERSATION[2:])
    agent = Agent(base=Base, model=RecordedModel(demo))
    state = State(engine=create_demo_engine())
    state.messages.append(UserMessage("Add a poetry tag"))
    list(agent.run(state))
    state.messages.append(UserMessage("Add a poetry tag"))  # the tag exists now: the unique name fails
    events = list(agent.run(state))
    assert "IntegrityError" in of_type(events, "execution_result")[0].error
    assert "the data probably differs" in of_type(events, "assistant_reply")[-1].message


def test_a_declined_step_is_not_followed_by_the_recorded_answer() -> None:
    demo, _ = record(CONVERSATION[2:])
    agent = Agent(base=Base, model=RecordedModel(demo), approve=False)
    state = State(engine=create_demo_engine())
    state.messages.append(UserMessage("Add a poetry tag"))
    events = list(agent.run(state))
    assert of_type(events, "changes")[0].status == "declined"
    assert of_type(events, "assistant_reply")[-1].message.startswith("Understood: I did not save those changes")


def test_the_reply_is_read_from_the_conversation_alone() -> None:
    demo, _ = record(CONVERSATION)
    model = RecordedModel(demo)
    first = json.dumps(BAD)
    messages = [
        ChatMessage("user", "(conversation resumed)\n\nAnd how many authors?"),
        ChatMessage("assistant", first),
        ChatMessage("user", "Output:\n(nothing printed)\nError:\nNameError: name 'Writer' is not defined"),
    ]
    assert model.reply_to(messages) == COUNT_AUTHORS  # the recorded fix, though the step failed
    # output with blank lines is feedback, not a new request
    messages[-1] = ChatMessage("user", "Output:\n26\n\n10\nChanges saved: tags: 1 inserted.")
    assert model.reply_to(messages[:1] + [ChatMessage("assistant", json.dumps(COUNT_AUTHORS)), messages[-1]]) == \
        {"message": "There are 10 authors.", "code": ""}
    # feedback followed by a new recorded request starts that request
    messages[-1] = ChatMessage("user", "Output:\n5\n\nAdd a poetry tag")
    assert model.reply_to(messages) == ADD_TAG


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"format": "other"}, 'no "format": "py-agent-demo"'),
        ({"format": "py-agent-demo", "version": 9, "turns": []}, "version 9 is not supported"),
        ({"format": "py-agent-demo", "version": 1, "turns": []}, '"turns" must be a non-empty list'),
        ({"format": "py-agent-demo", "version": 1, "turns": [{"request": "x", "steps": [{"reply": {"message": "m"}}]}]},
         'turn 1, step 1: "reply" must be an object'),
    ],
)
def test_a_malformed_demo_says_what_is_wrong(data: Any, words: str) -> None:
    with pytest.raises(DemoError, match=words) as caught:
        Demo.from_dict(data, source="demo.json")
    assert "demo.json" in caught.value.message and "--record" in caught.value.hint
