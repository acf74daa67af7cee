"""The core tests on PostgreSQL: loop, transactions, approvals, previews, undo, change detection.

The cases of the SQLite suites that are not about SQLite itself run here unchanged, with
``engine`` the seeded demo on PostgreSQL as a least-privilege role (imported below);
the rest have PostgreSQL variants in this file, spelled in PostgreSQL's SQL.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.database import UndoError
from py_agent.demo import Base

from helpers import of_type

# The SQLite suites' own cases, run again with `engine` on PostgreSQL.
from test_approvals import (  # noqa: F401
    test_a_callable_sees_the_step_and_can_decline,
    test_an_async_callable_can_approve,
    test_read_only_steps_need_no_approval,
    test_resume_false_rolls_back_and_tells_the_model,
)
from test_loop import (  # noqa: F401
    test_a_turn_writes_runs_feeds_back_and_commits,
    test_an_error_rolls_the_step_back_and_keeps_what_was_printed,
    test_constraint_errors_at_flush_roll_back,
    test_module_level_run_and_resume,
    test_the_model_sees_results_and_conversation_continues_with_same_namespace,
    test_transcripts_resume_a_conversation,
)
from test_trust_detection import (  # noqa: F401
    test_a_savepoint_rolled_back_inside_a_step_is_not_a_write,
    test_drop_table_is_refused_with_a_clear_message,
)
from test_trust_preview import (  # noqa: F401
    test_a_callable_approver_sees_the_rows,
    test_a_row_changed_back_within_the_step_needs_no_approval,
    test_a_row_inserted_and_changed_in_one_step_shows_once_with_its_final_values,
    test_bulk_changes_are_capped_but_counted_exactly,
    test_inserted_updated_and_deleted_rows_are_shown_with_their_values,
    test_preview_events_round_trip_through_json,
    test_tags_table_stays_queryable_after_preview,
)
from test_trust_seal import (  # noqa: F401
    test_a_before_commit_listener_in_a_read_only_step_is_shown_not_smuggled,
    test_an_engine_commit_listener_cannot_add_rows_at_commit_time,
    test_an_engine_rollback_listener_cannot_write_when_a_step_is_declined,
    test_mapper_and_after_begin_listeners_write_inside_the_step_and_are_shown,
    test_the_model_cannot_end_the_transaction_itself,
)

pytestmark = [pytest.mark.postgres, pytest.mark.cpython_only]

DONE = {"message": "done", "code": ""}


@pytest.fixture
def engine(postgres_demo):
    """The seeded demo on PostgreSQL, connected as the least-privilege role."""
    return postgres_demo.engine


@pytest.fixture(autouse=True)
def postgres_workspaces(monkeypatch):
    """PostgreSQL engines get PostgresDatabase (what LocalWorkspace does once trust's seam is in)."""
    import py_agent.workspace as workspace
    from py_agent.database import Database
    from py_agent.database.postgres import PostgresDatabase

    def pick(bind, **options):
        return (PostgresDatabase if bind.dialect.name == "postgresql" else Database)(bind, **options)

    monkeypatch.setattr(workspace, "Database", pick)


def count(engine, table: str, where: str = "TRUE") -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar()


def snapshot(engine) -> dict[str, list]:
    """Every row of every app table, as PostgreSQL has them (what an undo must restore exactly)."""
    with engine.connect() as conn:
        names = [t.name for t in Base.metadata.sorted_tables]
        return {n: sorted(conn.execute(text(f'SELECT * FROM "{n}"')).all(), key=repr) for n in names}


def run_paused(engine, code: str, state: State | None = None, **options):
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": code}, DONE]), approve=None, **options)
    state = state or State(engine=engine)
    state.messages.append(UserMessage("go"))
    return list(agent.run(state)), state


def decide(state: State, approved: bool) -> list:
    state.resume(approved)
    return list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state))


def turn_of(state: State, request: str, *codes: str, **options) -> list:
    replies = [{"message": "", "code": c} for c in codes] + [DONE]
    state.messages.append(UserMessage(request))
    return list(Agent(base=Base, model=ScriptedProvider(replies), **options).run(state))


# -- change detection -----------------------------------------------------------------------------

