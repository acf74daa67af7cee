"""Model code in a separate worker process: same loop, no keys, limits, and a crash is survivable."""

from __future__ import annotations

import os
import textwrap
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.demo import create_demo_engine
from py_agent.sandbox.process import ProcessWorkspace, scrubbed_environment

from helpers import of_type

pytestmark = [pytest.mark.cpython_only]

DONE = {"message": "done", "code": ""}

APP = '''
"""A test app: the demo schema plus tools that look at the worker from inside (an escape's view)."""
import os
import signal
import sys
import time

from py_agent import llm_func, tool
from py_agent.demo import Base


@tool
def worker_environment() -> list:
    """The names of the worker's environment variables."""
    return sorted(os.environ)


@tool
def worker_pid() -> int:
    """The worker's process id."""
    return os.getpid()


@tool
def forge_reply(size: int) -> None:
    """Write straight to the reply pipe, as escaped code could."""
    fd = int(sys.argv[1])
    os.write(fd, b"x" * size if size else b"this is not json\\n")


@tool
def hang() -> None:
    """Ignore the step's time limit."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(600)


@llm_func(model="openai:gpt-4.1-mini")
def summarise(text: str) -> str:
    """Summarise text (asks a model)."""


tools = [worker_environment, worker_pid, forge_reply, hang, summarise]
'''


@pytest.fixture(scope="module")
def app_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("process_app") / "worker_shop_app.py"
    path.write_text(textwrap.dedent(APP))
    return str(path)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_demo_engine(url).dispose()
    return url


def agent_for(app_file: str, replies: list, **options) -> Agent:
    from py_agent.app import load_app

    return load_app(app_file).agent(model=ScriptedProvider(replies + [DONE]), **options)


def conversation(app_file: str, url: str, **options) -> tuple[State, ProcessWorkspace]:
    workspace = ProcessWorkspace(app_file, url, **options)
    state = State()
    state._workspace = workspace  # until State has a public way (requested)
    return state, workspace


def say(state: State, agent: Agent, request: str) -> list:
    state.messages.append(UserMessage(request))
    return list(agent.run(state))


def tag_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT name FROM tags"))}
    finally:
        engine.dispose()


def test_the_loop_runs_unchanged_with_code_in_a_worker(app_file, sqlite_url):
    state, workspace = conversation(app_file, sqlite_url)
    add = {"message": "", "code": "session.add(Tag(name='from the worker'))\nprint(worker_pid())"}
    events = say(state, agent_for(app_file, [add], approve=None), "add a tag")
    assert events[-1].reason == "paused"
    pid = int(of_type(events, "execution_result")[0].output)
    assert pid == workspace.pid and pid != os.getpid()
    assert of_type(events, "approval_required")[0].rows["tags"]["inserted"][0]["name"] == "from the worker"
    assert "from the worker" not in tag_names(sqlite_url)
    state.resume(True)
    events = list(agent_for(app_file, [], approve=None).run(state))
    assert of_type(events, "changes")[0].status == "committed" and of_type(events, "history_point")
    assert "from the worker" in tag_names(sqlite_url)
    assert [p.kind for p in state.history] == ["turn"]
    undone = state.undo()
    assert undone.tables["tags"]["deleted"] == 1 and "from the worker" not in tag_names(sqlite_url)
    state.close()
    assert workspace.pid is None


