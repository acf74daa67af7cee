"""What each wire format asks the model for: an output cap, a temperature for code, reasoning
effort and thinking budgets, and the fallbacks when a server refuses one of them.

The request shapes are pure (no network, also run inside Pyodide); the fallbacks talk to the
loopback fake servers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fake_servers import FakeAnthropic, FakeOpenAI, Fault, RecordedSleep, run

from py_agent.errors import ConfigurationError
from py_agent.providers import resolve
from py_agent.providers.base import ChatMessage, CompletionRequest, complete
from py_agent.providers.errors import BadRequestError
from py_agent.providers.models import ModelFacts, context_window, model_facts, set_model_facts
from py_agent.providers.retry import RetryPolicy
from py_agent.transports import ReplayTransport

SCHEMA = {"type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "string"}}}
REQUEST = CompletionRequest("You are a helpful agent.", (ChatMessage("user", "Add a book"),), SCHEMA)
REPLY = {"message": "Done.", "code": ""}


def body(model: str, request: CompletionRequest = REQUEST, **options: Any) -> dict[str, Any]:
    """The JSON body the provider for ``model`` would send (built offline)."""
    options.setdefault("api_key", "k")
    provider = resolve(model, transport=ReplayTransport({"exchanges": []}), **options)
    return provider.build_request(request).json()  # type: ignore[attr-defined, no-any-return]


# --- the output cap ---------------------------------------------------------------------------


def test_every_format_sends_an_output_cap_by_default() -> None:
    # The llama.cpp case of issue 11: without a cap one reply ran to 6 684 tokens.
    assert body("llamacpp:qwen2.5-coder-1.5b", api_key=None)["max_tokens"] == 4096
    assert body("openai:gpt-4.1-mini")["max_completion_tokens"] == 4096
    assert body("anthropic:claude-haiku-4-5")["max_tokens"] == 4096
    assert body("gemini:gemini-2.0-flash")["generationConfig"]["maxOutputTokens"] == 4096
    # Models that think get more room (their thinking is output too), within their own limit.
    assert body("openai:o4-mini")["max_completion_tokens"] == 16384
    assert body("gemini:gemini-2.5-flash")["generationConfig"]["maxOutputTokens"] == 16384
    assert body("anthropic:claude-3-5-haiku")["max_tokens"] == 4096  # its own limit is 8192


def test_the_cap_is_configurable_per_provider_and_per_request() -> None:
    assert body("ollama:llama3.2", api_key=None, max_output_tokens=700)["max_tokens"] == 700
    assert body("anthropic:claude-sonnet-4-5", max_output_tokens=700)["max_tokens"] == 700
    per_request = replace(REQUEST, max_output_tokens=123)
    assert body("openai:gpt-4.1", per_request, max_output_tokens=700)["max_completion_tokens"] == 123
    with pytest.raises(ConfigurationError, match="max_output_tokens"):
        body("openai:gpt-4.1", max_output_tokens=0)


# --- temperature ------------------------------------------------------------------------------


def test_a_low_temperature_for_code_where_the_model_takes_one() -> None:
    assert body("openai:gpt-4.1-mini")["temperature"] == 0.2
    assert body("ollama:llama3.2", api_key=None)["temperature"] == 0.2  # unknown models get it too
    assert body("anthropic:claude-sonnet-4-5")["temperature"] == 0.2
    assert body("gemini:gemini-2.5-flash")["generationConfig"]["temperature"] == 0.2
    # Reasoning models refuse a temperature; Claude 5 and Gemini 3 want their default.
    for model in ("openai:o3", "openai:gpt-5-mini", "openrouter:openai/gpt-5.4-mini"):
        assert "temperature" not in body(model), model
    assert "temperature" not in body("anthropic:claude-sonnet-5")
    assert "temperature" not in body("gemini:gemini-3-pro-preview")["generationConfig"]


def test_temperature_can_be_chosen_or_left_out() -> None:
    assert body("openai:gpt-4.1", temperature=0.7)["temperature"] == 0.7
    assert body("openai:o3", temperature=1)["temperature"] == 1.0  # the developer's choice is sent
    assert "temperature" not in body("openai:gpt-4.1", temperature=None)
    assert body("gemini:gemini-2.5-flash", generation_config={"temperature": 0})["generationConfig"]["temperature"] == 0
    with pytest.raises(ConfigurationError, match="temperature"):
        body("openai:gpt-4.1", temperature="hot")


# --- reasoning effort and thinking budgets --------------------------------------------------------


def test_openai_reasoning_effort() -> None:
    sent = body("openai:o4-mini", reasoning_effort="low")
    assert sent["reasoning_effort"] == "low" and "temperature" not in sent
    with pytest.raises(ConfigurationError, match="reasoning_effort"):
        body("openai:o4-mini", thinking_budget=2048)


def test_anthropic_thinking_budget_and_effort() -> None:
    sent = body("anthropic:claude-sonnet-4-5", thinking_budget=2048)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["max_tokens"] == 4096 + 2048  # the budget comes on top of the reply's cap
    assert "temperature" not in sent  # thinking requires the default temperature
    # A forced tool call and thinking exclude each other: the reply tool is offered, and asked for.
    assert sent["tool_choice"] == {"type": "auto"} and "reply" in sent["system"]
    effort = body("anthropic:claude-sonnet-5", reasoning_effort="medium")
    assert effort["output_config"] == {"effort": "medium"} and effort["tool_choice"]["type"] == "tool"
    formatted = body("anthropic:claude-sonnet-5", structured="output_format", reasoning_effort="low")
    assert set(formatted["output_config"]) == {"format", "effort"}
    assert body("anthropic:claude-sonnet-4-5", thinking_budget=0)["thinking"] == {"type": "disabled"}
    with pytest.raises(ConfigurationError, match="1024"):
        body("anthropic:claude-sonnet-4-5", thinking_budget=500)


def test_gemini_thinking_config() -> None:
    config = body("gemini:gemini-2.5-flash", thinking_budget=1000)["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1000} and config["maxOutputTokens"] == 16384 + 1000
    config = body("gemini:gemini-2.5-pro", reasoning_effort="low")["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024}
    config = body("gemini:gemini-3-flash", reasoning_effort="low")["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingLevel": "low"}
    with pytest.raises(ConfigurationError, match="reasoning effort"):
        body("gemini:gemini-2.5-flash", reasoning_effort="extreme")


# --- model facts --------------------------------------------------------------------------------


def test_model_facts_and_context_windows() -> None:
    assert context_window("openai:gpt-4.1-mini-2025-04-14") == 1_047_576
    assert context_window("anthropic:claude-sonnet-4-5-20250929") == 200_000
    assert context_window("openrouter:anthropic/claude-sonnet-4.5") == 200_000
    assert context_window("gemini:models/gemini-2.5-flash") == 1_048_576
    assert context_window("llamacpp:some-local-model") is None
    assert model_facts("openai:o3-2025-04-16").reasoning and not model_facts("openai:gpt-4o").reasoning
    set_model_facts("llamacpp:qwen-8k", ModelFacts(context_window=8192, max_output_tokens=2048))
    assert context_window("llamacpp:qwen-8k") == 8192
    assert body("llamacpp:qwen-8k", api_key=None)["max_tokens"] == 2048  # never more than the model can write


# --- fallbacks when a server refuses a field (fake servers) ------------------------------------------


def fake(server: Any, model: str, **options: Any) -> Any:
    options.setdefault("retry", RetryPolicy(max_attempts=1))
    options.setdefault("sleep", RecordedSleep())
    return resolve(model, api_key="test-key", base_url=server.base_url, **options)


@pytest.mark.cpython_only
def test_a_refused_default_temperature_is_dropped_and_remembered() -> None:
    with FakeOpenAI() as server:
        server.fault(Fault.http(400, "Unsupported value: 'temperature' does not support 0.2 with this model."))
        server.reply(REPLY, REPLY)
        provider = fake(server, "openai-compatible:reasoner-9000")
        run(complete(provider, REQUEST))
        assert [("temperature" in r.body) for r in server.requests] == [True, False]
        run(complete(provider, REQUEST))
        assert "temperature" not in server.requests[-1].body

        # A temperature the developer chose is not dropped behind their back.
        server.fault(Fault.http(400, "Unsupported value: 'temperature' does not support 0.5 with this model."))
        with pytest.raises(BadRequestError, match="temperature"):
            run(complete(fake(server, "openai-compatible:reasoner-9000", temperature=0.5), REQUEST))


@pytest.mark.cpython_only
def test_a_refused_forced_tool_call_falls_back_to_asking_for_it() -> None:
    with FakeAnthropic() as server:
        server.fault(Fault.http(400, "Thinking may not be enabled when tool_choice forces tool use."))
        server.reply(REPLY)
        provider = fake(server, "anthropic:claude-opus-9")
        run(complete(provider, REQUEST))
        assert [r.body["tool_choice"]["type"] for r in server.requests] == ["tool", "auto"]
        assert "Always answer by calling the tool `reply`" in server.requests[1].body["system"]
        assert provider.force_tool is False  # remembered for the next requests


@pytest.mark.cpython_only
def test_max_tokens_field_switches_when_a_compatible_server_asks() -> None:
    with FakeOpenAI() as server:
        server.fault(Fault.http(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."))
        server.reply(REPLY)
        run(complete(fake(server, "openai-compatible:o3"), REQUEST))
        assert "max_tokens" in server.requests[0].body and server.requests[1].body["max_completion_tokens"] == 16384
