"""Test kit for apps built on py-agent, and for py-agent's own tests.

- ``servers.py``: loopback fake model servers speaking the OpenAI, Anthropic and Gemini wire
  formats (streaming, CORS, scripted or recorded replies, injectable faults):
  :class:`FakeOpenAI`, :class:`FakeAnthropic`, :class:`FakeGemini`, :class:`Fault`;
- ``fake_server.py``: the same as a command, for Playwright's ``webServer``
  (``python -m py_agent.testing.fake_server --format openai --port N --script FILE``);
- ``turns.py``: :func:`run_turn` and :func:`agent_for_server` for CPython agent tests;
- ``pytest_plugin.py``: fixtures (``py_agent_app``, ``agent_engine``, ``agent_state``,
  ``run_turn``, ``fake_openai``, ``fake_anthropic``, ``fake_gemini``), loaded automatically;
- ``postgres.py``: a throwaway PostgreSQL cluster (:class:`PostgresCluster`).
"""

from __future__ import annotations

from .postgres import PostgresCluster, PostgresUnavailable, find_pg_bin
from .servers import FakeAnthropic, FakeGemini, FakeModelServer, FakeOpenAI, Fault, Received, free_port
from .turns import TurnResult, agent_for_server, run_turn

__all__ = [
    "FakeAnthropic",
    "FakeGemini",
    "FakeModelServer",
    "FakeOpenAI",
    "Fault",
    "PostgresCluster",
    "PostgresUnavailable",
    "Received",
    "TurnResult",
    "agent_for_server",
    "find_pg_bin",
    "free_port",
    "run_turn",
]