def test_the_worker_holds_no_keys_and_the_url_is_not_in_its_environment(app_file, sqlite_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-server")
    monkeypatch.setenv("DATABASE_URL", "postgresql://admin:hunter2@db/prod")
    assert "OPENAI_API_KEY" not in scrubbed_environment()
    state, workspace = conversation(app_file, sqlite_url)
    events = say(state, agent_for(app_file, [{"message": "", "code": "print(worker_environment())"}]), "look")
    names = of_type(events, "execution_result")[0].output
    assert "OPENAI_API_KEY" not in names and "DATABASE_URL" not in names and "PATH" in names
    with open(f"/proc/{workspace.pid}/cmdline", "rb") as f:
        assert b"shop.db" not in f.read()  # the URL travels over the pipe, not on the command line
    state.close()


def _kill_when_running(workspace: ProcessWorkspace, after: float = 0.8) -> threading.Timer:
    timer = threading.Timer(after, workspace.kill)
    timer.start()
    return timer


def _survives_a_killed_worker(app_file: str, url: str, **options) -> None:
    state, workspace = conversation(app_file, url, **options)
    kept = {"message": "", "code": "session.add_all([Tag(name=f'kept {i}') for i in range(3)])\nx = 42\nprint('saved')"}
    events = say(state, agent_for(app_file, [kept]), "add three tags")
    assert of_type(events, "changes")[0].status == "committed"
    first_pid = workspace.pid

    # The worker dies in the middle of a step that had already written a row.
    doomed = {"message": "", "code": "session.add(Tag(name='lost'))\nsession.flush()\nwhile True:\n    pass"}
    look = {"message": "", "code": "print(sorted(t.name for t in session.scalars(select(Tag)) if t.name.startswith(('kept', 'lost'))))"}
    forgotten = {"message": "", "code": "print(x)"}
    timer = _kill_when_running(workspace)
    events = say(state, agent_for(app_file, [doomed, look, forgotten], timeout=20), "go on")
    timer.join()
    results = of_type(events, "execution_result")
    assert "stopped" in results[0].error and "variables are gone" in results[0].error
    assert results[1].output.strip() == "['kept 0', 'kept 1', 'kept 2']"  # every committed row, nothing of the lost step
    assert "NameError" in results[2].error  # the fresh worker starts with an empty namespace
    assert events[-1].reason == "done"
    assert workspace.restarts == 1 and workspace.pid not in (None, first_pid)
    assert {n for n in tag_names(url) if n.startswith(("kept", "lost"))} == {"kept 0", "kept 1", "kept 2"}
    # the model read the notice too
    assert any("variables are gone" in getattr(m, "content", "") for m in state.messages)
    state.close()


def test_a_killed_worker_mid_step_loses_nothing_committed_sqlite(app_file, sqlite_url):
    _survives_a_killed_worker(app_file, sqlite_url)


@pytest.mark.postgres
def test_a_killed_worker_mid_step_loses_nothing_committed_postgres(app_file, postgres_demo):
    _survives_a_killed_worker(app_file, postgres_demo.url, conversation="killed-worker", strict_role=True)


@pytest.mark.parametrize(("size", "reason"), [(20_000, "more than"), (0, "not a reply")])
def test_a_worker_that_sends_too_much_or_garbage_is_ended_not_the_server(app_file, sqlite_url, size, reason):
    state, workspace = conversation(app_file, sqlite_url, max_message=10_000)
    events = say(state, agent_for(app_file, [{"message": "", "code": f"forge_reply({size})"}, {"message": "", "code": "print('fine')"}]), "forge")
    results = of_type(events, "execution_result")
    assert "stopped" in results[0].error and reason in workspace.lost
    assert results[1].output == "fine\n" and workspace.restarts == 1
    state.close()


def test_a_worker_that_ignores_its_time_limit_is_killed(app_file, sqlite_url):
    state, workspace = conversation(app_file, sqlite_url, grace=1.0)
    started = time.monotonic()
    events = say(state, agent_for(app_file, [{"message": "", "code": "hang()"}], timeout=1.0), "hang")
    assert time.monotonic() - started < 15
    assert "did not answer within" in of_type(events, "execution_result")[0].error or "did not answer" in workspace.lost
    state.close()


def test_model_functions_say_they_need_the_server(app_file, sqlite_url):
    state, _ = conversation(app_file, sqlite_url)
    events = say(state, agent_for(app_file, [{"message": "", "code": "summarise('hello')"}]), "summarise")
    error = of_type(events, "execution_result")[0].error
    assert "summarise() asks a language model" in error and "separate worker process" in error
    state.close()


def test_tools_must_come_from_the_app_module(app_file, sqlite_url):
    from py_agent import tool

    @tool
    def only_in_the_server() -> int:
        """Not in the app module."""
        return 1

    state, _ = conversation(app_file, sqlite_url)
    from py_agent.app import load_app

    app = load_app(app_file)
    agent = Agent(**app.agent_options(model=ScriptedProvider([{"message": "", "code": "print(1)"}, DONE]), tools=[*app.tools, only_in_the_server]))
    events = say(state, agent, "hi")
    error = of_type(events, "error")[0]
    assert "only_in_the_server" in error.message and "app module" in error.hint
    state.close()


def test_output_streams_from_the_worker_while_the_step_runs(app_file, sqlite_url):
    state, _ = conversation(app_file, sqlite_url)
    deltas: list[str] = []
    state.subscribe(lambda event: deltas.append(event.text) if event.type == "output_delta" else None)
    events = say(state, agent_for(app_file, [{"message": "", "code": "for i in range(3):\n    print('line', i)"}]), "print")
    assert "".join(deltas) == of_type(events, "execution_result")[0].output == "line 0\nline 1\nline 2\n"
    state.close()
