"""The system prompt template, custom templates, and tools."""

from __future__ import annotations

import warnings

import pytest

from py_agent import Agent, ScriptedProvider, tool
from py_agent.demo import Base
from py_agent.prompt import PromptWarning, missing_slots, render_prompt
from py_agent.tools import Toolbox


def agent(**options):
    return Agent(base=Base, model=ScriptedProvider([]), **options)


def test_default_prompt_has_schema_symbols_tools_and_imports():
    @tool
    def weather(city: str) -> str:
        """Today's weather for a city."""
        return "sunny"

    a = agent(tools=[weather], allowed_imports=["statistics"])
    p = a.system_prompt
    assert "class Author" in p and "EBook" in p  # schema
    assert "session, " in p and "Author" in p and "disclose" in p  # symbols
    assert "- weather: Today's weather for a city." in p  # tools
    assert "statistics" in p  # imports
    assert a.prompt_warnings == []


def test_a_custom_template_replaces_the_prompt():
    a = agent(prompt_template="You manage a shop.\n{{ SCHEMA }}\nNames: {{ SYMBOLS }}\nTools: {{ TOOLS }}")
    assert a.system_prompt.startswith("You manage a shop.") and "class Author" in a.system_prompt


def test_a_missing_slot_is_warned_about_clearly():
    with pytest.warns(PromptWarning, match=r"no \{\{ TOOLS \}\} slot"):
        a = agent(prompt_template="Only the schema: {{ SCHEMA }} and {{ SYMBOLS }}")
    assert len(a.prompt_warnings) == 1 and "TOOLS" in a.prompt_warnings[0]
    assert missing_slots("{{ SCHEMA }}") == ["SYMBOLS", "TOOLS"]


def test_no_warning_for_the_default_template():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render_prompt(schema="s", symbols="y", tools="", imports="math")


def test_tools_sync_async_named_and_disclosed(capsys):
    @tool(name="find")
    def find_books(query: str, limit: int = 5) -> list[str]:
        """Search titles.

        Matches case-insensitively."""
        return []

    @tool
    async def slow(x: int) -> int:
        """Slow thing."""
        return x

    box = Toolbox([find_books, slow])
    assert set(box.tools) == {"find", "slow"}
    assert box.tools["slow"].is_async and not box.tools["find"].is_async
    box.disclose("find")
    out = capsys.readouterr().out
    assert "def find(query: str, limit: int = 5) -> list[str]" in out and "case-insensitively" in out
    box.disclose("slow")
    assert "await slow(...)" in capsys.readouterr().out
    box.disclose("missing")
    assert "The tools are: find, slow" in capsys.readouterr().out


def test_duplicate_tool_names_are_refused():
    def a():
        """A."""

    with pytest.raises(ValueError, match="two tools"):
        Toolbox([a, a])


def test_bad_configuration_is_explained():
    from py_agent import ConfigurationError

    with pytest.raises(ConfigurationError, match="provider:model"):
        agent_model("gpt-4")
    with pytest.raises(ConfigurationError, match="unknown model provider 'nope'"):
        agent_model("nope:x")
    with pytest.raises(ConfigurationError, match="max_loops"):
        agent(max_loops=0)


def agent_model(model):
    return Agent(base=Base, model=model)
