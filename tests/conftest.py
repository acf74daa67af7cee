"""Shared fixtures. These tests run on CPython and (the pure ones) inside Pyodide under Node."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.demo import Base, create_demo_engine

IN_PYODIDE = sys.platform == "emscripten"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cpython_only: needs threads, sockets or subprocesses (not in Pyodide)")
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server (the `postgres_url` fixture starts one)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not IN_PYODIDE:
        return
    skip = pytest.mark.skip(reason="needs CPython (threads, sockets or subprocesses)")
    for item in items:
        if "cpython_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def harness():
    """The sandbox corpora's harness (tests/sandbox_harness.py), one per test module."""
    from sandbox_harness import Harness

    h = Harness()
    yield h
    h.close()


@pytest.fixture
def engine():
    """A fresh in-memory demo database (seeded) per test."""
    eng = create_demo_engine()
    yield eng
    eng.dispose()


@pytest.fixture
def turn(engine) -> Callable[..., tuple[list[Any], State, Agent]]:
    """Run one scripted turn: ``turn(replies, request="...", **agent_options)``."""

    def _turn(replies: list[Any], request: str = "do it", state: State | None = None, **options: Any):
        provider = options.pop("provider", None) or ScriptedProvider(replies)
        agent = Agent(base=options.pop("base", Base), model=provider, **options)
        state = state or State(engine=engine)
        state.messages.append(UserMessage(request))
        events = list(agent.run(state))
        return events, state, agent

    return _turn



# --- PostgreSQL ------------------------------------------------------------------------------
# One throwaway cluster per test session (initdb in a temporary directory, removed at the end);
# each test that asks for `postgres_url` gets a fresh, empty database on it. Without
# PostgreSQL's binaries the tests are skipped, unless PY_AGENT_REQUIRE_POSTGRES=1 (set by
# `python build.py test`, which installs PostgreSQL first), where that is a failure.


@pytest.fixture(scope="session")
def postgres_cluster():
    if IN_PYODIDE:
        pytest.skip("PostgreSQL is not reachable from Pyodide")
    from py_agent.testing import PostgresCluster, PostgresUnavailable

    try:
        import psycopg  # noqa: F401
    except ImportError:
        if os.environ.get("PY_AGENT_REQUIRE_POSTGRES"):
            raise
        pytest.skip('psycopg is not installed (pip install "psycopg[binary]")')
    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        if os.environ.get("PY_AGENT_REQUIRE_POSTGRES"):
            raise
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database (superuser connection)."""
    return postgres_cluster.create_database(f"test_{os.getpid()}_{next(_databases)}")


# --- PostgreSQL with py-agent set up (server helper, issue 10) ----------------------------------
# `postgres_demo`: a fresh copy of the demo bookshop on the cluster, prepared with
# `postgres_setup.setup` for a least-privilege role; `.engine` connects as that role (what
# py-agent should use), `.admin_url` as the superuser. tests/test_postgres_core.py runs the
# SQLite suites' cases again with `engine` overridden by it.

from helpers import APP_ROLE, PostgresDemo  # noqa: E402 - (also imported by test_postgres_guards)


@pytest.fixture(scope="session")
def postgres_demo_template(postgres_cluster) -> str:
    """A database holding the seeded demo, prepared for py-agent; copied for each test."""
    from py_agent.database.postgres_setup import setup

    name = f"demo_template_{os.getpid()}"
    postgres_cluster.psql(f"CREATE ROLE {APP_ROLE} LOGIN")
    postgres_cluster.create_database(name)
    create_demo_engine(postgres_cluster.url(name)).dispose()
    setup(postgres_cluster.url(name), role=APP_ROLE)
    return name


@pytest.fixture
def postgres_demo(postgres_cluster, postgres_demo_template):
    name = f"demo_{os.getpid()}_{next(_databases)}"
    postgres_cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_demo_template}"')
    demo = PostgresDemo(postgres_cluster, name)
    yield demo
    demo.drop()