WRITES = {
    "cte delete": ("session.execute(text('WITH t AS (SELECT 1) DELETE FROM book_tags WHERE tag_id IN (SELECT id FROM tags)'))", "book_tags", "deleted"),
    "data-modifying cte": ("session.execute(text('WITH gone AS (DELETE FROM book_tags RETURNING *) SELECT count(*) FROM gone')).scalar()", "book_tags", "deleted"),
    "comment first": ("session.execute(text('/* hi */ DELETE FROM book_tags'))", "book_tags", "deleted"),
    "lowercase + newline": ("session.execute(text('\\n  update\\n books set stock = stock + 1'))", "books", "updated"),
    "upsert": (
        "session.execute(text(\"INSERT INTO tags (id, name) VALUES (1, 'upserted') ON CONFLICT (id) DO UPDATE SET name = excluded.name\"))",
        "tags",
        "updated",
    ),
    "merge": (
        "session.execute(text(\"MERGE INTO tags t USING (VALUES (1, 'merged')) AS s(id, name) ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET name = s.name\"))",
        "tags",
        "updated",
    ),
    "insert select": ("session.execute(text(\"INSERT INTO tags (name) SELECT name || '!' FROM tags\"))", "tags", "inserted"),
    "returning": ("print(session.execute(text(\"UPDATE books SET stock = 0 RETURNING id\")).all())", "books", "updated"),
    "orm": ("session.add(Tag(name='orm tag'))", "tags", "inserted"),
    "core": ("session.execute(insert(Tag).values(name='core tag'))", "tags", "inserted"),
    "core delete cascades": ("session.execute(delete(Book).where(Book.title == 'Spare'))", "book_tags", "deleted"),
    "explain analyze": ("session.execute(text('EXPLAIN ANALYZE DELETE FROM book_tags')).all()", "book_tags", "deleted"),
}


def add_spare_book(engine) -> None:
    """A book with two tags and no orders (so deleting it breaks no reference)."""
    with engine.begin() as conn:
        author = conn.execute(text("SELECT id FROM authors LIMIT 1")).scalar()
        book = conn.execute(text(
            "INSERT INTO books (title, author_id, genre, price, stock, kind) VALUES ('Spare', :a, 'FANTASY', 1, 0, 'book') RETURNING id"
        ), {"a": author}).scalar()
        conn.execute(text("INSERT INTO book_tags SELECT :b, id FROM tags ORDER BY id LIMIT 2"), {"b": book})


@pytest.mark.parametrize("name", list(WRITES))
def test_every_spelling_of_a_write_pauses_and_commits_nothing(engine, name):
    code, table, op = WRITES[name]
    add_spare_book(engine)
    before = snapshot(engine)
    events, state = run_paused(engine, code)
    assert events[-1].reason == "paused", [e for e in events if e.type in ("execution_result", "error")]
    assert of_type(events, "approval_required")[0].tables[table][op] >= 1
    decide(state, False)
    state.close()
    assert snapshot(engine) == before


def test_a_delete_that_breaks_references_is_refused_by_postgres_with_the_tables_named(engine):
    events, _ = run_paused(engine, "session.execute(text('WITH t AS (SELECT 1) DELETE FROM authors'))")
    error = of_type(events, "execution_result")[0].error
    assert "foreign key" in error and "books" in error and "authors" in error
    assert not of_type(events, "approval_required")
    assert count(engine, "authors") > 0


def test_an_app_trigger_and_a_cascade_are_shown_too(postgres_demo):
    with postgres_demo.admin_engine().begin() as conn:  # the app's own schema, made by its owner
        conn.execute(text("CREATE TABLE audit (id serial PRIMARY KEY, what text)"))
        conn.execute(text("CREATE FUNCTION log_tag() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (what) VALUES (NEW.name); RETURN NULL; END $$"))
        conn.execute(text("CREATE TRIGGER tag_audit AFTER INSERT ON tags FOR EACH ROW EXECUTE FUNCTION log_tag()"))
        conn.execute(text("GRANT SELECT, INSERT ON audit TO py_agent_app; GRANT USAGE ON SEQUENCE audit_id_seq TO py_agent_app"))
    from py_agent.database.postgres_setup import setup

    setup(postgres_demo.admin_url, role="py_agent_app")  # after a migration: the new table gets the capture
    engine = postgres_demo.engine
    add_spare_book(engine)
    events, state = run_paused(engine, "session.add(Tag(name='audited'))\nsession.execute(delete(Book).where(Book.title == 'Spare'))")
    tables = of_type(events, "approval_required")[0].tables
    assert tables["audit"]["inserted"] == 1 and tables["tags"]["inserted"] == 1
    assert tables["books"]["deleted"] == 1 and tables["book_tags"]["deleted"] == 2
    state.close()


