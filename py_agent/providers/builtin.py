"""Registers the providers that ship with py-agent.

Every HTTP factory takes ``(model_name, *, api_key=None, base_url=None,
transport=None, browser=False, **options)``. On CPython a missing ``api_key``
or ``base_url`` is read from the official SDKs' environment variables
(``OPENAI_API_KEY``/``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``,
``GEMINI_API_KEY``); in the browser (``browser=True``) the page supplies them.
The wire-format modules are imported only when a model id needs them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from .base import Provider
from .registry import register
from .scripted import ScriptedProvider

register("scripted", lambda name, replies=(), **options: ScriptedProvider(replies, model=f"scripted:{name}", **options))


def _openai(name: str, **options: Any) -> Provider:
    from .openai import OpenAIProvider

    return OpenAIProvider(name, **options)


def _openai_compatible(name: str, *, base_url: str | None = None, **options: Any) -> Provider:
    from .openai import OpenAIProvider

    if not base_url:
        raise ConfigurationError(
            f"'openai-compatible:{name}' needs the server's base URL",
            hint="pass base_url='http://host:port/v1', or use a shorthand such as 'ollama:' or 'vllm:'",
        )
    # Never send OPENAI_API_KEY to a third-party server: its key must be given explicitly.
    options.setdefault("key_env", None)
    options.setdefault("key_required", False)
    return OpenAIProvider(name, base_url=base_url, prefix="openai-compatible", **options)


def _compatible_preset(prefix: str) -> Any:
    def factory(name: str, *, base_url: str | None = None, **options: Any) -> Provider:
        from .openai import COMPATIBLE_SERVERS, OpenAIProvider

        server = COMPATIBLE_SERVERS[prefix]
        options.setdefault("label", server.label)
        options.setdefault("key_env", server.key_env)
        options.setdefault("key_required", server.key_required)
        return OpenAIProvider(name, base_url=base_url or server.base_url, prefix=prefix, **options)

    return factory


def _anthropic(name: str, **options: Any) -> Provider:
    from .anthropic import AnthropicProvider

    return AnthropicProvider(name, **options)


def _gemini(name: str, **options: Any) -> Provider:
    from .gemini import GeminiProvider

    return GeminiProvider(name, **options)


register("openai", _openai)
register("openai-compatible", _openai_compatible)
for _prefix in ("openrouter", "ollama", "vllm", "llamacpp", "lmstudio"):
    register(_prefix, _compatible_preset(_prefix))
register("anthropic", _anthropic)
register("gemini", _gemini)
