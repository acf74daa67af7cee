"""Write detection from the engine, not the text: every write pauses for approval.

Under ``approve=None`` each step that changes anything, however the SQL is spelled,
must stop with ``approval_required`` and leave the database unchanged until decided;
schema changes are refused unless the policy allows them.
"""

from __future__ import annotations

import pytest
from helpers import of_type
from sqlalchemy import text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.database import Database
from py_agent.demo import Author, Base, OrderItem, Tag

DONE = {"message": "done", "code": ""}


def count(engine, table) -> int:
    name = table if isinstance(table, str) else table.__tablename__
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar()


def paused_turn(engine, code: str, **options):
    """One step under approve=None; returns (events, state)."""
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": code}, DONE]), approve=None, **options)
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    return list(agent.run(state)), state


WRITES = {
    "cte delete": ("session.execute(text(\"WITH t AS (SELECT 1) DELETE FROM book_tags WHERE tag_id IN (SELECT id FROM tags)\"))", "book_tags", "deleted"),
    "comment first": ("session.execute(text('/* hi */ DELETE FROM book_tags'))", "book_tags", "deleted"),
    "lowercase + newline": ("session.execute(text('\\n  update\\n books set stock = stock + 1'))", "books", "updated"),
    "replace": ("session.execute(text(\"REPLACE INTO tags (id, name) VALUES (1, 'renamed by replace')\"))", "tags", "updated"),
    "upsert": (
        "session.execute(text(\"INSERT INTO tags (id, name) VALUES (1, 'upserted') ON CONFLICT(id) DO UPDATE SET name = excluded.name\"))",
        "tags",
        "updated",
    ),
    "insert select": ("session.execute(text('INSERT INTO tags (name) SELECT name || \\'!\\' FROM tags'))", "tags", "inserted"),
    "orm": ("session.add(Tag(name='orm tag'))", "tags", "inserted"),
    "core": ("session.execute(insert(Tag).values(name='core tag'))", "tags", "inserted"),
    "core delete cascades": ("session.execute(delete(Book).where(Book.title == 'Spare'))", "book_tags", "deleted"),
}


def add_spare_book(engine) -> None:
    """A book with two tags and no orders (so deleting it breaks no reference)."""
    with engine.begin() as conn:
        author = conn.exec_driver_sql("SELECT id FROM authors LIMIT 1").scalar()
        conn.exec_driver_sql(
            f"INSERT INTO books (title, author_id, genre, price, stock, kind) VALUES ('Spare', {author}, 'FANTASY', 1, 0, 'book')"
        )
        book = conn.exec_driver_sql("SELECT id FROM books WHERE title = 'Spare'").scalar()
        conn.exec_driver_sql(f"INSERT INTO book_tags SELECT {book}, id FROM tags LIMIT 2")


@pytest.mark.parametrize("name", list(WRITES))
def test_every_spelling_of_a_write_pauses_and_commits_nothing(engine, name):
    code, table, op = WRITES[name]
    add_spare_book(engine)
    before = {t: count(engine, t) for t in ("tags", "book_tags", "books")}
    events, state = paused_turn(engine, code)
    assert events[-1].reason == "paused", [e for e in events if e.type in ("execution_result", "error")]
    required = of_type(events, "approval_required")[0]
    assert required.tables[table][op] >= 1
    assert state.pending is not None
    state.resume(False)
    list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state))
    assert {t: count(engine, t) for t in ("tags", "book_tags", "books")} == before


def test_a_delete_that_breaks_references_is_rolled_back_with_the_rows_named(engine):
    # The issue's own example: authors still have books, so it cannot be committed at all.
    events, _ = paused_turn(engine, 'session.execute(text("WITH t AS (SELECT 1) DELETE FROM authors"))')
    error = of_type(events, "execution_result")[0].error
    assert "FOREIGN KEY" in error and "books" in error and "authors" in error
    assert of_type(events, "changes")[0].status == "rolled_back"
    assert not of_type(events, "approval_required")
    assert count(engine, Author) > 0


def test_an_app_trigger_and_a_cascade_are_shown_too(engine):
    with engine.begin() as conn:  # the host's own schema, made between steps
        conn.exec_driver_sql("CREATE TABLE audit (what TEXT)")
        conn.exec_driver_sql("CREATE TRIGGER tag_audit AFTER INSERT ON tags BEGIN INSERT INTO audit VALUES (NEW.name); END")
    add_spare_book(engine)
    events, state = paused_turn(engine, "session.add(Tag(name='audited'))\nsession.execute(delete(Book).where(Book.title == 'Spare'))")
    tables = of_type(events, "approval_required")[0].tables
    assert tables["audit"]["inserted"] == 1 and tables["tags"]["inserted"] == 1
    assert tables["books"]["deleted"] == 1 and tables["book_tags"]["deleted"] >= 1
    state.close()


