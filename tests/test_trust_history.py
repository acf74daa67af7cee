"""History and undo: every committed turn is a point; undo and restore bring rows back."""

from __future__ import annotations

import json

import pytest
from helpers import of_type
from sqlalchemy import text

from py_agent import Agent, FunctionProvider, ScriptedProvider, State, UserMessage
from py_agent.database import Database, UndoError
from py_agent.demo import Base, create_demo_engine

DONE = {"message": "done", "code": ""}


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every app table (what an undo must restore exactly)."""
    with engine.connect() as conn:
        names = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'py_agent%' AND name NOT LIKE 'sqlite%'")]
        return {n: sorted(conn.exec_driver_sql(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def turn_of(state: State, request: str, *codes: str, **options) -> list:
    replies = [{"message": "", "code": c} for c in codes] + [DONE]
    state.messages.append(UserMessage(request))
    return list(Agent(base=Base, model=ScriptedProvider(replies), **options).run(state))


def test_a_committed_turn_is_a_point_and_undo_brings_every_row_back(engine):
    state = State(engine=engine)
    start = snapshot(engine)
    events = turn_of(
        state,
        "add Tolkien, raise prices, drop a tag link",
        "a = Author(name='J. R. R. Tolkien')\nsession.add(a)\nsession.add(Book(title='The Hobbit', author=a, genre=Genre.FANTASY, price=10))",
        "for b in session.scalars(select(Book)).all():\n    b.price = b.price + 1",
        "session.execute(text('DELETE FROM book_tags WHERE book_id = 1'))",
    )
    after_turn = snapshot(engine)
    [point] = state.history
    assert point.kind == "turn" and point.request == "add Tolkien, raise prices, drop a tag link"
    assert point.undoable and not point.undone and point.at.endswith("+00:00")
    assert point.tables["authors"]["inserted"] == 1 and point.tables["books"]["inserted"] == 1
    assert point.tables["books"]["updated"] >= 1 and point.tables["book_tags"]["deleted"] >= 1
    # one point per turn however many steps committed; the event says so each time
    assert {e.point["id"] for e in of_type(events, "history_point")} == {point.id}

    seen = []
    state.subscribe(seen.append)
    undone = state.undo()
    assert snapshot(engine) == start
    assert undone.kind == "undo" and undone.reverted == [point.id]
    assert undone.tables["authors"]["deleted"] == 1 and undone.rows["authors"]["deleted"][0]["name"] == "J. R. R. Tolkien"
    assert [e.type for e in seen] == ["history_point", "undone"]
    first, second = state.history
    assert first.undone and second.kind == "undo" and second.reverts == (first.id,)
    assert json.loads(json.dumps(undone.to_dict()))["point"]["kind"] == "undo"

    # the model hears of it at its next turn, before the person's message
    seen_requests = []
    provider = FunctionProvider(lambda request: seen_requests.append(request) or DONE)
    state.messages.append(UserMessage("what now?"))
    list(Agent(base=Base, model=provider).run(state))
    last = seen_requests[0].messages[-1].content
    assert "undid history point" in last and last.rstrip().endswith("what now?")
    assert after_turn != start


def test_undo_is_repeatable_and_then_there_is_nothing_left(engine):
    state = State(engine=engine)
    start = snapshot(engine)
    turn_of(state, "one", "session.add(Tag(name='one'))")
    middle = snapshot(engine)
    turn_of(state, "two", "session.get(Tag, 1).name = 'renamed'")
    state.undo()
    assert snapshot(engine) == middle
    state.undo()
    assert snapshot(engine) == start
    with pytest.raises(UndoError, match="nothing to undo"):
        state.undo()
    assert [p.kind for p in state.history] == ["turn", "turn", "undo", "undo"]


def test_undo_refuses_when_rows_changed_since_and_names_them(engine):
    state = State(engine=engine)
    turn_of(state, "price", "session.get(Book, 1).price = 42")
    with engine.begin() as conn:  # someone else changes the same row afterwards
        conn.exec_driver_sql("UPDATE books SET price = 7 WHERE id = 1")
    before = snapshot(engine)
    with pytest.raises(UndoError) as caught:
        state.undo()
    assert "books (id=1)" in caught.value.message and "price" in caught.value.message
    assert snapshot(engine) == before
    assert not state.history[0].undone


def test_restore_goes_back_several_turns_and_can_itself_be_undone(engine):
    state = State(engine=engine)
    start = snapshot(engine)
    turn_of(state, "a", "session.add(Tag(name='a'))")
    at_1 = snapshot(engine)
    turn_of(state, "b", "session.add(Tag(name='b'))")
    turn_of(state, "c", "session.execute(text('DELETE FROM book_tags WHERE tag_id = 1'))")
    at_3 = snapshot(engine)
    first = state.history[0].id
    done = state.restore(first)
    assert snapshot(engine) == at_1 and done.kind == "restore"
    points = state.history
    assert [p.undone for p in points[:3]] == [False, True, True] and points[-1].kind == "restore"
    state.undo()  # undoing the restore brings b and c back
    assert snapshot(engine) == at_3
    assert [p.undone for p in state.history[:3]] == [False, False, False]
    state.restore(0)
    assert snapshot(engine) == start


def test_a_cascade_is_undone_with_the_rows_it_deleted(engine):
    with engine.begin() as conn:
        author = conn.exec_driver_sql("SELECT id FROM authors LIMIT 1").scalar()
        conn.exec_driver_sql(f"INSERT INTO books (title, author_id, genre, price, stock, kind) VALUES ('Spare', {author}, 'FANTASY', 1, 0, 'book')")
        conn.exec_driver_sql("INSERT INTO book_tags SELECT (SELECT id FROM books WHERE title = 'Spare'), id FROM tags LIMIT 3")
    start = snapshot(engine)
    state = State(engine=engine)
    events = turn_of(state, "delete Spare", "session.execute(delete(Book).where(Book.title == 'Spare'))")
    assert of_type(events, "changes")[0].tables["book_tags"]["deleted"] == 3  # the cascade, captured
    state.undo()
    assert snapshot(engine) == start


def test_read_only_sessions_never_create_the_history_tables(engine):
    state = State(engine=engine)
    turn_of(state, "count", "print(session.scalar(select(func.count()).select_from(Book)))")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name LIKE 'py_agent%'").scalar() == 0
    assert state.history == []


def test_history_can_be_switched_off(engine):
    state = State(engine=engine)
    turn_of(state, "add", "session.add(Tag(name='no history'))", history=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name LIKE 'py_agent%'").scalar() == 0
    with pytest.raises(UndoError, match="switched off"):
        state.undo()


def test_history_lives_in_the_file_and_survives_a_new_state(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_demo_engine(url)
    start = snapshot(engine)
    state = State(engine=engine)
    turn_of(state, "add a tag", "session.add(Tag(name='kept in the file'))")
    state.close()
    engine.dispose()

    again = create_demo_engine(url)  # a reload: new engine, new conversation
    fresh = State(engine=again)
    assert [p.request for p in fresh.history] == ["add a tag"]
    fresh.undo()
    assert snapshot(again) == start
    again.dispose()


def test_a_turn_too_large_to_journal_is_recorded_as_not_undoable(engine):
    db = Database(engine, journal_limit=5)
    db.begin_step()
    db.session.execute(text("UPDATE books SET stock = stock + 1"))
    db.commit_step(request="restock everything")
    [point] = db.points()
    assert not point.undoable and "too large" in point.note and point.tables["books"]["updated"] > 5
    with pytest.raises(UndoError, match="cannot be undone"):
        db.undo()
    db.close()


def test_exact_values_come_back_blobs_floats_and_rowid_tables(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE files (data BLOB, ratio REAL, label)")  # no primary key: rowid
        conn.exec_driver_sql("INSERT INTO files VALUES (x'00ff10', 0.1, 3)")
    start = snapshot(engine)
    db = Database(engine)
    db.begin_step()
    db.session.execute(text("UPDATE files SET data = x'01', ratio = 1e300, label = 'three'"))
    db.session.execute(text("INSERT INTO files VALUES (x'', 2.5, NULL)"))
    db.commit_step(request="change files")
    db.undo()
    assert snapshot(engine) == start
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT typeof(label), typeof(ratio) FROM files").fetchone() == ("integer", "real")
    db.close()


def test_undo_refuses_while_a_step_waits_for_approval(engine):
    state = State(engine=engine)
    turn_of(state, "add", "session.add(Tag(name='first'))")
    turn_of(state, "add more", "session.add(Tag(name='second'))", approve=None)
    assert state.pending is not None
    with pytest.raises(UndoError, match="waits for approval"):
        state.undo()


def test_allow_for_the_rest_of_the_conversation_is_remembered(engine):
    state = State(engine=engine)
    events = turn_of(state, "add", "session.add(Tag(name='first'))", approve=None)
    assert events[-1].reason == "paused"
    state.resume(True, remember=True)
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "session.add(Tag(name='second'))"}, DONE]), approve=None).run(state))
    decision = of_type(events, "approval_decision")[0]
    assert decision.approved and decision.remember
    assert [e.status for e in of_type(events, "changes")] == ["committed", "committed"]  # the later step did not pause
    restored = State.from_dict(json.loads(json.dumps(state.to_dict())), engine=engine)
    assert restored.auto_approve
    events = turn_of(restored, "more", "session.add(Tag(name='third'))", approve=None)
    assert events[-1].reason == "done" and not of_type(events, "approval_required")


def test_a_saved_pending_step_is_reported_as_discarded(engine):
    state = State(engine=engine)
    turn_of(state, "add", "session.add(Tag(name='pending'))", approve=None)
    saved = json.loads(json.dumps(state.to_dict()))
    assert saved["pending"]["step"] == state.pending.step
    restored = State.from_dict(saved, engine=engine)
    assert restored.discarded_step == state.pending.step and restored.pending is None


def test_undo_restores_the_columns_the_turn_changed_and_keeps_later_changes_to_others(engine):
    state = State(engine=engine)
    with engine.connect() as conn:
        price = conn.exec_driver_sql("SELECT price FROM books WHERE id = 1").scalar()
    turn_of(state, "price", "session.get(Book, 1).price = 42")
    with engine.begin() as conn:  # someone restocks the same book afterwards
        conn.exec_driver_sql("UPDATE books SET stock = 99 WHERE id = 1")
    state.undo()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT price, stock FROM books WHERE id = 1").fetchone() == (price, 99)


def test_a_row_the_turn_inserted_and_someone_changed_since_is_a_conflict(engine):
    state = State(engine=engine)
    turn_of(state, "add", "session.add(Tag(name='fresh'))")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tags SET name = 'edited by hand' WHERE name = 'fresh'")
    with pytest.raises(UndoError, match="tags .*name is 'edited by hand'"):
        state.undo()
