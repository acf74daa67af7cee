"""What py-agent knows about particular models: context window, output limit, reasoning.

Providers use these facts to pick defaults (how many output tokens to allow per
reply, whether to send a temperature); compaction will use :func:`context_window`.
Nothing here is required: an unknown model gets the general defaults, and a
provider that finds out more from the server (a rejected ``temperature``) adapts.

Names are matched without the ``provider:`` prefix and without a vendor folder
(``openrouter:anthropic/claude-sonnet-4.5`` is looked up as ``claude-sonnet-4.5``,
then as ``claude-sonnet-4-5``); a dated or preview suffix is ignored
(``gpt-4.1-mini-2025-04-14`` is ``gpt-4.1-mini``). Add or correct entries with
:func:`set_model_facts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: Output tokens allowed per reply when neither the developer nor the table says
#: otherwise. A code step rarely needs more than a few hundred; the cap is what
#: stops a small local model from writing thousands of tokens (and overflowing a
#: small context window on the next request).
DEFAULT_MAX_OUTPUT_TOKENS = 4096
#: The same for models that think before they answer: their thinking counts as output.
REASONING_MAX_OUTPUT_TOKENS = 16384
#: A low temperature suits code: the likeliest tokens, with a little room to get
#: out of a repetition loop (temperature 0 makes small models loop more often).
DEFAULT_TEMPERATURE = 0.2


@dataclass(frozen=True)
class ModelFacts:
    """Known properties of one model (``None``: not known).

    ``context_window``: tokens in and out together; ``max_output_tokens``: the
    most the model can write in one reply; ``reasoning``: the model thinks
    before answering, and the thinking counts as output tokens; ``temperature``:
    the model accepts a temperature other than its default (OpenAI's reasoning
    models, Claude 5 models and Gemini 3 models refuse one or advise against it).
    """

    context_window: int | None = None
    max_output_tokens: int | None = None
    reasoning: bool = False
    temperature: bool = True

    @property
    def default_output_tokens(self) -> int:
        """The output cap py-agent sends when the developer sets none."""
        wanted = REASONING_MAX_OUTPUT_TOKENS if self.reasoning else DEFAULT_MAX_OUTPUT_TOKENS
        return min(wanted, self.max_output_tokens) if self.max_output_tokens else wanted


UNKNOWN = ModelFacts()

_K = 1000
_REASONING = dict(reasoning=True, temperature=False)

# Exact names (a dated or preview suffix is allowed after them).
_FACTS: dict[str, ModelFacts] = {
    # OpenAI
    "gpt-4.1": ModelFacts(1_047_576, 32_768),
    "gpt-4.1-mini": ModelFacts(1_047_576, 32_768),
    "gpt-4.1-nano": ModelFacts(1_047_576, 32_768),
    "gpt-4o": ModelFacts(128 * _K, 16_384),
    "gpt-4o-mini": ModelFacts(128 * _K, 16_384),
    "gpt-4-turbo": ModelFacts(128 * _K, 4096),
    "gpt-3.5-turbo": ModelFacts(16_385, 4096),
    "o1": ModelFacts(200 * _K, 100 * _K, **_REASONING),
    "o1-mini": ModelFacts(128 * _K, 65_536, **_REASONING),
    "o3": ModelFacts(200 * _K, 100 * _K, **_REASONING),
    "o3-mini": ModelFacts(200 * _K, 100 * _K, **_REASONING),
    "o4-mini": ModelFacts(200 * _K, 100 * _K, **_REASONING),
    "gpt-5": ModelFacts(400 * _K, 128 * _K, **_REASONING),
    "gpt-5-mini": ModelFacts(400 * _K, 128 * _K, **_REASONING),
    "gpt-5-nano": ModelFacts(400 * _K, 128 * _K, **_REASONING),
    "gpt-5.1": ModelFacts(400 * _K, 128 * _K, **_REASONING),
    # Anthropic
    "claude-3-5-haiku": ModelFacts(200 * _K, 8192),
    "claude-3-7-sonnet": ModelFacts(200 * _K, 64 * _K),
    "claude-sonnet-4": ModelFacts(200 * _K, 64 * _K),
    "claude-opus-4": ModelFacts(200 * _K, 32 * _K),
    "claude-opus-4-1": ModelFacts(200 * _K, 32 * _K),
    "claude-sonnet-4-5": ModelFacts(200 * _K, 64 * _K),
    "claude-haiku-4-5": ModelFacts(200 * _K, 64 * _K),
    "claude-opus-4-5": ModelFacts(200 * _K, 64 * _K),
    "claude-sonnet-4-6": ModelFacts(1000 * _K, 128 * _K),
    # Google
    "gemini-2.0-flash": ModelFacts(1_048_576, 8192),
    "gemini-2.0-flash-lite": ModelFacts(1_048_576, 8192),
    "gemini-2.5-pro": ModelFacts(1_048_576, 65_536, reasoning=True),
    "gemini-2.5-flash": ModelFacts(1_048_576, 65_536, reasoning=True),
    "gemini-2.5-flash-lite": ModelFacts(1_048_576, 65_536, reasoning=True),
}

# Families, for names not listed above (first match wins).
_FAMILIES: list[tuple[re.Pattern[str], ModelFacts]] = [
    # Chat variants of the GPT-5 line answer without reasoning and take a temperature.
    (re.compile(r"gpt-5(\.\d+)?-chat"), ModelFacts(128 * _K, 16_384)),
    (re.compile(r"gpt-5|o[134]\b|o[134]-"), ModelFacts(reasoning=True, temperature=False)),
    # Claude 5 models think adaptively and refuse non-default sampling parameters.
    (re.compile(r"claude-[a-z]+-5"), ModelFacts(1000 * _K, 128 * _K, reasoning=True, temperature=False)),
    # Gemini 3 models think by default; Google advises keeping the default temperature.
    (re.compile(r"gemini-[3-9]"), ModelFacts(1_048_576, 65_536, reasoning=True, temperature=False)),
    (re.compile(r"gemini-2\.5"), ModelFacts(1_048_576, 65_536, reasoning=True)),
]

_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-preview.*|-exp.*|-\d{3})$")


def model_names(model: str) -> Iterator[str]:
    """The names to look ``model`` up by, most specific first.

    ``openrouter:anthropic/claude-sonnet-4.5-20250929`` gives the full id, then
    ``claude-sonnet-4.5-20250929``, ``claude-sonnet-4.5``, ``claude-sonnet-4-5-20250929``
    and ``claude-sonnet-4-5``.
    """
    yield model
    name = model.partition(":")[2] if ":" in model else model
    name = name.removeprefix("models/").rsplit("/", 1)[-1].lower()
    seen = {model}
    for variant in (name, re.sub(r"(?<=\d)\.(?=\d)", "-", name)):
        for candidate in (variant, _SUFFIX.sub("", variant)):
            if candidate not in seen:
                seen.add(candidate)
                yield candidate


def lookup(table: Mapping[str, T], model: str) -> T | None:
    """The entry of ``table`` for ``model`` (a full ``provider:name`` id or a bare name)."""
    for name in model_names(model):
        if name in table:
            return table[name]
    return None


def model_facts(model: str) -> ModelFacts:
    """What is known about ``model`` (``provider:name``); :data:`UNKNOWN` when nothing is."""
    found = lookup(_FACTS, model)
    if found is not None:
        return found
    for name in model_names(model):
        for pattern, facts in _FAMILIES:
            if pattern.match(name):
                return facts
    return UNKNOWN


def context_window(model: str) -> int | None:
    """The context window of ``model`` in tokens, or ``None`` when it is not known."""
    return model_facts(model).context_window


def set_model_facts(model: str, facts: ModelFacts) -> None:
    """Add or correct the facts of a model (a bare name, or ``provider:name`` for one provider only)."""
    _FACTS[model] = facts
