"""What replies cost: the price table, the developer's own prices, and the cost on each
completion that :func:`py_agent.ask.ask` hands the loop (pure: also runs inside Pyodide)."""

from __future__ import annotations

import pytest

from py_agent import pricing
from py_agent.ask import ask
from py_agent.providers import ScriptedProvider
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, Usage
from py_agent.sync import run_sync

REQUEST = CompletionRequest("system", (ChatMessage("user", "hi"),), {})


def test_prices_per_million_tokens() -> None:
    usage = Usage(input_tokens=200_000, output_tokens=10_000)
    assert pricing.cost("openai:gpt-4.1-mini", usage) == pytest.approx(0.2 * 0.40 + 0.01 * 1.60)
    assert pricing.cost("anthropic:claude-sonnet-4-5-20250929", usage) == pytest.approx(0.2 * 3 + 0.01 * 15)
    assert pricing.cost("openrouter:anthropic/claude-sonnet-4.5", usage) == pytest.approx(0.75)
    assert pricing.cost("gemini:gemini-2.5-flash", usage) == pytest.approx(0.2 * 0.30 + 0.01 * 2.50)


def test_local_and_offline_models_are_free_and_unknown_ones_have_no_price() -> None:
    usage = Usage(1000, 1000)
    assert pricing.cost("ollama:llama3.2", usage) == 0.0
    assert pricing.cost("llamacpp:qwen2.5-coder", usage) == 0.0
    assert pricing.cost("scripted:demo", usage) == 0.0
    assert pricing.cost("openai-compatible:some-model", usage) is None  # never a guess
    assert pricing.cost("vllm:my-model", usage) is None  # a vLLM server may well be a paid one


def test_the_developer_extends_and_corrects_the_table() -> None:
    pricing.set_price("vllm:team-coder", input=0.5, output=1.0)
    assert pricing.cost("vllm:team-coder", Usage(2_000_000, 1_000_000)) == pytest.approx(2.0)
    assert pricing.price_of("openai-compatible:team-coder") is None  # that entry is for one provider only
    pricing.set_price("my-finetune", input=1, output=2)  # a bare name: under any provider
    assert pricing.price_of("openai:my-finetune") == pricing.price_of("openrouter:acme/my-finetune")
    with pytest.raises(ValueError, match="negative"):
        pricing.set_price("x", input=-1, output=0)


def test_running_totals_and_formatting() -> None:
    assert pricing.add_costs(None, None) is None
    assert pricing.add_costs(None, 0.5) == 0.5
    assert pricing.add_costs(0.5, None) == 0.5  # an unpriced call leaves the total as it was
    assert pricing.add_costs(0.25, 0.5) == 0.75
    assert [pricing.format_cost(v) for v in (None, 0.0, 0.01234, 12.5)] == ["unknown", "$0", "$0.0123", "$12.50"]


def test_ask_puts_the_cost_on_the_completion() -> None:
    async def last(model: str) -> Completion:
        items = [i async for i in ask(ScriptedProvider([{"message": "hi", "code": ""}], model=model), REQUEST, 1)]
        assert isinstance(items[-1], Completion)
        return items[-1]

    final = run_sync(last("openai:gpt-4.1"))
    assert final.cost == pytest.approx(pricing.cost("openai:gpt-4.1", final.usage)) and final.cost > 0
    assert run_sync(last("scripted:demo")).cost == 0.0
    assert run_sync(last("someone:else")).cost is None

