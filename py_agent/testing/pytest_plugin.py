"""pytest fixtures for testing an app with py-agent (loaded automatically once py-agent is installed).

Tell the fixtures which app to use, either in your configuration::

    [tool.pytest.ini_options]
    py_agent_app = "myapp/models.py"        # a module name, a .py file or a package folder

or with a fixture of the same name in ``conftest.py`` (it wins)::

    @pytest.fixture(scope="session")
    def py_agent_app():
        return load_app("myapp.models")

Then:

``py_agent_app``   the :class:`~py_agent.app.App`
``agent_engine``   an engine on a fresh SQLite file holding the app's tables and seed
``agent_state``    a :class:`~py_agent.State` on that database
``run_turn``       ``run_turn(request, replies=[...] | model=..., **agent_options)`` -> :class:`TurnResult`
``fake_openai``, ``fake_anthropic``, ``fake_gemini``
                   a started loopback model server of that wire format (stopped afterwards);
                   ``agent_for_server(app, server)`` builds an agent that talks to it.

With autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), add
``-p py_agent.testing.pytest_plugin`` or ``pytest_plugins = ["py_agent.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("py_agent_app", "the app the py-agent fixtures use: a module name, a .py file or a package "
                                  "folder (relative to the configuration file)", default="")


@pytest.fixture(scope="session")
def py_agent_app(pytestconfig: pytest.Config) -> Any:
    """The app under test, from the ``py_agent_app`` setting (override this fixture to choose another way)."""
    from py_agent.app import load_app

    spec = str(pytestconfig.getini("py_agent_app") or "")
    if not spec:
        raise pytest.UsageError(
            "the py-agent fixtures need to know your app: set py_agent_app = \"path/to/app.py\" under "
            "[tool.pytest.ini_options], or define a `py_agent_app` fixture in conftest.py that returns load_app(...)"
        )
    root = pytestconfig.inipath.parent if pytestconfig.inipath else Path(pytestconfig.rootpath)
    candidate = root / spec
    return load_app(candidate if candidate.exists() else spec)


@pytest.fixture
def agent_engine(py_agent_app: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh SQLite file with the app's tables and seed (or DATA), per test."""
    engine = py_agent_app.open_database(f"sqlite:///{tmp_path / 'app.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def agent_state(agent_engine: Any) -> Iterator[Any]:
    """A conversation (:class:`py_agent.State`) on ``agent_engine``."""
    from py_agent import State

    state = State(engine=agent_engine)
    yield state
    state.close()


@pytest.fixture
def run_turn(py_agent_app: Any, agent_state: Any) -> Callable[..., Any]:
    """``run_turn(request, replies=[...] | model=..., **agent_options)``: one turn on ``agent_state``.

    Calls share the state, so a second call continues the conversation.
    """
    from py_agent.testing.turns import run_turn as run

    def turn(request: str, **options: Any) -> Any:
        options.setdefault("state", agent_state)
        return run(py_agent_app, request, **options)

    return turn


def _server(kind: str) -> Iterator[Any]:
    from py_agent.testing.servers import FORMATS

    server = FORMATS[kind]().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai() -> Iterator[Any]:
    """A loopback server speaking OpenAI Chat Completions (key ``test-key``; ``base_url`` ends in /v1)."""
    yield from _server("openai")


@pytest.fixture
def fake_anthropic() -> Iterator[Any]:
    """A loopback server speaking Anthropic Messages (key ``test-key``)."""
    yield from _server("anthropic")


@pytest.fixture
def fake_gemini() -> Iterator[Any]:
    """A loopback server speaking Gemini generateContent (key ``test-key``)."""
    yield from _server("gemini")
