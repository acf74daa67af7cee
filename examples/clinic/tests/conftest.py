"""The py-agent fixtures (py_agent.testing's pytest plugin) use this app."""

from pathlib import Path

import pytest

from py_agent.app import load_app

EXAMPLE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def py_agent_app():
    return load_app(EXAMPLE / "clinic")