def test_drop_table_is_refused_with_a_clear_message(engine):
    events, _ = paused_turn(engine, "session.execute(text('DROP TABLE order_items'))")
    error = of_type(events, "execution_result")[0].error
    assert "not authorized" in error and "DROP TABLE order_items" in error and "schema" in error
    assert not of_type(events, "approval_required")
    assert count(engine, OrderItem) >= 0  # still there


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE x (a)",
        "CREATE INDEX ix ON books (stock)",
        "ALTER TABLE books ADD COLUMN extra TEXT",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TRIGGER t AFTER INSERT ON tags BEGIN SELECT 1; END",
        "CREATE TEMP TABLE scratch (a)",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA recursive_triggers = OFF",
        "PRAGMA user_version = 7",
        "ATTACH DATABASE ':memory:' AS other",
    ],
)
def test_schema_changes_and_setting_pragmas_are_refused_by_default(engine, sql):
    events, _ = paused_turn(engine, f"session.execute(text({sql!r}))")
    assert "not authorized" in of_type(events, "execution_result")[0].error
    assert not of_type(events, "approval_required")


def test_schema_changes_need_approval_when_the_policy_allows_them(engine):
    code = (
        "session.execute(text('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)'))\n"
        "session.execute(text(\"INSERT INTO notes (body) VALUES ('first')\"))"
    )
    events, state = paused_turn(engine, code, allow_schema_changes=True)
    required = of_type(events, "approval_required")[0]
    assert required.schema == ["CREATE TABLE notes"]
    assert required.tables["notes"]["inserted"] == 1  # the new table's rows are captured too
    assert required.rows["notes"]["inserted"] == [{"id": 1, "body": "first"}]
    state.resume(True)
    events = list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None, allow_schema_changes=True).run(state))
    assert of_type(events, "changes")[0].status == "committed"
    point = state.history[-1]
    assert point.undoable is False and "schema" in point.note
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT body FROM notes").scalar() == "first"


def test_pragmas_that_only_read_are_allowed(turn):
    code = "print(session.execute(text('PRAGMA table_info(books)')).fetchall()[0][1])\nprint(session.execute(text('PRAGMA foreign_keys')).scalar())"
    events, _, _ = turn([{"message": "", "code": code}, DONE], approve=None)
    assert of_type(events, "execution_result")[0].output.split() == ["id", "1"]
    assert events[-1].reason == "done"


def test_py_agent_tables_are_off_limits_to_model_code(engine):
    _, state = paused_turn(engine, "session.add(Tag(name='makes history'))")
    state.resume(True)
    list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state))
    assert state.history  # the history tables exist now
    for sql in (
        "SELECT * FROM py_agent_history",
        "DELETE FROM py_agent_history_rows",
        "UPDATE py_agent_history SET undone = 1",
        "DROP TRIGGER py_agent_0_insert",
        "SELECT py_agent_tick()",
        "DELETE FROM py_agent_capture",
    ):
        state.messages.append(UserMessage("try"))
        events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": f"session.execute(text({sql!r}))"}, DONE]), approve=None).run(state))
        error = of_type(events, "execution_result")[0].error or ""
        assert "belongs to py-agent" in error or "no such" in error, (sql, error)
        assert not of_type(events, "approval_required"), sql


def test_a_savepoint_rolled_back_inside_a_step_is_not_a_write(turn, engine):
    code = (
        "nested = session.begin_nested()\n"
        "session.add(Tag(name='tried'))\n"
        "session.flush()\n"
        "nested.rollback()\n"
        "print(session.scalar(select(func.count()).select_from(Tag)))"
    )
    events, _, _ = turn([{"message": "", "code": code}, DONE], approve=None)
    assert events[-1].reason == "done" and not of_type(events, "approval_required")


def test_a_write_no_trigger_saw_still_counts(engine):
    """total_changes is the cross-check: a change without capture is reported, not lost."""
    db = Database(engine)
    db.begin_step()
    with db.guard.as_internal():  # simulate a table the triggers do not cover
        number = db.capture._numbers[db.capture.shapes["tags"].signature]
        db.raw.execute(f"DROP TRIGGER temp.py_agent_{number}_insert")
    db.session.execute(text("INSERT INTO tags (name) VALUES ('unseen')"))
    changes = db.finish_step()
    assert changes  # a write: it needs approval
    assert changes.untracked and "tags" not in changes.tables
    assert changes.undoable is False
    db.rollback_step()
    db.close()


def test_host_and_model_writes_between_steps_do_not_leak_into_a_step(engine):
    db = Database(engine)
    db.session.add(Tag(name="host wrote this"))
    db.session.commit()  # the host's own write, between steps
    db.begin_step()
    db.session.execute(text("UPDATE books SET stock = stock WHERE 0"))
    assert not db.finish_step()
    db.commit_step()
    db.close()


def test_read_only_steps_create_nothing_in_the_database(tmp_path):
    from py_agent.demo import create_demo_engine

    engine = create_demo_engine(f"sqlite:///{tmp_path / 'ro.db'}")
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(session.scalar(select(func.count()).select_from(Book)))"}, DONE]))
    state = State(engine=engine)
    state.messages.append(UserMessage("count"))
    list(agent.run(state))
    state.close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM sqlite_master ORDER BY name").fetchall() == before
    engine.dispose()

