"""The app contract (py_agent.app): loading a module, the errors that name file and line, the
agent options it gives, and opening a database (create and seed an empty one, never alter one)."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.app import App, AppError, load_app

pytestmark = pytest.mark.cpython_only  # writes modules to disk and imports them

MODELS = """\
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    players: Mapped[list["Player"]] = relationship(back_populates="team")


class Player(Base):
    __tablename__ = "players"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    team: Mapped[Team] = relationship(back_populates="players")
"""

_counter = iter(range(10**6))


def write_app(tmp_path: Path, body: str, *, models: str = MODELS, name: str | None = None) -> Path:
    """A single-file app: the models, then ``body``; a unique module name per test."""
    name = name or f"app_{next(_counter)}_{abs(hash(str(tmp_path))) % 10**6}"
    path = tmp_path / f"{name}.py"
    path.write_text(models + "\n" + textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
def _forget_modules():
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("app_", "pkg_")):
            del sys.modules[name]
    sys.path[:] = path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- loading ---------------------------------------------------------------------------------------

def test_a_file_app_with_every_field(tmp_path: Path) -> None:
    path = write_app(tmp_path, '''
        from py_agent import tool

        def seed(session):
            session.add(Team(name="Reds", players=[Player(name="Ann")]))

        @tool
        def double(x: int) -> int:
            """Twice x."""
            return 2 * x

        tools = [double]
        allowed_imports = ["statistics"]
        allowed_packages = ["tabulate==0.9.0", "python-dateutil>=2.8"]
        prompt = "Team names are unique."
        title = "League"
        description = "Teams and players."
        suggestions = ["Which team has the most players?"]
    ''')
    app = load_app(path)
    assert isinstance(app, App)
    assert app.title == "League" and app.description == "Teams and players."
    assert app.suggestions == ("Which team has the most players?",)
    assert [t.name for t in app.tools] == ["double"]
    assert app.allowed_packages == ("tabulate==0.9.0", "python-dateutil>=2.8")
    assert app.source == path.resolve()
    # loading again gives the same module (mapped classes are not defined twice)
    assert load_app(str(path)).module is app.module

    options = app.agent_options(model="scripted:x", max_loops=3)
    assert options["base"] is app.base and options["max_loops"] == 3 and options["allowed_imports"] == ["statistics"]
    agent = Agent(**options)
    assert "Team names are unique." in agent.system_prompt  # instructions appended to the default prompt
    assert "class Team" in agent.system_prompt and "double" in agent.system_prompt
    assert agent.policy.is_allowed_module("statistics")


def test_a_package_folder_app_with_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg_league"
    pkg.mkdir()
    (pkg / "models.py").write_text(MODELS)
    (pkg / "__init__.py").write_text("from .models import Base, Team, Player\ntitle = 'From a package'\n")
    app = load_app(pkg)
    assert app.name == "pkg_league" and app.title == "From a package"
    assert {m.class_.__name__ for m in app.base.registry.mappers} == {"Team", "Player"}


def test_a_module_name_and_the_default_title() -> None:
    app = load_app("py_agent.demo")
    assert app.title == "Demo" and app.seed is not None and app.suggestions == ()


def test_a_prompt_with_slots_is_a_whole_template(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, 'prompt = "You run a league.\\n{{ SCHEMA }}\\n{{ SYMBOLS }}\\n{{ TOOLS }}"\n'))
    assert app.prompt_is_template
    agent = app.agent(ScriptedProvider([]))
    assert agent.system_prompt.startswith("You run a league.") and "class Team" in agent.system_prompt


def test_instructions_with_braces_are_not_read_as_a_template(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, 'prompt = "Write {{ literally }} and {% this %} as they are."\n'))
    assert not app.prompt_is_template
    assert "Write {{ literally }} and {% this %} as they are." in app.agent(ScriptedProvider([])).system_prompt


# -- errors name the file and the line ---------------------------------------------------------------

def test_syntax_error(tmp_path: Path) -> None:
    path = write_app(tmp_path, "title = 'x'\ndef broken(:\n    pass\n")
    with pytest.raises(AppError) as caught:
        load_app(path)
    assert caught.value.file == str(path) and caught.value.line == line_of(path, "def broken(")
    assert f"{path}:{caught.value.line}: syntax error" in caught.value.message and "def broken(:" in caught.value.message


def test_an_exception_while_importing(tmp_path: Path) -> None:
    path = write_app(tmp_path, "x = 1\nlimit = 10 / 0\n")
    with pytest.raises(AppError) as caught:
        load_app(path)
    assert caught.value.line == line_of(path, "10 / 0") and "ZeroDivisionError" in caught.value.message


def test_a_missing_dependency_says_what_to_install(tmp_path: Path) -> None:
    path = write_app(tmp_path, "import surely_not_installed_pkg\n")
    with pytest.raises(AppError) as caught:
        load_app(path)
    assert caught.value.line == line_of(path, "import surely_not_installed_pkg")
    assert "pip install surely_not_installed_pkg" in caught.value.hint


@pytest.mark.parametrize(
    ("body", "needle", "words"),
    [
        ("Base = 42\n", "Base = 42", "`Base` is int 42, not a SQLAlchemy declarative base"),
        ("Base = Team\n", "Base = Team", "`Base` is a mapped class"),
        ("title = ['League']\n", "title =", "`title` must be a string, not list"),
        ("suggestions = 'Which team?'\n", "suggestions =", "`suggestions` must be a list of strings"),
        ("suggestions = ['ok', '']\n", "suggestions =", "`suggestions[1]` must be a non-empty string"),
        ("tools = [print, 3]\n", "tools =", "`tools[1]` is int 3, not a function"),
        ("allowed_imports = ['statistics', 'not a module']\n", "allowed_imports =", "is not a module name"),
        ("allowed_packages = ['pkg from git+https://x']\n", "allowed_packages =", "is not a requirement"),
        ("prompt = 3\n", "prompt =", "`prompt` must be a string"),
        ("prompt = '{{ SCHEMA }} {% if %}'\n", "prompt =", "syntax error"),
        ("seed = 'rows'\n", "seed =", "`seed` must be a function taking the session"),
        ("def seed():\n    pass\n", "def seed", "must take exactly one argument"),
        ("async def seed(session):\n    pass\n", "async def seed", "is async"),
        ("DATA = 'missing.sqlite'\n", "DATA =", "which does not exist"),
        ("DATA = 'notes.txt'\n", "DATA =", "is not a SQLite database file"),
        ("DEMO = 'bad_demo.json'\n", "DEMO =", "is not valid JSON"),
    ],
)
def test_wrong_fields(tmp_path: Path, body: str, needle: str, words: str) -> None:
    (tmp_path / "notes.txt").write_text("not a database, but long enough")
    (tmp_path / "bad_demo.json").write_text("{not json")
    path = write_app(tmp_path, body)
    with pytest.raises(AppError) as caught:
        load_app(path)
    assert words in caught.value.message
    assert caught.value.file == str(path) and caught.value.line == line_of(path, needle)


def test_no_base(tmp_path: Path) -> None:
    path = write_app(tmp_path, "title = 'x'\n", models="")
    with pytest.raises(AppError, match="defines no `Base`") as caught:
        load_app(path)
    assert "DeclarativeBase" in caught.value.hint


def test_a_base_without_mapped_classes(tmp_path: Path) -> None:
    path = write_app(tmp_path, "", models="from sqlalchemy.orm import DeclarativeBase\nclass Base(DeclarativeBase):\n    pass\n")
    with pytest.raises(AppError, match="has no mapped classes") as caught:
        load_app(path)
    assert caught.value.line == line_of(path, "class Base")


def test_a_broken_relationship_names_the_class(tmp_path: Path) -> None:
    models = MODELS.replace('relationship(back_populates="team")', 'relationship("Nobody")')
    path = write_app(tmp_path, "", models=models)
    with pytest.raises(AppError, match="cannot be set up") as caught:
        load_app(path)
    assert caught.value.line == line_of(path, "class Team")


def test_seed_and_data_together(tmp_path: Path) -> None:
    db = tmp_path / "start.sqlite"
    sqlite3.connect(db).execute("create table t (x)").connection.close()
    path = write_app(tmp_path, "def seed(session):\n    pass\nDATA = 'start.sqlite'\n")
    with pytest.raises(AppError, match="both `seed` and `DATA`"):
        load_app(path)


def test_not_a_path_or_module() -> None:
    with pytest.raises(AppError, match="there is no file or folder"):
        load_app("no/such/app.py")
    with pytest.raises(AppError, match="there is no module named 'no_such_app_module'"):
        load_app("no_such_app_module")


def test_a_folder_without_init(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(MODELS)
    with pytest.raises(AppError, match="not a Python package") as caught:
        load_app(tmp_path)
    assert "models.py" in caught.value.hint


def test_warnings_for_misspelt_fields_and_blocked_imports(tmp_path: Path) -> None:
    path = write_app(tmp_path, "TITLE = 'League'\nallowed_imports = ['os', 'statistics']\nDEMO = 'later.json'\n")
    app = load_app(path)
    text = "\n".join(app.warnings)
    assert f":{line_of(path, 'TITLE')}: `TITLE` is not read by py-agent: did you mean `title`?" in text
    assert "`os` in allowed_imports stays blocked" in text
    assert "later.json, which does not exist yet" in text and app.demo_path is None


# -- the database -------------------------------------------------------------------------------------

SEEDED = '''
def seed(session):
    session.add(Team(name="Reds", players=[Player(name="Ann"), Player(name="Bo")]))
'''


def count(engine: Any, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text(f"select count(*) from {table}")))


def test_an_empty_database_gets_tables_and_seed_and_is_then_left_alone(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, SEEDED))
    url = f"sqlite:///{tmp_path / 'league.sqlite'}"
    engine = app.open_database(url)
    assert count(engine, "players") == 2
    with engine.begin() as connection:
        connection.execute(text("delete from players where name = 'Bo'"))
    engine.dispose()
    again = app.open_database(url)  # existing: not seeded again, not changed
    assert count(again, "players") == 1 and count(again, "teams") == 1


def test_an_existing_database_missing_tables_is_refused_and_not_touched(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, SEEDED))
    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).execute("create table teams (id integer primary key, name text)").connection.commit()
    with pytest.raises(AppError, match="lacks the app's table") as caught:
        app.open_database(f"sqlite:///{db}")
    assert "players" in caught.value.message and "never changes an existing database" in caught.value.hint
    assert inspect(create_engine(f"sqlite:///{db}")).get_table_names() == ["teams"]


def test_a_seed_that_raises_names_its_line_and_leaves_the_database_empty(tmp_path: Path) -> None:
    path = write_app(tmp_path, '''
        def seed(session):
            session.add(Team(name="Reds"))
            raise ValueError("no more teams")
    ''')
    app = load_app(path)
    db = tmp_path / "league.sqlite"
    with pytest.raises(AppError) as caught:
        app.open_database(f"sqlite:///{db}")
    assert "seed() raised ValueError: no more teams" in caught.value.message
    assert caught.value.line == line_of(path, 'raise ValueError("no more teams")')
    assert inspect(create_engine(f"sqlite:///{db}")).get_table_names() == []


def test_data_is_the_starting_file(tmp_path: Path) -> None:
    source = load_app(write_app(tmp_path, SEEDED))
    start = tmp_path / "start.sqlite"
    source.open_database(f"sqlite:///{start}").dispose()
    app = load_app(write_app(tmp_path, "DATA = 'start.sqlite'\n"))
    assert app.data == start.resolve()
    memory = app.open_database()  # in memory
    assert count(memory, "players") == 2
    copy = app.open_database(f"sqlite:///{tmp_path / 'copy.sqlite'}")
    assert count(copy, "players") == 2
    with copy.begin() as connection:
        connection.execute(text("delete from players"))
    assert count(app.open_database(), "players") == 2  # DATA itself is never written


@pytest.mark.postgres
def test_data_into_postgresql_with_sequences_moved_on(tmp_path: Path, postgres_url: str) -> None:
    source = load_app(write_app(tmp_path, SEEDED))
    start = tmp_path / "start.sqlite"
    source.open_database(f"sqlite:///{start}").dispose()
    app = load_app(write_app(tmp_path, "DATA = 'start.sqlite'\n"))
    engine = app.open_database(postgres_url)
    try:
        assert count(engine, "players") == 2
        with engine.begin() as connection:  # a new row gets a fresh id, not a duplicate key
            new_id = connection.scalar(text("insert into players (name, team_id) values ('Cy', 1) returning id"))
        assert new_id == 3
    finally:
        engine.dispose()


def test_a_turn_on_an_app_database(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, SEEDED))
    state = State(engine=app.open_database())
    state.messages.append(UserMessage("add Cy to the Reds"))
    replies = [{"message": "Adding.", "code": "team = session.scalars(select(Team)).one()\nteam.players.append(Player(name='Cy'))"},
               {"message": "Done.", "code": ""}]
    events = list(app.agent(ScriptedProvider(replies)).run(state))
    assert events[-1].reason == "done"
    with state.engine.connect() as connection:  # type: ignore[union-attr]
        assert connection.scalar(select(func.count()).select_from(app.base.metadata.tables["players"])) == 3


def test_bad_urls_say_what_to_do() -> None:
    app = load_app("py_agent.demo")
    with pytest.raises(AppError, match="is not a database URL"):
        app.open_database("not a url")
    with pytest.raises(AppError, match="does not exist") as caught:
        app.open_database("sqlite:////no/such/folder/x.sqlite")
    assert "create it" in caught.value.hint
