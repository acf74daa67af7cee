"""What a reply costs: a price table per model, extendable by the developer.

Prices are US dollars per million tokens, as the providers list them for
standard (non-batch, uncached) use; they change, so check them before you rely
on the figures, and correct or add your own with :func:`set_price`::

    from py_agent import pricing
    pricing.set_price("openai:my-fine-tune", input=3.0, output=12.0)
    pricing.set_price("vllm:qwen3-coder", input=0, output=0)   # our own GPU

A model is looked up as :mod:`py_agent.providers.models` does (full
``provider:name`` id first, then the bare name without vendor folder or date
suffix). Models served on the person's own machine (``ollama:``, ``llamacpp:``,
``lmstudio:``) and the offline test models cost nothing; any other model that is
not in the table has no price, and its cost is ``None`` (shown as "unknown"),
never a guess.

Cached prompt tokens are counted at the full input price, so the figure is an
upper bound for providers that cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from .providers.base import Usage
from .providers.models import lookup

PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class Price:
    """US dollars per million input (prompt) and output (completion, thinking included) tokens."""

    input: float
    output: float

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input + usage.output_tokens * self.output) / PER_TOKENS


FREE = Price(0.0, 0.0)

# Prefixes of models that run on the person's machine, and of the offline test models.
FREE_PREFIXES = ("ollama", "llamacpp", "lmstudio", "scripted", "function", "demo", "replay")

_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5.1": Price(1.25, 10.00),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "o1": Price(15.00, 60.00),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    # Anthropic
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4-5": Price(5.00, 25.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": Price(1.25, 10.00),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "gemini-2.0-flash": Price(0.10, 0.40),
    "gemini-2.0-flash-lite": Price(0.075, 0.30),
}


def set_price(model: str, *, input: float, output: float) -> None:
    """Add or correct the price of ``model`` (a bare name, or ``provider:name`` for one provider only)."""
    if input < 0 or output < 0:
        raise ValueError(f"prices cannot be negative (got input={input}, output={output})")
    _PRICES[model] = Price(float(input), float(output))


def price_of(model: str) -> Price | None:
    """The price of ``model``, or ``None`` when it is not known."""
    found = lookup(_PRICES, model)
    if found is not None:
        return found
    if model.partition(":")[0] in FREE_PREFIXES:
        return FREE
    return None


def cost(model: str, usage: Usage) -> float | None:
    """What ``usage`` of ``model`` costs in US dollars, or ``None`` when its price is not known."""
    price = price_of(model)
    return None if price is None else price.cost(usage)


def add_costs(total: float | None, more: float | None) -> float | None:
    """A running total of costs: unknown parts are left out; ``None`` only when nothing is known."""
    if more is None:
        return total
    return more if total is None else total + more


def format_cost(value: float | None) -> str:
    """``$0.0123``-style text for people; ``"unknown"`` when there is no price."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"
