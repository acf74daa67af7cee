"""Hostile steps on PostgreSQL: each is refused or stopped, and the database is unchanged.

Every test runs model code through the real loop (validator, run-time layer, executor,
step transaction) against the demo bookshop on a throwaway cluster, connected as a
least-privilege role, and compares the database (seen through a second, superuser
connection) before and after.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.database.postgres_guard import classify
from py_agent.demo import Base

from helpers import of_type

pytestmark = [pytest.mark.postgres, pytest.mark.cpython_only]

DONE = {"message": "done", "code": ""}


@pytest.fixture(scope="module")
def shared_demo(postgres_cluster, postgres_demo_template):
    """One demo database for the hostile cases: each must leave it exactly as it was."""
    from helpers import PostgresDemo

    name = "hostile_demo"
    postgres_cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_demo_template}"')
    demo = PostgresDemo(postgres_cluster, name)
    demo.before = snapshot(demo.admin_url)
    yield demo
    demo.drop()


@pytest.fixture(autouse=True)
def postgres_workspaces(monkeypatch):
    """PostgreSQL engines get PostgresDatabase (what LocalWorkspace does once trust's seam is in)."""
    import py_agent.workspace as workspace
    from py_agent.database import Database
    from py_agent.database.postgres import PostgresDatabase

    def pick(bind, **options):
        return (PostgresDatabase if bind.dialect.name == "postgresql" else Database)(bind, **options)

    monkeypatch.setattr(workspace, "Database", pick)


def snapshot(url: str) -> dict[str, list]:
    """Every row of every demo table, and the session-level facts a step could change."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = [t.name for t in Base.metadata.sorted_tables]
            data = {t: conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")).all() for t in tables}
            data["_schema"] = conn.execute(
                text("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2")
            ).all()
            data["_roles"] = conn.execute(text("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1")).all()
            data["_large_objects"] = conn.execute(text("SELECT count(*) FROM pg_largeobject_metadata")).all()
        return data
    finally:
        engine.dispose()


def run_step(state: State, code: str, **options) -> list:
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": code}, DONE]), approve=None, **options)
    state.messages.append(UserMessage("try this"))
    return list(agent.run(state))


HOSTILE = {
    "commit": "session.add(Tag(name='early'))\nsession.flush()\nsession.execute(text('COMMIT'))",
    "rollback": "session.execute(text('ROLLBACK'))",
    "end": "session.execute(text('END'))",
    "prepare transaction": "session.execute(text(\"PREPARE TRANSACTION 'x'\"))",
    "begin and commit in one string": "session.execute(text(\"INSERT INTO tags (name) VALUES ('a'); COMMIT; INSERT INTO tags (name) VALUES ('b')\"))",
    "set role": "session.execute(text('SET ROLE postgres'))",
    "set local role": "session.execute(text('SET LOCAL ROLE postgres'))",
    "set session authorization": "session.execute(text('SET SESSION AUTHORIZATION postgres'))",
    "reset all": "session.execute(text('RESET ALL'))",
    "set statement_timeout": "session.execute(text('SET statement_timeout = 0'))",
    "set search_path": "session.execute(text('SET search_path = pg_temp, public'))",
    "set_config": "session.execute(text(\"SELECT set_config('statement_timeout', '0', false)\"))",
    "set_config hidden in a subquery": "session.execute(text(\"SELECT * FROM (SELECT pg_catalog.set_config('role', 'postgres', true)) s\"))",
    "set transaction read write": "session.execute(text('SET TRANSACTION READ WRITE'))",
    "drop table": "session.execute(text('DROP TABLE order_items'))",
    "alter table": "session.execute(text('ALTER TABLE books ADD COLUMN extra text'))",
    "create table": "session.execute(text('CREATE TABLE evil (a int)'))",
    "create temp table": "session.execute(text('CREATE TEMP TABLE scratch (a int)'))",
    "truncate": "session.execute(text('TRUNCATE book_tags'))",
    "grant": "session.execute(text('GRANT ALL ON books TO PUBLIC'))",
    "create role": "session.execute(text('CREATE ROLE intruder SUPERUSER'))",
    "dblink": "session.execute(text(\"SELECT dblink_exec('dbname=postgres', 'DROP TABLE x')\"))",
    "create extension": "session.execute(text('CREATE EXTENSION dblink'))",
    "foreign server": "session.execute(text(\"CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres')\"))",
    "copy to program": "session.execute(text(\"COPY books TO PROGRAM 'cat > /tmp/stolen'\"))",
    "copy from file": "session.execute(text(\"COPY tags FROM '/etc/passwd'\"))",
    "read a server file": "print(session.execute(text(\"SELECT pg_read_file('/etc/passwd')\")).scalar())",
    "large object import": "session.execute(text(\"SELECT lo_import('/etc/passwd')\"))",
    "large object create": "session.execute(text('SELECT lo_create(0)'))",
    "do block": "session.execute(text(\"DO $$ BEGIN EXECUTE 'DROP TABLE order_items'; END $$\"))",
    "terminate other sessions": "session.execute(text('SELECT pg_terminate_backend(pid) FROM pg_stat_activity'))",
    "advisory session lock": "session.execute(text('SELECT pg_advisory_lock(1)'))",
    "listen": "session.execute(text('LISTEN channel'))",
    "notify": "session.execute(text(\"SELECT pg_notify('channel', 'hi')\"))",
    "setval": "session.execute(text(\"SELECT setval('tags_id_seq', 1)\"))",
    "discard temp (the capture table)": "session.execute(text('DISCARD TEMP'))",
    "the capture table": "session.execute(text('DELETE FROM pg_temp.py_agent_capture'))",
    "py-agent's history": "session.execute(text('DELETE FROM py_agent.history'))",
    "query in a string": "session.execute(text(\"SELECT query_to_xml('DELETE FROM tags RETURNING 1', true, true, '')\"))",
    "lock table": "session.execute(text('LOCK TABLE books IN ACCESS EXCLUSIVE MODE'))",
    "declare cursor with hold": "session.execute(text('DECLARE c CURSOR WITH HOLD FOR SELECT * FROM books'))",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_statements_are_refused_and_change_nothing(shared_demo, name):
    state = State(engine=shared_demo.engine)
    events = run_step(state, HOSTILE[name])
    result = of_type(events, "execution_result")[0]
    assert result.error, f"{name} ran: {result.output}"
    assert "not authorized" in result.error or "read-only" in result.error or "permission denied" in result.error, result.error
    assert not of_type(events, "approval_required"), name
    # the connection is still the agent's, usable and guarded
    events = run_step(state, "print(session.scalar(select(func.count()).select_from(Tag)))")
    assert of_type(events, "execution_result")[0].error is None
    state.close()
    assert snapshot(shared_demo.admin_url) == shared_demo.before


def test_refusals_say_what_to_do_instead(postgres_demo):
    state = State(engine=postgres_demo.engine)
    error = of_type(run_step(state, "session.execute(text('COMMIT'))"), "execution_result")[0].error
    assert "COMMIT is done by py-agent" in error and "session.commit() is fine" in error
    error = of_type(run_step(state, "session.execute(text('TRUNCATE tags'))"), "execution_result")[0].error
    assert "use DELETE FROM" in error
    error = of_type(run_step(state, "session.execute(text('DROP TABLE order_items'))"), "execution_result")[0].error
    assert "DROP TABLE order_items" in error and "schema" in error
    state.close()


def test_a_runaway_query_is_stopped_by_the_statement_timeout(postgres_demo):
    state = State(engine=postgres_demo.engine)
    started = time.monotonic()
    events = run_step(state, "session.execute(text('SELECT pg_sleep(30)'))", timeout=1.5)
    elapsed = time.monotonic() - started
    error = of_type(events, "execution_result")[0].error
    assert "time limit" in error and elapsed < 10
    # and a recursive query without end, through the ORM's connection
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    events = run_step(state, f"session.execute(text({endless!r})).scalar()", timeout=1.0)
    assert "time limit" in of_type(events, "execution_result")[0].error
    # the session goes on as usual
    events = run_step(state, "print(session.scalar(select(func.count()).select_from(Book)))")
    assert of_type(events, "execution_result")[0].output.strip().isdigit()
    state.close()


def test_a_step_interrupted_inside_the_driver_gets_a_fresh_connection(postgres_demo, monkeypatch):
    """Should the step's own timer fire before PostgreSQL's timeout, the connection is replaced."""
    from py_agent.database.postgres import PostgresDatabase

    monkeypatch.setattr(PostgresDatabase, "_timeout_ms", lambda self: None)  # no statement timeout at all
    state = State(engine=postgres_demo.engine)
    events = run_step(state, "session.add(Tag(name='interrupted'))\nsession.flush()\nsession.execute(text('SELECT pg_sleep(4)'))", timeout=1.0)
    assert "StepTimeout" in of_type(events, "execution_result")[0].error
    events = run_step(state, "print(session.scalar(select(func.count()).select_from(Tag).where(Tag.name == 'interrupted')))")
    assert of_type(events, "execution_result")[0].output.strip() == "0"
    state.close()


def test_reads_run_read_only_so_a_select_cannot_write_through_a_function(postgres_demo):
    with postgres_demo.admin_engine().begin() as conn:  # an app function that writes
        conn.execute(text(
            "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO tags (name) VALUES ('sneaky') RETURNING 1 $$"
        ))
    before = snapshot(postgres_demo.admin_url)
    state = State(engine=postgres_demo.engine)
    for code in ("print(session.execute(text('SELECT sneaky()')).scalar())", "print(session.execute(text(\"SELECT nextval('tags_id_seq')\")).scalar())"):
        error = of_type(run_step(state, code), "execution_result")[0].error
        assert "read-only transaction" in error and "reads cannot change anything" in error
    # a write statement may call it: then the row is captured and needs approval like any write
    events = run_step(state, "session.execute(text('INSERT INTO tags (name) SELECT sneaky()::text'))")
    required = of_type(events, "approval_required")[0]
    assert required.tables["tags"]["inserted"] == 2
    state.resume(False)
    list(Agent(base=Base, model=ScriptedProvider([DONE]), approve=None).run(state))
    state.close()
    assert snapshot(postgres_demo.admin_url) == before


def test_a_failed_statement_is_rolled_back_alone(postgres_demo):
    state = State(engine=postgres_demo.engine)
    code = (
        "session.execute(text(\"INSERT INTO tags (name) VALUES ('kept')\"))\n"
        "try:\n"
        "    session.execute(text('SELECT 1/0'))\n"
        "except Exception as e:\n"
        "    print('failed:', type(e).__name__)\n"
        "print(session.scalar(text(\"SELECT count(*) FROM tags WHERE name = 'kept'\")))"
    )
    events = run_step(state, code)
    assert of_type(events, "execution_result")[0].output.split() == ["failed:", "DataError", "1"]
    assert of_type(events, "approval_required")[0].tables["tags"]["inserted"] == 1
    state.close()


def test_a_seal_cannot_be_broken_by_a_write_the_guard_did_not_see(postgres_demo):
    from py_agent.database import CommitRefused
    from py_agent.database.postgres import PostgresDatabase
    from py_agent.demo import Tag

    db = PostgresDatabase(postgres_demo.engine)
    db.begin_step()
    db.session.add(Tag(name="shown"))
    db.finish_step()
    with db.guard.as_internal():  # as if something got past the parser
        db.pg.execute("INSERT INTO tags (name) VALUES ('not shown')")
    with pytest.raises(CommitRefused, match="after they were shown"):
        db.commit_step()
    db.close()
    with postgres_demo.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tags WHERE name IN ('shown', 'not shown')")).scalar() == 0


def test_the_least_privilege_role_passes_the_check_and_a_superuser_does_not(postgres_demo):
    from py_agent.database.postgres import PostgresDatabase
    from py_agent.database.postgres_setup import LeastPrivilegeError

    db = PostgresDatabase(postgres_demo.engine, strict=True)
    assert db.role.least_privilege and not db.role.missing
    db.close()
    admin = postgres_demo.admin_engine()
    with pytest.raises(LeastPrivilegeError) as refused:
        PostgresDatabase(admin, strict=True)
    assert "superuser" in refused.value.message and "postgres_setup" in refused.value.hint
    admin.dispose()


def test_an_unprepared_database_says_how_to_prepare_it(postgres_cluster, postgres_url):
    from py_agent.database.postgres import PostgresDatabase
    from py_agent.errors import ConfigurationError

    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text("CREATE TABLE things (id int PRIMARY KEY)"))
        conn.execute(text("CREATE ROLE lonely LOGIN"))
        conn.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON things TO lonely"))
    other = create_engine(postgres_url.replace("postgres@", "lonely@", 1))
    with pytest.raises(ConfigurationError) as refused:
        PostgresDatabase(other)
    assert "not installed" in refused.value.message and "postgres_setup --url ADMIN_URL --role" in refused.value.hint
    other.dispose(), admin.dispose()


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT * FROM books", "read"),
        ("WITH t AS (DELETE FROM tags RETURNING 1) SELECT * FROM t", "write"),
        ("/* hi */ delete from tags", "write"),
        ("MERGE INTO tags t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE", "write"),
        ("SELECT * FROM books FOR UPDATE", "write"),
        ("EXPLAIN ANALYZE DELETE FROM tags", "write"),
        ("EXPLAIN DELETE FROM tags", "read"),
        ("SAVEPOINT sa_savepoint_1", "savepoint"),
        ("SELECT 1; COMMIT", "refused"),
        ("SELECT %(param_1)s::int", "read"),
    ],
)
def test_statements_are_classified_by_the_postgres_parser(sql, kind):
    assert classify(sql).kind == kind


def test_the_setup_command_prepares_a_database_and_checks_roles(postgres_cluster, postgres_url, capsys):
    from py_agent.database.postgres_setup import main

    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text("CREATE TABLE things (id serial PRIMARY KEY, what text)"))
        conn.execute(text("CREATE ROLE thing_app LOGIN"))
    admin.dispose()
    assert main(["--url", postgres_url, "--role", "thing_app"]) == 0
    assert "change capture on 1 table(s)" in capsys.readouterr().out
    app_url = postgres_url.replace("postgres@", "thing_app@", 1)
    assert main(["--url", app_url, "--check"]) == 0
    assert "has what py-agent needs and nothing more" in capsys.readouterr().out
    assert main(["--url", postgres_url, "--check"]) == 1
    assert "superuser" in capsys.readouterr().out
    # and the prepared role works: its writes are captured row by row
    from py_agent.database.postgres import PostgresDatabase

    db = PostgresDatabase(create_engine(app_url), strict=True)
    db.begin_step()
    db.session.execute(text("INSERT INTO things (what) VALUES ('x')"))
    assert db.finish_step().rows["things"]["inserted"] == [{"id": 1, "what": "x"}]
    db.rollback_step()
    db.close()
