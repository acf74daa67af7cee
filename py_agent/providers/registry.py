"""Model ids (``provider:model``) to provider objects.

Wire-format modules register a factory under their prefix; ``resolve`` turns a
model id, a provider object, or a list of them (fallbacks in order) into one
provider. Keeping this a small registry lets third parties plug in providers
the way simonw/llm plugins do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigurationError
from .base import Provider

ProviderFactory = Callable[..., Provider]
_FACTORIES: dict[str, ProviderFactory] = {}


def register(prefix: str, factory: ProviderFactory) -> None:
    """Make ``prefix:model`` ids resolve through ``factory(model_name, **options)``."""
    _FACTORIES[prefix] = factory


def registered() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def _load_builtin() -> None:
    # Imported lazily so that importing py_agent does not pull in every wire format.
    from . import builtin  # noqa: F401  (registers the built-in prefixes)


def resolve(model: "str | Provider | Sequence[str | Provider]", **options: Any) -> Provider:
    """Return a provider for ``model``.

    ``options`` (api_key, base_url, transport, ...) go to the factory. A list
    means fallbacks: the first provider is tried, then the next on failure.
    """
    if isinstance(model, Provider):
        return model
    if isinstance(model, Sequence) and not isinstance(model, str):
        providers = [resolve(m, **options) for m in model]
        if not providers:
            raise ConfigurationError("an empty list of models was given", hint="name at least one model, e.g. 'openai:gpt-4.1-mini'")
        if len(providers) == 1:
            return providers[0]
        from .fallback import FallbackProvider

        return FallbackProvider(providers)
    if not isinstance(model, str) or ":" not in model:
        raise ConfigurationError(
            f"model {model!r} is not a 'provider:model' id",
            hint="write it as e.g. 'openai:gpt-4.1-mini', 'anthropic:claude-sonnet-4-5' or 'gemini:gemini-2.5-flash'",
        )
    _load_builtin()
    prefix, _, name = model.partition(":")
    factory = _FACTORIES.get(prefix)
    if factory is None:
        raise ConfigurationError(
            f"unknown model provider {prefix!r} in {model!r}",
            hint=f"known providers: {', '.join(sorted(_FACTORIES))}",
        )
    return factory(name, **options)
