"""The core's seams for other parts: the before_run hook (on-demand packages), a workspace given to
a State (separate process), a database layer given to LocalWorkspace, PostgreSQL picked by dialect."""

from __future__ import annotations

import ast

import pytest

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent import events as ev
from py_agent.database import Database
from py_agent.demo import Base, create_demo_engine
from py_agent.workspace import LocalWorkspace

from helpers import of_type

DONE = {"message": "done", "code": ""}


def test_before_run_sees_the_checked_tree_and_its_events_come_before_the_run(engine):
    seen = []

    async def before_run(step: int, tree: ast.Module) -> list[ev.Event]:
        seen.append((step, [type(node).__name__ for node in tree.body]))
        return [ev.PackageInstalled(step, "tabulate", "0.10.0", 12.5)]

    agent = Agent(
        base=Base, before_run=before_run,
        model=ScriptedProvider([{"message": "", "code": "import os"}, {"message": "", "code": "import math\nprint(math.pi > 3)"}, DONE]),
    )
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    events = list(agent.run(state))
    assert seen == [(2, ["Import", "Expr"])]  # not for step 1: the validator refused `import os`
    kinds = [e.type for e in events]
    assert kinds.index("package_installed") < kinds.index("execution_result")
    assert of_type(events, "execution_result")[0].output.strip() == "True"


def test_a_state_runs_in_the_workspace_it_is_given(engine):
    workspace = LocalWorkspace(database=Database(engine))
    state = State()
    state.attach(workspace)
    assert state.workspace is workspace and state.session is workspace.session
    agent = Agent(base=Base, model=ScriptedProvider([{"message": "", "code": "print(session.scalar(select(func.count()).select_from(Author)) > 0)"}, DONE]))
    state.messages.append(UserMessage("count"))
    events = list(agent.run(state))
    assert of_type(events, "execution_result")[0].output.strip() == "True"  # the seeded engine's rows
    assert state.engine is None  # no in-memory database was made


def test_the_policy_reaches_a_workspace_that_is_not_local():
    class Remote:
        session = None

        def __init__(self) -> None:
            self.policies: list[dict] = []

        def set_policy(self, **policy):
            self.policies.append(policy)

        def close(self):
            pass

    state = State()
    remote = Remote()
    state.attach(remote)  # type: ignore[arg-type]
    assert state.open_workspace(allow_schema_changes=True, history=False) is remote
    assert remote.policies == [{"allow_schema_changes": True, "history": False}]


def test_local_workspace_needs_a_bind_or_a_database():
    with pytest.raises(TypeError, match="needs an engine or connection"):
        LocalWorkspace()
    engine = create_demo_engine()
    assert type(LocalWorkspace(engine).db) is Database


@pytest.mark.postgres
@pytest.mark.cpython_only
def test_a_postgresql_engine_gets_the_postgresql_database_layer(postgres_demo):
    from py_agent.database.postgres import PostgresDatabase

    state = State(engine=postgres_demo.engine)
    assert isinstance(state.db, PostgresDatabase)
    state.close()
