"""OpenAI Chat Completions, and the servers that copy it (OpenRouter, Ollama, vLLM, llama.cpp, LM Studio).

Structured output has three rungs, best first:

``json_schema``  ``response_format: {"type": "json_schema", "json_schema": {..., "strict": true}}``
                 -- the server enforces the reply schema;
``json_object``  JSON mode: the server guarantees JSON, the schema is in the prompt;
``text``         no ``response_format``: prose plus a fenced code block
                 (:attr:`Completion.format` is then ``"text"``).

``structured="auto"`` (the default) starts on the rung the model is known to
support and steps down by itself when the server rejects ``response_format``;
the step is remembered for the provider's later requests. Any other value
pins the rung.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError
from ..transports.base import BEARER, AuthHeader, HttpRequest
from .base import CompletionRequest, Usage
from .errors import BadRequestError, ProviderError, RefusedError
from .http_provider import HttpProvider, ReplyDecoder, env_value, json_instruction, load_json, text_instruction
from .sse import SSEEvent

StructuredMode = Literal["auto", "json_schema", "json_object", "text"]
LADDER: tuple[str, ...] = ("json_schema", "json_object", "text")

OPENAI_BASE_URL = "https://api.openai.com/v1"

# Models from before structured outputs (August 2024): JSON mode is their best.
_NO_JSON_SCHEMA = re.compile(r"^(gpt-3\.5-turbo|gpt-4-turbo|gpt-4-\d{4}|gpt-4-32k|gpt-4$|gpt-4-vision)")
# Things a server says when it does not understand response_format.
_FORMAT_COMPLAINT = re.compile(r"response_format|json_schema|json_object|structured output|schema", re.IGNORECASE)


@dataclass(frozen=True)
class CompatibleServer:
    """Defaults for an OpenAI-compatible server reachable by a short prefix."""

    label: str
    base_url: str
    key_env: str | None = None
    key_required: bool = False


COMPATIBLE_SERVERS: dict[str, CompatibleServer] = {
    "openrouter": CompatibleServer("OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True),
    "ollama": CompatibleServer("Ollama", "http://localhost:11434/v1"),
    "vllm": CompatibleServer("vLLM", "http://localhost:8000/v1"),
    "llamacpp": CompatibleServer("llama.cpp server", "http://localhost:8080/v1"),
    "lmstudio": CompatibleServer("LM Studio", "http://localhost:1234/v1"),
}


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The reply schema made acceptable to strict structured output.

    Strict mode wants every object closed (``additionalProperties: false``)
    and every property listed in ``required``: the model then always writes
    every field (a field that may be empty is already nullable in the schema
    pydantic makes, so its type is left alone: making it nullable here would
    let the model send a ``null`` that the reply model refuses). ``$ref`` may
    not have sibling keywords, so such refs are inlined; ``default`` is dropped.
    """
    root = copy.deepcopy(dict(schema))
    strict: dict[str, Any] = _strict(root, root)
    return strict


