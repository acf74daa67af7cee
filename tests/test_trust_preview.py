"""Row-level preview: what a pending step would do, row by row, in the events' JSON."""

from __future__ import annotations

import json

from helpers import of_type
from sqlalchemy import text

from py_agent import Agent, ScriptedProvider, State, UserMessage, event_from_dict
from py_agent.database import Database
from py_agent.database.changes import PREVIEW_LIMIT
from py_agent.demo import Base, Tag

DONE = {"message": "done", "code": ""}


def run_paused(engine, code: str):
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": code}, DONE]), approve=None)
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    return list(agent.run(state)), state, agent


def test_inserted_updated_and_deleted_rows_are_shown_with_their_values(engine):
    code = (
        "session.add(Tag(name='brand new'))\n"
        "book = session.get(Book, 1)\n"
        "old_price = book.price\n"
        "book.price = Decimal('99.50')\n"
        "book.stock = book.stock\n"  # unchanged: must not show as changed
        "session.execute(text(\"DELETE FROM book_tags WHERE book_id = 1\"))\n"
    )
    events, state, _ = run_paused(engine, "from decimal import Decimal\n" + code)
    required = of_type(events, "approval_required")[0]
    rows = required.rows
    assert rows["tags"]["key"] == ["id"]
    [tag] = rows["tags"]["inserted"]
    assert tag["name"] == "brand new" and isinstance(tag["id"], int)
    [book] = rows["books"]["updated"]
    assert book["key"] == {"id": 1}
    assert list(book["after"]) == ["price"] and book["after"]["price"] == 99.5
    assert book["before"]["price"] != 99.5
    deleted = rows["book_tags"]["deleted"]
    assert deleted and all(r["book_id"] == 1 for r in deleted) and set(deleted[0]) == {"book_id", "tag_id"}
    assert rows["book_tags"]["key"] == ["book_id", "tag_id"]
    # counts are exact and match the rows shown
    assert required.tables["book_tags"]["deleted"] == len(deleted)
    assert required.tables["books"] == {"inserted": 0, "updated": 1, "deleted": 0}
    # the same preview in the pending `changes` event and, after approval, the committed one
    pending = next(e for e in of_type(events, "changes") if e.status == "pending")
    assert pending.rows == rows
    state.resume(True)
    committed = of_type(list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state)), "changes")[0]
    assert committed.status == "committed" and committed.rows == rows and committed.tables == required.tables


def test_bulk_changes_are_capped_but_counted_exactly(engine):
    events, _, _ = run_paused(engine, "for i in range(60):\n    session.add(Tag(name=f'bulk {i}'))")
    required = of_type(events, "approval_required")[0]
    assert required.tables["tags"]["inserted"] == 60
    assert len(required.rows["tags"]["inserted"]) == PREVIEW_LIMIT


def test_values_are_json_safe_blobs_become_sizes(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB, ratio REAL)")
    db = Database(engine)
    db.begin_step()
    db.session.execute(text("INSERT INTO files (data, ratio) VALUES (x'00010203', 0.1)"))
    changes = db.finish_step()
    assert changes.rows["files"]["inserted"] == [{"id": 1, "data": {"$blob": 4}, "ratio": 0.1}]
    db.rollback_step()
    db.close()


def test_a_row_inserted_and_changed_in_one_step_shows_once_with_its_final_values(engine):
    code = "t = Tag(name='draft')\nsession.add(t)\nsession.flush()\nt.name = 'final'\nsession.flush()"
    events, _, _ = run_paused(engine, code)
    required = of_type(events, "approval_required")[0]
    assert required.tables["tags"] == {"inserted": 1, "updated": 0, "deleted": 0}
    assert required.rows["tags"]["inserted"][0]["name"] == "final"


def test_a_row_changed_back_within_the_step_needs_no_approval(turn):
    code = "t = session.get(Tag, 1)\nold = t.name\nt.name = 'temp'\nsession.flush()\nt.name = old\nsession.flush()"
    events, _, _ = turn([{"message": "", "code": code}, DONE], approve=None)
    assert events[-1].reason == "done" and not of_type(events, "approval_required")


def test_preview_events_round_trip_through_json(engine):
    events, _, _ = run_paused(engine, "session.add(Tag(name='json'))\nsession.get(Book, 2).stock = 42")
    for event in events:
        assert event_from_dict(json.loads(json.dumps(event.to_dict()))) == event
    data = of_type(events, "approval_required")[0].to_dict()
    assert data["kind"] == "write" and data["detail"] is None and data["schema"] == []
    assert data["rows"]["books"]["updated"][0]["after"] == {"stock": 42}


def test_a_callable_approver_sees_the_rows(turn):
    seen = []
    turn([{"message": "", "code": "session.add(Tag(name='for the reviewer'))"}, DONE], approve=lambda step: seen.append(step) or True)
    assert seen[0].rows["tags"]["inserted"][0]["name"] == "for the reviewer"
    assert seen[0].kind == "write"


def test_tags_table_stays_queryable_after_preview(engine):
    # Reading a step's changes must not leave the session unusable for the next step.
    events, state, agent = run_paused(engine, "session.add(Tag(name='x1'))")
    state.resume(False)
    list(agent.run(state))
    state.messages.append(UserMessage("count"))
    agent2 = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(session.scalar(select(func.count()).select_from(Tag)))"}, DONE]))
    events = list(agent2.run(state))
    with engine.connect() as conn:
        expected = conn.exec_driver_sql("SELECT count(*) FROM tags").scalar()
    assert of_type(events, "execution_result")[0].output.strip() == str(expected)
    assert Tag  # the class is the one the step used
