"""Shared fixtures. These tests run on CPython and (the pure ones) inside Pyodide under Node."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from py_agent import Agent, ScriptedProvider, State, UserMessage
from py_agent.demo import Base, create_demo_engine

IN_PYODIDE = sys.platform == "emscripten"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cpython_only: needs threads, sockets or subprocesses (not in Pyodide)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not IN_PYODIDE:
        return
    skip = pytest.mark.skip(reason="needs CPython (threads, sockets or subprocesses)")
    for item in items:
        if "cpython_only" in item.keywords:
            item.add_marker(skip)


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

