"""Several models in order: when one fails, the next one gets the request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from ..errors import ConfigurationError
from .base import CompletionRequest, Provider, StreamItem, TextDelta
from .errors import ProviderError


class FallbackProvider:
    """Tries ``providers`` in order, moving on when one raises a :class:`ProviderError`.

    Each provider does its own retries first. A provider that fails after it
    has already streamed text is not replaced (the text would appear twice):
    its error is raised. When every provider fails the last error is raised,
    chained to the ones before it, and :attr:`errors` lists them all.
    """

    def __init__(self, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ConfigurationError("FallbackProvider needs at least one provider", hint="pass a list of models")
        self.providers = list(providers)
        self.model = " | ".join(p.model for p in self.providers)
        self.errors: list[ProviderError] = []
        self.current: Provider = self.providers[0]

    def output_limit(self, request: CompletionRequest) -> int | None:
        """The output-token cap of the provider now answering (``None`` if it does not say)."""
        limit = getattr(self.current, "output_limit", None)
        return limit(request) if callable(limit) else request.max_output_tokens

    def __repr__(self) -> str:
        return f"FallbackProvider({self.providers!r})"

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        self.errors = []
        for provider in self.providers:
            self.current = provider
            streamed = False
            try:
                async with contextlib.aclosing(provider.stream(request)) as items:  # type: ignore[type-var]
                    async for item in items:
                        streamed = streamed or isinstance(item, TextDelta)
                        yield item
                return
            except ProviderError as error:
                if streamed:
                    raise
                if self.errors:
                    error.__cause__ = error.__cause__ or self.errors[-1]
                self.errors.append(error)
        raise self.errors[-1]