def test_a_write_to_a_table_without_the_capture_still_counts(postgres_demo):
    with postgres_demo.admin_engine().begin() as conn:  # a table added after set-up: no trigger yet
        conn.execute(text("CREATE TABLE notes (id serial PRIMARY KEY, body text)"))
        conn.execute(text("GRANT SELECT, INSERT ON notes TO py_agent_app; GRANT USAGE ON SEQUENCE notes_id_seq TO py_agent_app"))
    events, state = run_paused(postgres_demo.engine, "session.execute(text(\"INSERT INTO notes (body) VALUES ('unseen')\"))")
    required = of_type(events, "approval_required")[0]
    assert "notes" not in required.tables
    decide(state, True)
    point = state.history[-1]
    assert point.undoable is False and "track" in point.note
    state.close()


def test_host_writes_between_steps_do_not_leak_into_a_step(engine):
    from py_agent.database.postgres import PostgresDatabase
    from py_agent.demo import Tag

    db = PostgresDatabase(engine)
    db.session.add(Tag(name="host wrote this"))
    db.session.commit()  # the host's own write, between steps
    db.begin_step()
    db.session.execute(text("UPDATE books SET stock = stock WHERE false"))
    assert not db.finish_step()
    db.commit_step()
    db.close()
    assert count(engine, "tags", "name = 'host wrote this'") == 1


def test_a_paused_step_is_invisible_to_others_until_approved(engine):
    events, state = run_paused(engine, "session.add(Author(name='Pending Person'))")
    assert events[-1].reason == "paused"
    assert count(engine, "authors", "name = 'Pending Person'") == 0
    # the host may not write on the paused step's connection
    from py_agent.demo import Tag

    state.session.add(Tag(name="added while waiting"))
    with pytest.raises(Exception, match="already shown for approval"):
        state.session.flush()
    state.session.rollback()
    events = decide(state, True)
    assert of_type(events, "changes")[0].status == "committed"
    assert count(engine, "authors", "name = 'Pending Person'") == 1
    assert count(engine, "tags", "name = 'added while waiting'") == 0
    state.close()


def test_schema_changes_need_approval_when_the_policy_allows_them(postgres_demo):
    # The least-privilege role cannot create tables at all; the tables' owner can, with the policy.
    admin = postgres_demo.admin_engine()
    code = "session.execute(text('CREATE TABLE notes (id serial PRIMARY KEY, body text)'))"
    events, state = run_paused(admin, code, allow_schema_changes=True)
    required = of_type(events, "approval_required")[0]
    assert required.schema == ["CREATE TABLE notes"]
    decide(state, False)
    state.close()
    events, state = run_paused(postgres_demo.engine, code, allow_schema_changes=True)
    assert "permission denied" in of_type(events, "execution_result")[0].error
    state.close()
    admin.dispose()


# -- undo and history -----------------------------------------------------------------------------------

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
    [point] = state.history
    assert point.kind == "turn" and point.undoable and point.tables["authors"]["inserted"] == 1
    assert {e.point["id"] for e in of_type(events, "history_point")} == {point.id}
    undone = state.undo()
    assert snapshot(engine) == start
    assert undone.tables["authors"]["deleted"] == 1 and undone.rows["authors"]["deleted"][0]["name"] == "J. R. R. Tolkien"
    first, second = state.history
    assert first.undone and second.kind == "undo" and second.reverts == (first.id,)
    state.close()


