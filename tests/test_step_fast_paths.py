"""The database step's fast paths (issue 13.4) keep every check they skip work around.

- Statements that start with SELECT skip the first-write wrapper (``step._deferring``):
  the authorizer still decides about them, and every other statement still gets the
  foreign-key deferral before the step's first write.
- SAVEPOINT / RELEASE / ROLLBACK TO go straight to sqlite3 (``step._direct_savepoints``):
  the authorizer still sees them, SQLAlchemy's savepoint events still fire, and a
  savepoint rolled back inside a step still takes its rows with it.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event, exc, select, text

from py_agent.database import Database
from py_agent.demo import Author, Book


@pytest.fixture
def db(engine):
    database = Database(engine)
    yield database
    database.close()


@pytest.mark.parametrize("first", ["INSERT", "WITH", "insert"])
def test_the_first_write_after_reads_is_still_deferred(db, first):
    """A link before its tag only works with foreign-key checks deferred: a write that the
    SELECT fast path wrongly took for a read would fail here with 'not authorized'."""
    db.begin_step()
    book_id = db.session.scalar(select(Book.id).limit(1))  # reads first (SELECTs, the fast path)
    tag_id = db.session.execute(text("SELECT max(id) + 1000 FROM tags")).scalar()
    child = "INSERT INTO book_tags (book_id, tag_id) VALUES (:b, :t)"
    if first == "WITH":
        child = "WITH x AS (SELECT 1) " + child
    elif first == "insert":
        child = child.replace("INSERT INTO", "insert into")
    db.session.execute(text(child), {"b": book_id, "t": tag_id})
    db.session.execute(text("INSERT INTO tags (id, name) VALUES (:t, 'late parent')"), {"t": tag_id})
    changes = db.finish_step()
    assert changes.tables["book_tags"]["inserted"] == 1
    assert changes.tables["tags"]["inserted"] == 1
    db.commit_step()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM py_agent_capture",
        "SELECT load_extension('libevil')",
        "SELECT py_agent_tick()",
    ],
)
def test_select_statements_are_still_judged_by_the_authorizer(db, sql):
    db.begin_step()
    with pytest.raises(exc.DatabaseError, match="not authorized"):
        db.session.execute(text(sql)).all()
    db.rollback_step()


def test_a_sealed_step_refuses_writes_after_savepoint_work(db):
    db.begin_step()
    nested = db.session.begin_nested()
    db.session.add(Author(name="Inner"))
    db.session.flush()
    nested.rollback()
    db.finish_step()  # sealed from here on
    with pytest.raises(exc.DatabaseError, match="not authorized"):
        db.connection.exec_driver_sql("SAVEPOINT late")  # allowed: a savepoint writes nothing
        db.connection.exec_driver_sql("INSERT INTO authors (name) VALUES ('Late')")
    db.rollback_step()


def test_savepoints_go_through_the_authorizer_and_fire_their_events(db):
    seen: list[tuple[str, str]] = []
    guard_class = type(db.guard)

    class Watching(guard_class):  # the same authorizer, noting the savepoints it is asked about
        def __call__(self, action, arg1, arg2, database, trigger):
            if action == sqlite3.SQLITE_SAVEPOINT:
                seen.append((arg1, arg2))
            return super().__call__(action, arg1, arg2, database, trigger)

    db.guard.__class__ = Watching
    fired: list[str] = []
    for name in ("savepoint", "release_savepoint", "rollback_savepoint"):
        event.listen(db.connection, name, lambda *a, name=name: fired.append(name))
    try:
        db.begin_step()
        db.session.add(Author(name="Kept"))
        nested = db.session.begin_nested()
        db.session.add(Author(name="Dropped"))
        db.session.flush()  # now in the database, inside the nested savepoint
        nested.rollback()  # ROLLBACK TO: only the inner row goes
        changes = db.finish_step()  # the session's own savepoint is released
        db.commit_step()
    finally:
        db.guard.__class__ = guard_class
    assert changes.tables["authors"]["inserted"] == 1
    assert [op for op, _ in seen].count("BEGIN") >= 2  # SAVEPOINT for the session's and the nested one
    assert "ROLLBACK" in [op for op, _ in seen] and "RELEASE" in [op for op, _ in seen]
    assert {"savepoint", "release_savepoint", "rollback_savepoint"} <= set(fired)
    names = [name for op, name in seen if op == "BEGIN"]
    assert len(names) == len(set(names))  # nested savepoints never share a name
