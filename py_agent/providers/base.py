"""The provider seam: what the agent loop asks of a language model.

A provider turns a :class:`CompletionRequest` into a stream of :class:`TextDelta`
chunks followed by exactly one final :class:`Completion`. Streaming is the only
shape: a provider without streaming yields the whole text as one delta.
Wire formats (OpenAI, Anthropic, Gemini) live in their own modules and speak
HTTP through a :class:`~py_agent.transports.base.Transport`; nothing here knows
about HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]
ReplyFormat = Literal["json", "text"]


@dataclass(frozen=True)
class Usage:
    """Token counts of one completion (or a sum of several)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ChatMessage:
    """One turn of the conversation as the model sees it.

    The loop guarantees that messages alternate user/assistant and start with a
    user message (consecutive same-role turns are merged before a request).
    """

    role: Role
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """Everything a provider needs to ask for the next reply.

    ``reply_schema`` is the JSON schema of the reply object (``message``,
    ``code`` and any output-extension fields). Providers use it for structured
    output where the endpoint supports it; where it does not they fall back
    to JSON mode or to a plain-text reply with a fenced code block and say so
    in :attr:`Completion.format`.
    """

    system: str
    messages: tuple[ChatMessage, ...]
    reply_schema: dict[str, Any]
    reply_name: str = "reply"
    stream: bool = True
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply text, as it arrives, and how the reply is to be read (see :class:`Completion`)."""

    text: str
    format: ReplyFormat = "json"


@dataclass(frozen=True)
class Completion:
    """The finished reply.

    ``format`` says how ``text`` is to be read: ``"json"`` (a JSON object with
    the reply fields) or ``"text"`` (prose followed by a fenced code block, for
    endpoints without structured output). ``finish_reason`` is the server's own
    word for why the reply ended (``"stop"``, ``"end_turn"``, ``"STOP"``, ...);
    :attr:`truncated` reads it the same way for every format. ``cost`` is filled
    in by :func:`py_agent.ask.ask` from :mod:`py_agent.pricing` (``None``: unknown).
    """

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    format: ReplyFormat = "json"
    finish_reason: str | None = None
    cost: float | None = None

    @property
    def truncated(self) -> bool:
        """The reply was cut off by the output-token limit, so it is not whole."""
        return self.finish_reason in TRUNCATED


#: Finish reasons meaning "cut off at the output limit": OpenAI and compatible servers,
#: Anthropic (also when the context window is full), Gemini.
TRUNCATED = frozenset({"length", "max_tokens", "model_context_window_exceeded", "MAX_TOKENS"})


StreamItem = TextDelta | Completion


@runtime_checkable
class Provider(Protocol):
    """A language model the loop can talk to.

    ``stream`` is an async generator: zero or more :class:`TextDelta`, then one
    :class:`Completion` whose ``text`` is the whole reply. Closing the generator
    early (``aclose()``, task cancellation) must cancel the underlying request.
    Errors are raised as :class:`py_agent.providers.errors.ProviderError`
    subclasses after any retries the provider performs.
    """

    model: str

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]: ...


async def complete(provider: Provider, request: CompletionRequest) -> Completion:
    """Drain a provider's stream and return the final completion."""
    final: Completion | None = None
    async for item in provider.stream(request):
        if isinstance(item, Completion):
            final = item
    if final is None:
        raise RuntimeError(f"provider {provider.model!r} ended its stream without a Completion")
    return final
