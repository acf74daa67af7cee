"""Safe import: a database file is checked against the schema, previewed, confirmed, undoable."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import of_type

from py_agent import Agent, ScriptedProvider, State
from py_agent.database import inspect_file
from py_agent.demo import Base, create_demo_engine

DONE = {"message": "done", "code": ""}


def file_bytes(engine) -> bytes:
    raw = engine.raw_connection()
    try:
        return raw.dbapi_connection.serialize()
    finally:
        raw.close()


def modified_copy(engine, *statements: str) -> bytes:
    """The engine's database as a file, with ``statements`` applied to the copy."""
    copy = sqlite3.connect(":memory:")
    copy.deserialize(file_bytes(engine))
    for statement in statements:
        copy.execute(statement)
    copy.commit()
    data = copy.serialize()
    copy.close()
    return data


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).fetchall()


def agent() -> Agent:
    return Agent(base=Base, model=ScriptedProvider([DONE, DONE]))


def test_an_unrelated_file_is_refused_with_a_report_and_nothing_changes(engine):
    other = sqlite3.connect(":memory:")
    other.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT)")
    other.execute("INSERT INTO recipes (name) VALUES ('soup')")
    data = other.serialize()
    before = rows(engine, "SELECT count(*) FROM books")
    state = State(engine=engine)
    events = list(agent().import_database(state, data))
    error = of_type(events, "error")[0]
    assert error.kind == "import" and "none of the app's tables" in error.message and "recipes" in error.message
    assert events[-1].reason == "error" and state.pending is None
    assert rows(engine, "SELECT count(*) FROM books") == before


def test_not_a_database_is_refused(engine):
    events = list(agent().import_database(State(engine=engine), b"just some text"))
    assert "not an SQLite database" in of_type(events, "error")[0].message


def test_an_import_is_previewed_confirmed_and_undone(engine):
    data = modified_copy(
        engine,
        "UPDATE books SET price = 1.25 WHERE id = 1",
        "DELETE FROM book_tags WHERE book_id = 2",
        "INSERT INTO tags (name) VALUES ('imported tag')",
    )
    start = rows(engine, "SELECT * FROM books ORDER BY id"), rows(engine, "SELECT * FROM tags ORDER BY id")
    state = State(engine=engine)
    events = list(agent().import_database(state, data))
    assert events[-1].reason == "paused"
    required = of_type(events, "approval_required")[0]
    assert required.kind == "import" and required.detail["ok"] is True
    assert {t["name"] for t in required.detail["tables"]} >= {"books", "tags", "authors"}
    # only what differs shows: one price, the removed links, the new tag
    assert required.tables["books"] == {"inserted": 0, "updated": 1, "deleted": 0}
    assert required.rows["books"]["updated"][0]["after"] == {"price": 1.25}
    assert required.tables["tags"]["inserted"] == 1 and required.tables["book_tags"]["deleted"] >= 1
    assert "authors" not in required.tables
    state.resume(True)
    events = list(agent().run(state))
    assert of_type(events, "changes")[0].status == "committed" and events[-1].reason == "done"
    assert state.history[-1].kind == "import"
    assert rows(engine, "SELECT price FROM books WHERE id = 1") == [(1.25,)]
    assert "imported a database file" in state.notes[0]
    state.undo()
    assert (rows(engine, "SELECT * FROM books ORDER BY id"), rows(engine, "SELECT * FROM tags ORDER BY id")) == start


def test_a_declined_import_changes_nothing(engine):
    data = modified_copy(engine, "DELETE FROM book_tags")
    before = rows(engine, "SELECT count(*) FROM book_tags")
    state = State(engine=engine)
    list(agent().import_database(state, data))
    state.resume(False)
    events = list(agent().run(state))
    assert of_type(events, "changes")[0].status == "declined"
    assert rows(engine, "SELECT count(*) FROM book_tags") == before and state.history == []


def test_a_file_missing_a_required_column_is_refused(engine):
    data = modified_copy(
        engine,
        "CREATE TABLE c2 AS SELECT id, name, joined FROM customers",
        "DROP TABLE customers",
        "ALTER TABLE c2 RENAME TO customers",
    )
    report = inspect_file(data, Base.metadata)
    assert not report.ok and any("customers" in p and "email" in p for p in report.problems)


def test_extra_tables_columns_and_type_differences_are_reported_not_refused(engine):
    data = modified_copy(
        engine,
        "ALTER TABLE authors ADD COLUMN nickname TEXT",
        "CREATE TABLE notes (body TEXT)",
    )
    report = inspect_file(data, Base.metadata)
    assert report.ok and report.extra_tables == ["notes"]
    authors = next(t for t in report.tables if t.name == "authors")
    assert authors.extra_columns == ["nickname"] and authors.rows_in_file > 0
    assert any("nickname" in w for w in report.warnings)

    mismatched = modified_copy(
        engine,
        "CREATE TABLE t2 (id INTEGER PRIMARY KEY, name REAL)",
        "INSERT INTO t2 SELECT id, name FROM tags",
        "DROP TABLE tags",
        "ALTER TABLE t2 RENAME TO tags",
    )
    report = inspect_file(mismatched, Base.metadata)
    tags = next(t for t in report.tables if t.name == "tags")
    assert report.ok and tags.type_mismatches == [{"column": "name", "expected": "VARCHAR(50)", "found": "REAL"}]


def test_a_file_whose_rows_break_references_is_refused(engine):
    data = modified_copy(engine, "PRAGMA foreign_keys=OFF", "UPDATE books SET author_id = 999 WHERE id = 1")
    before = rows(engine, "SELECT author_id FROM books WHERE id = 1")
    state = State(engine=engine)
    events = list(agent().import_database(state, data))
    error = of_type(events, "error")[0]
    assert "author_id = 999" in error.message and state.pending is None
    assert rows(engine, "SELECT author_id FROM books WHERE id = 1") == before


def test_importing_the_same_rows_changes_nothing(engine):
    events = list(agent().import_database(State(engine=engine), file_bytes(engine)))
    assert "nothing to import" in of_type(events, "error")[0].message


def test_check_import_reports_without_changing_anything(tmp_path, engine):
    path = tmp_path / "copy.sqlite"
    path.write_bytes(modified_copy(engine, "DELETE FROM orders WHERE 0"))
    report = agent().check_import(State(engine=engine), path)
    assert report.ok and all(t.found for t in report.tables)
    books = next(t for t in report.tables if t.name == "books")
    assert books.rows_in_file == books.rows_now


@pytest.fixture
def engine():
    eng = create_demo_engine()
    yield eng
    eng.dispose()
