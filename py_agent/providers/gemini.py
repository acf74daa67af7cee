"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``.

Structured output, chosen with ``structured=``:

``"json_schema"`` (default)  ``generationConfig.responseJsonSchema``: the reply
                             schema as JSON Schema, enforced by the API;
``"response_schema"``        ``generationConfig.responseSchema``: the older
                             OpenAPI-subset form (the schema is converted);
``"json"``                   ``responseMimeType: application/json`` only, schema in the prompt;
``"text"``                   prose plus a fenced code block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigurationError
from ..transports.base import AuthHeader, HttpRequest
from .base import CompletionRequest, Usage
from .errors import RefusedError
from .http_provider import HttpProvider, ReplyDecoder, env_value, json_instruction, load_json, text_instruction
from .sse import SSEEvent

GeminiMode = Literal["json_schema", "response_schema", "json", "text"]
# Gemini 3 and later take a thinking *level*; older models a budget in tokens.
_LEVELS = re.compile(r"gemini-[3-9]")
_EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"

# What the OpenAPI-subset ``Schema`` object accepts.
_OPENAPI_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required",
    "anyOf", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
    "minProperties", "maxProperties", "propertyOrdering",
}


def openapi_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a JSON schema to Gemini's OpenAPI-subset ``Schema``.

    ``$ref`` is inlined, ``const`` becomes a one-value ``enum``, nullable
    unions become ``nullable: true``, and keywords the subset lacks are dropped.
    """
    return _openapi(schema, schema, depth=0)


def _openapi(node: Any, root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {}
    if depth > 32:  # a recursive schema: cut it rather than loop forever
        return {"type": "OBJECT"}
    if "$ref" in node:
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _openapi(merged, root, depth + 1)
    out: dict[str, Any] = {}
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        real = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        if len(real) < len(variants):
            out["nullable"] = True
        if len(real) == 1:
            inner = _openapi(real[0], root, depth + 1)
            inner.update(out)
            for key in ("title", "description"):
                if key in node:
                    inner[key] = node[key]
            return inner
        out["anyOf"] = [_openapi(v, root, depth + 1) for v in real]
    kind = node.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kind = next((k for k in kind if k != "null"), None)
    if "const" in node:
        out["enum"] = [node["const"]]
        kind = kind or "string"
    if isinstance(kind, str):
        out["type"] = kind.upper()
    for key, value in node.items():
        if key in ("type", "anyOf", "oneOf") or key not in _OPENAPI_KEYS:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {name: _openapi(sub, root, depth + 1) for name, sub in value.items()}
            out["propertyOrdering"] = list(value)
        elif key == "items":
            out["items"] = _openapi(value, root, depth + 1)
        else:
            out[key] = value
    return out


class GeminiDecoder(ReplyDecoder):
    """Reads ``GenerateContentResponse`` objects, whole or as a stream of them."""

    def _take(self, data: Any) -> list[str]:
        if isinstance(data, list):  # a non-SSE stream answers with a JSON array of responses
            return [piece for item in data for piece in self._take(item)]
        if not isinstance(data, Mapping):
            raise self.malformed("an unexpected reply", data)
        if data.get("error"):
            error = data["error"]
            code = error.get("code") if isinstance(error, Mapping) else None
            raise self.reported_error(code if isinstance(code, int) else 500, data)
        usage = data.get("usageMetadata")
        if isinstance(usage, Mapping):
            self.usage = Usage(
                int(usage.get("promptTokenCount") or 0),
                int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0),
            )
        candidates = data.get("candidates") or []
        if not candidates:
            block = (data.get("promptFeedback") or {}).get("blockReason")
            if block:
                raise RefusedError(
                    f"Gemini blocked the prompt ({block})",
                    hint="rephrase the request; the provider's safety filter refused it",
                )
            return []
        candidate = candidates[0]
        reason = candidate.get("finishReason")
        if reason and reason != "FINISH_REASON_UNSPECIFIED":
            self.finish_reason = reason
        parts = (candidate.get("content") or {}).get("parts") or []
        return [p["text"] for p in parts if isinstance(p, Mapping) and p.get("text") and not p.get("thought")]

    def feed_event(self, event: SSEEvent) -> list[str]:
        return self._take(load_json(event.data, "a stream event"))

    def feed_body(self, data: Any) -> list[str]:
        self.done = True
        return self._take(data)


class GeminiProvider(HttpProvider):
    """Gemini through the Generative Language API.

    Options beyond :class:`HttpProvider`'s: ``structured`` (see the module),
    ``api_version`` (default ``v1beta``), ``generation_config`` (merged into
    ``generationConfig`` last, e.g. ``{"temperature": 0}``).

    Thinking: ``thinking_budget=N`` sends ``thinkingConfig.thinkingBudget`` (0
    switches it off where the model allows, -1 lets the model decide) and adds
    N to ``maxOutputTokens``, since thoughts count as output; ``reasoning_effort``
    sends ``thinkingLevel`` to Gemini 3 models and a budget to older ones.
    """

    label = "Gemini"
    auth: AuthHeader | None = AuthHeader("x-goog-api-key")

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        structured: GeminiMode = "json_schema",
        api_version: str = "v1beta",
        generation_config: Mapping[str, Any] | None = None,
        prefix: str = "gemini",
        browser: bool = False,
        **options: Any,
    ) -> None:
        if structured not in ("json_schema", "response_schema", "json", "text"):
            raise ValueError(f"structured must be json_schema, response_schema, json or text; not {structured!r}")
        super().__init__(
            model_name.removeprefix("models/"),
            base_url=base_url or GEMINI_BASE_URL,
            # GEMINI_API_KEY is the documented name; GOOGLE_API_KEY is what older SDKs read.
            api_key=api_key
            if api_key is not None
            else env_value("GEMINI_API_KEY", browser) or env_value("GOOGLE_API_KEY", browser),
            key_env="GEMINI_API_KEY",
            prefix=prefix,
            browser=browser,
            **options,
        )
        self.structured: GeminiMode = structured
        self.api_version = api_version
        self.generation_config = dict(generation_config or {})
        if self.reasoning_effort is not None and not _LEVELS.match(self.model_name) and self.reasoning_effort not in _EFFORT_BUDGETS:
            raise ConfigurationError(
                f"{self.model} does not know the reasoning effort {self.reasoning_effort!r}",
                hint=f"use one of {', '.join(_EFFORT_BUDGETS)}, or thinking_budget= in tokens",
            )

    def build_request(self, request: CompletionRequest) -> HttpRequest:
        system = request.system
        config: dict[str, Any] = {}
        if self.structured == "json_schema":
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = dict(request.reply_schema)
        elif self.structured == "response_schema":
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = openapi_schema(request.reply_schema)
        elif self.structured == "json":
            config["responseMimeType"] = "application/json"
            system = f"{system}\n\n{json_instruction(request.reply_schema)}".strip()
        else:
            system = f"{system}\n\n{text_instruction(request.reply_schema)}".strip()
        budget = self.thinking_budget
        thinking: dict[str, Any] = {}
        if self.reasoning_effort is not None:
            if _LEVELS.match(self.model_name):
                thinking["thinkingLevel"] = self.reasoning_effort
            elif budget is None:
                budget = _EFFORT_BUDGETS[self.reasoning_effort]
        if budget is not None:
            thinking["thinkingBudget"] = budget
        if thinking:
            config["thinkingConfig"] = thinking
        config["maxOutputTokens"] = self.output_limit(request) + max(0, budget or 0)
        if self.temperature is not None:
            config["temperature"] = self.temperature
        config.update(self.generation_config)
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in request.messages
            ],
            "generationConfig": config,
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        url = f"{self.base_url}/{self.api_version}/models/{self.model_name}:{method}"
        return self.http_request(url, body, stream=request.stream)

    def new_decoder(self, request: CompletionRequest) -> ReplyDecoder:
        return GeminiDecoder(self, "text" if self.structured == "text" else "json")