def _resolve(root: Mapping[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return copy.deepcopy(node)


def _strict(node: Any, root: Mapping[str, Any]) -> Any:
    if not isinstance(node, dict):
        return node
    node.pop("default", None)
    if "$ref" in node and len(node) > 1:
        ref = node.pop("$ref")
        merged = _resolve(root, ref)
        merged.update(node)
        node = merged
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            node[key] = {name: _strict(sub, root) for name, sub in node[key].items()}
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["properties"] = {name: _strict(sub, root) for name, sub in properties.items()}
        node["required"] = list(properties)
    if node.get("type") == "object" or isinstance(properties, dict):
        node["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            node[key] = [_strict(sub, root) for sub in node[key]]
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        only = node.pop("allOf")[0]
        node = {**only, **node}
    return node


def schema_name(name: str) -> str:
    """``json_schema.name`` must match ``^[a-zA-Z0-9_-]{1,64}$``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "reply"


def default_mode(model_name: str) -> str:
    return "json_object" if _NO_JSON_SCHEMA.match(model_name) else "json_schema"


class OpenAIDecoder(ReplyDecoder):
    """Reads ``chat.completion`` bodies and ``chat.completion.chunk`` events."""

    def __init__(self, provider: HttpProvider, format: Literal["json", "text"]) -> None:
        super().__init__(provider, format)
        self.refusal: list[str] = []

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            self.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def _check_error(self, data: Any) -> None:
        # OpenRouter and others report failures inside a 200 stream as {"error": {...}}.
        if isinstance(data, Mapping) and data.get("error"):
            error = data["error"]
            status = error.get("code") if isinstance(error, Mapping) else None
            raise self.reported_error(status if isinstance(status, int) and status >= 400 else 500, data)

    def feed_event(self, event: SSEEvent) -> list[str]:
        if event.data.strip() == "[DONE]":
            self.done = True
            self._check_refusal()
            return []
        chunk = load_json(event.data, "a stream event")
        if not isinstance(chunk, dict):  # parsed JSON: a dict, never another Mapping (and much faster to check)
            return []
        if chunk.get("error"):
            self._check_error(chunk)
        if chunk.get("usage"):
            self._usage(chunk["usage"])
        pieces: list[str] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                pieces.append(delta["content"])
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return pieces

    def feed_body(self, data: Any) -> list[str]:
        self._check_error(data)
        self.done = True
        if not isinstance(data, Mapping) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise self.malformed("a reply without choices", data)
        self._usage(data.get("usage"))
        choice = data["choices"][0]
        message = choice.get("message") or {}
        self.finish_reason = choice.get("finish_reason")
        if message.get("refusal"):
            self.refusal.append(message["refusal"])
        self._check_refusal(has_content=bool(message.get("content")))
        content = message.get("content") or ""
        return [content] if content else []

    def _check_refusal(self, has_content: bool = False) -> None:
        if self.refusal and not has_content:
            raise RefusedError(
                f"The model declined to answer: {''.join(self.refusal)}",
                hint="rephrase the request",
            )


class OpenAIProvider(HttpProvider):
    """Chat Completions on api.openai.com or any OpenAI-compatible server.

    Options beyond :class:`HttpProvider`'s:

    ``structured``        ``"auto"`` | ``"json_schema"`` | ``"json_object"`` | ``"text"``.
    ``stream_usage``      ask for token usage in streams (``stream_options``);
                          switched off by itself if the server rejects it.
    ``max_tokens_field``  ``"max_completion_tokens"`` (OpenAI) or ``"max_tokens"`` (others).
    ``label``             the server's name in messages.
    ``extra_body``        extra top-level fields for the request body.

    The output cap goes in ``max_tokens_field``; ``reasoning_effort`` is sent as is
    (``"minimal"`` ... ``"high"``); a thinking budget is refused (Chat Completions have
    none). A server that asks for ``max_completion_tokens`` instead of ``max_tokens``
    gets it from then on.
    """

    auth: AuthHeader | None = BEARER

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        structured: StructuredMode = "auto",
        stream_usage: bool = True,
        max_tokens_field: str | None = None,
        label: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        prefix: str = "openai",
        key_env: str | None = "OPENAI_API_KEY",
        key_required: bool = True,
        browser: bool = False,
        **options: Any,
    ) -> None:
        if structured not in ("auto", *LADDER):
            raise ValueError(f"structured must be one of auto, {', '.join(LADDER)}; not {structured!r}")
        base = base_url or (env_value("OPENAI_BASE_URL", browser) if prefix == "openai" else None) or OPENAI_BASE_URL
        self.label = label or ("OpenAI" if "api.openai.com" in base else "The OpenAI-compatible server")
        super().__init__(
            model_name,
            base_url=base,
            api_key=api_key,
            key_env=key_env,
            key_required=key_required,
            prefix=prefix,
            browser=browser,
            **options,
        )
        self.structured = structured
        self.mode = default_mode(model_name) if structured == "auto" else structured
        self.stream_usage = stream_usage
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if "api.openai.com" in self.base_url else "max_tokens"
        )
        self.extra_body = dict(extra_body or {})
        if self.thinking_budget is not None:
            raise ConfigurationError(
                f"{self.model} takes no thinking budget: Chat Completions set reasoning by effort",
                hint="pass reasoning_effort='low', 'medium' or 'high' instead (or extra_body= for a server's own field)",
            )

    def build_request(self, request: CompletionRequest) -> HttpRequest:
        system = request.system
        body: dict[str, Any] = {"model": self.model_name}
        if self.mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name(request.reply_name),
                    "schema": strict_json_schema(request.reply_schema),
                    "strict": True,
                },
            }
        elif self.mode == "json_object":
            body["response_format"] = {"type": "json_object"}
            system = f"{system}\n\n{json_instruction(request.reply_schema)}".strip()
        else:
            system = f"{system}\n\n{text_instruction(request.reply_schema)}".strip()
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body["messages"] = messages
        body["stream"] = request.stream
        if request.stream and self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        body[self.max_tokens_field] = self.output_limit(request)
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        body.update(self.extra_body)
        return self.http_request(f"{self.base_url}/chat/completions", body, stream=request.stream)

    def new_decoder(self, request: CompletionRequest) -> ReplyDecoder:
        return OpenAIDecoder(self, "text" if self.mode == "text" else "json")

    def adapt(self, error: ProviderError) -> bool:
        if super().adapt(error):
            return True
        if not isinstance(error, BadRequestError) or error.status not in (400, 422):
            return False
        said = f"{error.detail} {error.message}"
        if self.max_tokens_field == "max_tokens" and "max_completion_tokens" in said:
            self.max_tokens_field = "max_completion_tokens"  # reasoning models behind a compatible server
            return True
        if self.stream_usage and "stream_options" in said:
            self.stream_usage = False
            return True
        if self.structured == "auto" and self.mode != "text" and _FORMAT_COMPLAINT.search(said):
            self.mode = LADDER[LADDER.index(self.mode) + 1]
            return True
        return False
