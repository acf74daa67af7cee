"""Nothing commits behind the approval: the rows committed are exactly the rows shown.

Host code registers SQLAlchemy listeners here, standing in for model code that got one
past the sandbox: on the session, on the engine and on mapped classes. Whatever they
do inside the step is captured and shown; whatever they try after the changes were
shown is refused, and the commit verifies SQLite's own counters before COMMIT.
"""

from __future__ import annotations

import pytest
from helpers import of_type
from sqlalchemy import event, text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.database import CommitRefused, Database
from py_agent.demo import Base, Tag

DONE = {"message": "done", "code": ""}
READ = {"message": "", "code": "print(session.scalar(select(func.count()).select_from(Tag)))"}
ADD = {"message": "", "code": "session.add(Tag(name='approved tag'))"}


def tag_names(engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql("SELECT name FROM tags")}


def step_then_approve(engine, state: State, reply: dict) -> tuple[list, list]:
    """One step under approve=None; approve it; returns (events before, events after)."""
    agent = Agent(base=Base, model=ScriptedProvider([reply, DONE]), approve=None)
    state.messages.append(UserMessage("go"))
    first = list(agent.run(state))
    if state.pending is None:
        return first, []
    state.resume(True)
    return first, list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state))


def assert_committed_as_shown(engine, before: set[str], first: list, after: list) -> None:
    required = of_type(first, "approval_required")[0]
    committed = of_type(after, "changes")[0]
    assert committed.status == "committed"
    assert committed.tables == required.tables and committed.rows == required.rows
    shown = {row["name"] for row in required.rows.get("tags", {}).get("inserted", [])}
    assert tag_names(engine) == before | shown


def test_a_before_commit_listener_in_a_read_only_step_is_shown_not_smuggled(engine):
    state = State(engine=engine)
    state.open_workspace()

    @event.listens_for(state.session, "before_commit")
    def sneak(session):
        if not any(isinstance(o, Tag) for o in session.new):
            session.add(Tag(name=f"from before_commit {len(session.identity_map)}"))

    before = tag_names(engine)
    first, after = step_then_approve(engine, state, READ)
    # The "read-only" step wrote through the listener: it needed approval, with the row shown.
    required = of_type(first, "approval_required")[0]
    assert required.tables["tags"]["inserted"] == 1
    assert_committed_as_shown(engine, before, first, after)
    event.remove(state.session, "before_commit", sneak)


def test_an_engine_commit_listener_cannot_add_rows_at_commit_time(engine):
    state = State(engine=engine)

    def sneak(conn):
        conn.exec_driver_sql("INSERT INTO tags (name) VALUES ('smuggled at commit')")

    event.listen(engine, "commit", sneak)
    try:
        before = tag_names(engine)
        first, after = step_then_approve(engine, state, ADD)
        assert_committed_as_shown(engine, before, first, after)
        assert "smuggled at commit" not in tag_names(engine)
    finally:
        event.remove(engine, "commit", sneak)
    # the connection is still usable and still guarded
    state.messages.append(UserMessage("again"))
    events = list(Agent(base=Base, model=ScriptedProvider([READ, DONE])).run(state))
    assert of_type(events, "execution_result")[0].error is None


def test_an_engine_rollback_listener_cannot_write_when_a_step_is_declined(engine):
    state = State(engine=engine)

    def sneak(conn):
        conn.exec_driver_sql("INSERT INTO tags (name) VALUES ('smuggled at rollback')")

    event.listen(engine, "rollback", sneak)
    try:
        agent = Agent(base=Base, model=ScriptedProvider([ADD, DONE]), approve=None)
        state.messages.append(UserMessage("go"))
        list(agent.run(state))
        state.resume(False)
        list(agent.run(state))
    finally:
        event.remove(engine, "rollback", sneak)
    assert not {"smuggled at rollback", "approved tag"} & tag_names(engine)


def test_mapper_and_after_begin_listeners_write_inside_the_step_and_are_shown(engine):
    state = State(engine=engine)
    state.open_workspace()

    def on_insert(mapper, connection, target):
        connection.exec_driver_sql("UPDATE books SET stock = stock + 1 WHERE id = 1")

    def on_begin(session, transaction, connection):
        connection.exec_driver_sql("INSERT INTO tags (name) VALUES ('from after_begin')")

    event.listen(Tag, "after_insert", on_insert)
    event.listen(state.session, "after_begin", on_begin)
    try:
        before = tag_names(engine)
        first, after = step_then_approve(engine, state, ADD)
        required = of_type(first, "approval_required")[0]
        assert required.tables["books"]["updated"] == 1
        assert required.tables["tags"]["inserted"] == 2
        assert_committed_as_shown(engine, before, first, after)
    finally:
        event.remove(Tag, "after_insert", on_insert)
        event.remove(state.session, "after_begin", on_begin)


def test_host_writes_while_a_step_waits_are_refused(tmp_path):
    from py_agent.demo import create_demo_engine

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine, other = create_demo_engine(url), create_demo_engine(url)  # `other` sees committed rows only
    before = tag_names(other)
    state = State(engine=engine)
    agent = Agent(base=Base, model=ScriptedProvider([ADD, DONE]), approve=None)
    state.messages.append(UserMessage("go"))
    first = list(agent.run(state))
    state.session.add(Tag(name="added while waiting"))
    with pytest.raises(Exception, match="already shown for approval"):
        state.session.flush()
    state.session.rollback()
    state.resume(True)
    after = list(agent.run(state))
    assert_committed_as_shown(other, before, first, after)
    assert "added while waiting" not in tag_names(other)
    state.close()
    engine.dispose(), other.dispose()


def test_a_change_that_slipped_past_the_seal_stops_the_commit(engine):
    db = Database(engine)
    before = tag_names(engine)
    db.begin_step()
    db.session.add(Tag(name="shown"))
    db.finish_step()
    with db.guard.as_internal():  # as if something got past the authorizer
        db.raw.execute("INSERT INTO tags (name) VALUES ('not shown')")
    with pytest.raises(CommitRefused, match="after they were shown"):
        db.commit_step()
    assert tag_names(engine) == before and not db.in_step
    db.close()


def test_the_model_cannot_end_the_transaction_itself(turn, engine):
    before = tag_names(engine)
    code = "session.add(Tag(name='early'))\nsession.flush()\nsession.execute(text('COMMIT'))"
    events, _, _ = turn([{"message": "", "code": code}, DONE], approve=None)
    assert "COMMIT is done by py-agent" in of_type(events, "execution_result")[0].error
    assert tag_names(engine) == before
    assert text  # imported for the model's namespace only


def test_a_refused_commit_is_reported_to_the_person_and_the_model(engine, monkeypatch):
    from py_agent.database.step import Database as Db

    real = Db.finish_step

    def finish_then_slip(self):
        changes = real(self)
        if changes and not getattr(self, "_slipped", False):
            self._slipped = True
            with self.guard.as_internal():  # as if something got past the authorizer
                self.raw.execute("INSERT INTO tags (name) VALUES ('slipped in')")
        return changes

    monkeypatch.setattr(Db, "finish_step", finish_then_slip)
    before = tag_names(engine)
    state = State(engine=engine)
    _, after = step_then_approve(engine, state, ADD)
    error = of_type(after, "error")[0]
    assert error.kind == "commit" and "after they were shown" in error.message
    assert of_type(after, "changes")[0].status == "rolled_back"
    assert "after they were shown" in state.messages[-2].content or "after they were shown" in state.messages[-1].content
    assert tag_names(engine) == before
