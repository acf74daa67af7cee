"""Approvals: approve everything, a callable, or pause and resume (llm-coding-agent)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.demo import Author, Base, create_demo_engine

from helpers import of_type

ADD = {"message": "adding", "code": "session.add(Author(name='Pending Person'))\nprint('added')"}
DONE = {"message": "done", "code": ""}


def authors(engine, name="Pending Person") -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Author).where(Author.name == name))


def test_a_callable_sees_the_step_and_can_decline(turn, engine):
    asked = []

    def reviewer(step):
        asked.append(step)
        return False

    events, state, _ = turn([ADD, DONE], approve=reviewer)
    assert asked[0].tables == {"authors": {"inserted": 1, "updated": 0, "deleted": 0}}
    assert "Pending Person" in asked[0].code and asked[0].output.strip() == "added"
    assert of_type(events, "approval_decision")[0].approved is False
    assert of_type(events, "changes")[-1].status == "declined"
    assert authors(engine) == 0
    assert "declined" in state.messages[2].content


def test_an_async_callable_can_approve(turn, engine):
    async def reviewer(step):
        return True

    events, _, _ = turn([ADD, DONE], approve=reviewer)
    assert of_type(events, "changes")[-1].status == "committed"
    assert authors(engine) == 1


def test_read_only_steps_need_no_approval(turn):
    events, _, _ = turn([{"message": "", "code": "print(1)"}, DONE], approve=None)
    assert events[-1].reason == "done" and not of_type(events, "approval_required")


def test_pause_leaves_the_step_uncommitted_and_resume_commits(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_demo_engine(url)
    other = create_demo_engine(url)  # a second engine: sees only committed data
    agent = Agent(base=Base, model=ScriptedProvider([ADD, DONE]), approve=None)
    state = State(engine=engine)
    state.messages.append(UserMessage("add someone"))
    events = list(agent.run(state))
    assert events[-1].reason == "paused"
    required = of_type(events, "approval_required")[0]
    assert required.tables["authors"]["inserted"] == 1 and "Pending Person" in required.code
    assert of_type(events, "changes")[0].status == "pending"
    assert state.pending is not None and authors(other) == 0

    # running again without a decision does not proceed
    again = list(agent.run(state))
    assert of_type(again, "error")[0].kind == "approval" and again[-1].reason == "paused"

    state.resume(True)
    events = list(agent.run(state))
    assert of_type(events, "approval_decision")[0].approved is True
    assert of_type(events, "changes")[0].status == "committed"
    assert events[-1].reason == "done"
    assert authors(other) == 1 and state.pending is None
    engine.dispose(), other.dispose()


def test_resume_false_rolls_back_and_tells_the_model(engine):
    seen = []
    provider = ScriptedProvider([ADD, DONE])
    agent = Agent(base=Base, model=provider, approve=None)
    state = State(engine=engine)
    state.messages.append(UserMessage("add someone"))
    list(agent.run(state))
    state.resume(False)
    state.subscribe(seen.append)
    events = list(agent.run(state))
    assert of_type(events, "changes")[0].status == "declined"
    assert authors(engine) == 0
    assert "declined" in provider.requests[-1].messages[-1].content
