"""Limits and integrity: the CPython time limit never fires after a step, the memory cap,
foreign keys, engines configured with SQLAlchemy's recipe, and ``State()`` parity."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from helpers import of_type
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.database import memory_engine, sqlite_engine
from py_agent.demo import Author, Base, Book, seed
from py_agent.sandbox.executor import Executor
from py_agent.sandbox.limits import Deadline, MemoryCap, StepTimeout
from py_agent.sandbox.runtime import safe_builtins
from py_agent.sandbox.validator import Policy
from py_agent.sync import run_sync

DONE = {"message": "done", "code": ""}


# -- the time limit ------------------------------------------------------------------------------

def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.cpython_only
def test_an_alarm_arriving_as_the_step_ends_never_escapes_into_host_code():
    """The race: the interval timer fires again while ``__exit__`` runs.

    Simulated exactly: a trace hook raises SIGALRM on the first line of ``Deadline.__exit__``
    (where the old code raised StepTimeout before it had disarmed the timer, which then
    kept firing into the host's code, e.g. inside ``sync.iterate``).
    """
    fired = []

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code is Deadline.__exit__.__code__ and not fired:
            fired.append(True)
            signal.raise_signal(signal.SIGALRM)

    previous = signal.getsignal(signal.SIGALRM)
    try:
        try:
            with Deadline(0.2):
                sys.settrace(tracer)
        finally:
            sys.settrace(None)
        _busy(0.5)  # host code after the step: past the deadline, and then some
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == [True]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.cpython_only
def test_a_timeout_in_a_long_c_call_stops_the_step_and_nothing_fires_later():
    ns = {"__builtins__": safe_builtins(Policy())}
    out = run_sync(Executor(ns, timeout=0.05).run("total = sum(range(40_000_000))"))
    assert "StepTimeout" in out.error and "0.05 s" in out.error
    _busy(0.3)  # the timer fired every 50 ms during the C call: none of that may remain


@pytest.mark.cpython_only
def test_a_step_that_ends_in_time_leaves_no_timer_or_handler_behind():
    previous = signal.getsignal(signal.SIGALRM)
    with Deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is previous


def test_the_deadline_message_names_the_limit():
    assert Deadline(30).message() == "the step ran longer than 30 s and was stopped"
    assert issubclass(StepTimeout, BaseException) and not issubclass(StepTimeout, Exception)


# -- memory -------------------------------------------------------------------------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux only")


@pytest.mark.cpython_only
@linux_only
@pytest.mark.parametrize(
    "code",
    ["huge = bytearray(3 * 10**9)", "from itertools import count\nnumbers = list(count())"],
    ids=["one huge allocation", "a list fed by an endless iterator"],
)
def test_a_step_that_allocates_without_bound_ends_with_a_clear_error(turn, engine, code):
    before = _count(engine, Author)
    replies = [{"message": "", "code": "session.add(Author(name='Half Done'))\nsession.flush()\n" + code}, DONE]
    events, state, _ = turn(replies, memory_limit=300, allowed_imports=["itertools"])
    error = of_type(events, "execution_result")[0].error
    assert "MemoryError" in error and "300 MB" in error and "smaller pieces" in error
    assert of_type(events, "changes")[0].status == "rolled_back"
    assert _count(engine, Author) == before  # the database is intact
    # the process keeps working: the next step allocates normally and commits
    state.messages.append(UserMessage("again"))
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "data = bytearray(50 * 10**6)\nprint(len(data))"}, DONE]), memory_limit=300).run(state))
    assert of_type(events, "execution_result")[0].output.strip() == str(50 * 10**6)


@pytest.mark.cpython_only
@linux_only
def test_the_memory_cap_is_lifted_after_the_step():
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    with MemoryCap(100) as cap:
        assert cap.active and resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    assert resource.getrlimit(resource.RLIMIT_AS) == before


# -- foreign keys -------------------------------------------------------------------------------

def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def test_a_reference_to_a_missing_row_is_refused_with_a_fixable_message(turn, engine):
    before = _count(engine, Book)
    code = "session.add(Book(title='Orphan', author_id=999, genre=Genre.FANTASY, price=1))"
    events, _, _ = turn([{"message": "", "code": code}, DONE])
    error = of_type(events, "execution_result")[0].error
    assert "FOREIGN KEY" in error and "author_id = 999" in error and "authors has no row with id = 999" in error
    assert _count(engine, Book) == before


def test_a_reference_fixed_later_in_the_same_step_is_fine(turn, engine):
    code = (
        "session.add(Book(id=500, title='Early', author_id=900, genre=Genre.FANTASY, price=1))\n"
        "session.flush()\n"
        "session.add(Author(id=900, name='Arrives Later'))\n"
    )
    events, _, _ = turn([{"message": "", "code": code}, DONE])
    assert of_type(events, "execution_result")[0].error is None
    assert of_type(events, "changes")[0].status == "committed"


def test_every_connection_py_agent_opens_enforces_foreign_keys(tmp_path):
    for engine in (memory_engine(), sqlite_engine(f"sqlite:///{tmp_path / 'x.db'}")):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        engine.dispose()
    plain = create_engine("sqlite://")  # a host's engine: py-agent's own connection asks anyway
    state = State(engine=plain)
    assert state.db.raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    state.close()


# -- engines configured the way SQLAlchemy documents (issue 7.7) ---------------------------------

def _recipe_engine(url: str):
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def do_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def do_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


@pytest.mark.parametrize("where", ["file", "memory", "pysqlite"])
def test_engines_with_the_savepoint_recipe_work(tmp_path, where):
    url = {"file": f"sqlite:///{tmp_path / 'r.db'}", "memory": "sqlite://", "pysqlite": f"sqlite+pysqlite:///{tmp_path / 'p.db'}"}[where]
    engine = _recipe_engine(url)
    if where == "memory":

        engine = _recipe_engine_static()
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        seed(s)
        s.commit()
    state = State(engine=engine)
    code = "nested = session.begin_nested()\nsession.add(Author(name='Inner'))\nnested.rollback()\nsession.add(Author(name='Recipe Reader'))"
    state.messages.append(UserMessage("add"))
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": code}, DONE])).run(state))
    assert of_type(events, "execution_result")[0].error is None
    assert of_type(events, "changes")[0].tables["authors"]["inserted"] == 1
    state.undo()
    state.close()
    with Session(engine) as s:
        assert s.scalar(select(func.count()).where(Author.name.in_(["Recipe Reader", "Inner"]))) == 0
    engine.dispose()


def _recipe_engine_static():
    from sqlalchemy.pool import StaticPool

    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def do_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def do_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


# -- State parity with llmalchemy (issue 11.7) -------------------------------------------------

def test_state_without_an_engine_gets_the_mapped_tables_and_its_session_is_live():
    state = State()
    state.messages.append(UserMessage("add"))
    events = list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "session.add(Author(name='First Ever'))"}, DONE])).run(state))
    assert of_type(events, "changes")[0].status == "committed"
    assert state.session is not None
    assert state.session.scalar(select(Author.name)) == "First Ever"


class _Other(DeclarativeBase):
    pass


class _Note(_Other):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)


def test_an_existing_database_is_never_altered(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    _Other.metadata.create_all(engine)
    state = State(engine=engine)
    state.messages.append(UserMessage("look"))
    list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(1)"}, DONE])).run(state))
    with engine.connect() as conn:
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == {"notes"}
    state.close()
    engine.dispose()


def test_the_host_may_read_and_write_between_steps(engine):
    state = State(engine=engine)
    state.messages.append(UserMessage("add"))
    list(Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "session.add(Author(name='Via Agent'))"}, DONE])).run(state))
    state.session.add(Author(name="Via Host"))
    state.session.commit()
    with Session(engine) as s:
        assert s.scalar(select(func.count()).where(Author.name.in_(["Via Agent", "Via Host"]))) == 2
    assert text  # used by the recipe tests' namespace only


def test_databases_other_than_sqlite_get_counts_without_history(engine, monkeypatch):
    """The generic path (row counts from the driver), exercised on SQLite by hiding it."""
    from py_agent.database import Database, UndoError

    monkeypatch.setattr(Database, "_sqlite_connection", lambda self: None)
    db = Database(engine)
    db.begin_step()
    db.session.add(Author(name="Counted Elsewhere"))
    db.session.execute(text("UPDATE books SET stock = stock + 1 WHERE id = 1"))
    changes = db.finish_step()
    assert changes.tables["authors"]["inserted"] == 1
    assert changes and changes.journal is None and changes.rows == {}
    db.commit_step(request="elsewhere")
    assert db.points() == []
    with pytest.raises(UndoError, match="needs a SQLite database"):
        db.undo()
    db.close()