def test_undo_refuses_when_rows_changed_since_and_names_them(engine):
    state = State(engine=engine)
    turn_of(state, "rename", "session.get(Tag, 1).name = 'renamed'")
    with engine.begin() as conn:  # someone else changes the row afterwards
        conn.execute(text("UPDATE tags SET name = 'changed by someone' WHERE id = 1"))
    before = snapshot(engine)
    with pytest.raises(UndoError, match=r"tags \(id=1\)"):
        state.undo()
    assert snapshot(engine) == before
    state.close()


def test_restore_goes_back_several_turns_and_a_cascade_comes_back(engine):
    state = State(engine=engine)
    start = snapshot(engine)
    turn_of(state, "one", "session.add(Tag(name='one'))")
    turn_of(state, "two", "session.execute(delete(Tag).where(Tag.id == 1))")  # cascades to book_tags
    assert state.history[-1].tables["book_tags"]["deleted"] >= 1
    restored = state.restore(0)
    assert snapshot(engine) == start and restored.kind == "restore"
    state.close()


def test_exact_values_come_back(postgres_demo):
    with postgres_demo.admin_engine().begin() as conn:
        conn.execute(text(
            "CREATE TABLE samples (id int PRIMARY KEY, big numeric(40, 20), f float8, b bytea, at timestamptz, "
            "doc jsonb, tags text[], small real)"
        ))
        conn.execute(text(
            "INSERT INTO samples VALUES (1, 12345678901234567890.12345678901234567890, 'NaN', '\\x00ff10', "
            "'2024-02-29 12:34:56.789+00', '{\"a\": [1, 2.50, {\"b\": null}]}', ARRAY['x', 'y'], 0.1)"
        ))
        conn.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON samples TO py_agent_app"))
    from py_agent.database.postgres_setup import setup

    setup(postgres_demo.admin_url, role="py_agent_app", grant_tables=False)
    engine = postgres_demo.engine

    def rows():
        with engine.connect() as conn:
            return conn.execute(text("SELECT samples::text FROM samples ORDER BY id")).all()  # (NaN != NaN in Python)

    before = rows()
    state = State(engine=engine)
    events = turn_of(state, "wipe", "session.execute(text('DELETE FROM samples'))")
    preview = of_type(events, "changes")[0].rows["samples"]["deleted"][0]
    assert preview["b"] == "\\x00ff10" and preview["big"] == "12345678901234567890.12345678901234567890"
    assert json.loads(json.dumps(preview)) == preview
    state.undo()
    assert rows() == before
    state.close()


def test_each_conversation_has_its_own_history(engine):
    from py_agent.database.postgres import PostgresDatabase

    def conversation(name):
        state = State(engine=engine)
        state._workspace = _workspace(PostgresDatabase(engine, conversation=name))
        state.session = state._workspace.session
        return state

    alice, bob = conversation("alice"), conversation("bob")
    turn_of(alice, "alice's", "session.add(Tag(name='from alice'))")
    turn_of(bob, "bob's", "session.add(Tag(name='from bob'))")
    assert [p.request for p in alice.history] == ["alice's"] and [p.request for p in bob.history] == ["bob's"]
    alice.undo()  # undoes alice's turn, not bob's (the later one)
    assert count(engine, "tags", "name = 'from alice'") == 0 and count(engine, "tags", "name = 'from bob'") == 1
    with pytest.raises(UndoError, match="nothing to undo"):
        alice.undo(), alice.undo()
    alice.close(), bob.close()


def _workspace(db):
    from py_agent.workspace import LocalWorkspace

    return LocalWorkspace(database=db)


def test_a_runaway_query_is_stopped_by_the_time_bound(turn):
    slow = "session.execute(text('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c')).scalar()"
    events, _, _ = turn([{"message": "", "code": slow}, DONE], timeout=0.5)
    assert "time limit" in of_type(events, "execution_result")[0].error
    assert events[-1].reason == "done"


def test_the_superuser_url_also_works_and_is_warned_about(postgres_demo):
    admin = create_engine(postgres_demo.admin_url)
    from py_agent.database.postgres import PostgresDatabase

    db = PostgresDatabase(admin)
    assert not db.role.least_privilege and "superuser" in db.role.message()
    db.close()
    admin.dispose()
