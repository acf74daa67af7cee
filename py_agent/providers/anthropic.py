"""Anthropic Messages (``POST /v1/messages``).

Structured output, chosen with ``structured=``:

``"tool"`` (default)  a forced tool call whose input schema is the reply
                      schema; the streamed text is the tool input JSON
                      (``input_json_delta.partial_json``). Works on every model.
``"output_format"``   ``output_config: {"format": {"type": "json_schema", ...}}``:
                      the reply text itself is the JSON (newer models only).
``"text"``            prose plus a fenced code block.

Requests made from a page (``browser=True``) carry
``anthropic-dangerous-direct-browser-access: true``, without which the API
refuses cross-origin calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigurationError
from ..transports.base import BEARER, AuthHeader, HttpRequest
from .base import CompletionRequest, Usage
from .errors import ProviderError
from .http_provider import HttpProvider, ReplyDecoder, env_value, load_json, rejected, text_instruction
from .openai import schema_name, strict_json_schema
from .sse import SSEEvent

AnthropicMode = Literal["tool", "output_format", "text"]
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
TOOL_DESCRIPTION = "Send your reply. Always answer by calling this tool."

# Anthropic's error types (in streams and bodies) and the status each stands for.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicDecoder(ReplyDecoder):
    """Reads a ``message`` body or the ``message_start`` ... ``message_stop`` event stream."""

    def __init__(self, provider: HttpProvider, mode: AnthropicMode) -> None:
        super().__init__(provider, "text" if mode == "text" else "json")
        self.mode = mode
        self._input = 0
        self._output = 0

    def _take_usage(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        # Cached prompt tokens are still prompt tokens; count them in.
        prompt = sum(
            int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        if prompt:
            self._input = prompt
        if usage.get("output_tokens") is not None:
            self._output = int(usage["output_tokens"])  # cumulative in message_delta
        self.usage = Usage(self._input, self._output)

    def _error(self, data: Mapping[str, Any]) -> ProviderError:
        error = data.get("error") or {}
        kind = error.get("type", "") if isinstance(error, Mapping) else ""
        return self.reported_error(_ERROR_STATUS.get(kind, 500), data)

    def _wanted(self, block_type: str) -> bool:
        return block_type == "tool_use" if self.mode == "tool" else block_type == "text"

    def feed_event(self, event: SSEEvent) -> list[str]:
        if event.event == "ping":
            return []
        data = load_json(event.data, "a stream event")
        if not isinstance(data, Mapping):
            return []
        kind = data.get("type", event.event)
        if kind == "error":
            raise self._error(data)
        if kind == "message_start":
            self._take_usage((data.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "text" and self.mode != "tool" and block.get("text"):
                return [block["text"]]
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "input_json_delta" and self.mode == "tool":
                return [delta.get("partial_json") or ""] if delta.get("partial_json") else []
            if delta.get("type") == "text_delta" and self.mode != "tool":
                return [delta.get("text") or ""] if delta.get("text") else []
        elif kind == "message_delta":
            stop = (data.get("delta") or {}).get("stop_reason")
            if stop:
                self.finish_reason = stop
            self._take_usage(data.get("usage"))
        elif kind == "message_stop":
            self.done = True
        return []

    def feed_body(self, data: Any) -> list[str]:
        self.done = True
        if isinstance(data, Mapping) and data.get("type") == "error":
            raise self._error(data)
        if not isinstance(data, Mapping) or not isinstance(data.get("content"), list):
            raise self.malformed("a reply without content", data)
        self._take_usage(data.get("usage"))
        self.finish_reason = data.get("stop_reason")
        pieces: list[str] = []
        for block in data["content"]:
            if not isinstance(block, Mapping) or not self._wanted(block.get("type", "")):
                continue
            if block["type"] == "tool_use":
                pieces.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
            elif block.get("text"):
                pieces.append(block["text"])
        return pieces


class AnthropicProvider(HttpProvider):
    """Claude through the Messages API.

    Options beyond :class:`HttpProvider`'s: ``structured`` (see the module),
    ``api_version`` (the ``anthropic-version`` header), ``auth_scheme``
    (``"x-api-key"``, the documented header, or ``"bearer"`` for servers that
    want ``Authorization: Bearer``), ``extra_body``.

    Thinking: ``thinking_budget=N`` (at least 1024) sends ``thinking: {type:
    enabled, budget_tokens: N}`` and adds N to ``max_tokens``; ``0`` switches
    thinking off. ``reasoning_effort`` goes to ``output_config.effort`` (the way
    to steer adaptive thinking on newer models). Thinking cannot be combined
    with a forced tool call, so in ``"tool"`` mode the reply tool is then
    offered with ``tool_choice: auto`` and the prompt asks for it; the same
    switch happens by itself when the server refuses a forced tool call.
    """

    label = "Anthropic"
    auth: AuthHeader | None = AuthHeader("x-api-key")

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        structured: AnthropicMode = "tool",
        api_version: str = API_VERSION,
        auth_scheme: Literal["x-api-key", "bearer"] = "x-api-key",
        extra_body: Mapping[str, Any] | None = None,
        prefix: str = "anthropic",
        browser: bool = False,
        **options: Any,
    ) -> None:
        if auth_scheme == "bearer":
            # Some Anthropic-compatible servers (and Anthropic's newest SDKs) use a bearer header.
            self.auth = BEARER
        if structured not in ("tool", "output_format", "text"):
            raise ValueError(f"structured must be 'tool', 'output_format' or 'text', not {structured!r}")
        super().__init__(
            model_name,
            base_url=base_url or env_value("ANTHROPIC_BASE_URL", browser) or ANTHROPIC_BASE_URL,
            api_key=api_key,
            key_env="ANTHROPIC_API_KEY",
            prefix=prefix,
            browser=browser,
            **options,
        )
        self.structured: AnthropicMode = structured
        self.api_version = api_version
        self.extra_body = dict(extra_body or {})
        if self.thinking_budget and self.thinking_budget < 1024:
            raise ConfigurationError(
                f"Anthropic's thinking budget is at least 1024 tokens, not {self.thinking_budget}",
                hint="pass thinking_budget=1024 or more, or 0 to switch thinking off",
            )
        # A forced tool call and thinking exclude each other (the API refuses the pair).
        self.force_tool = not self.thinking_budget

    def build_request(self, request: CompletionRequest) -> HttpRequest:
        system = request.system
        limit = self.output_limit(request)
        body: dict[str, Any] = {
            "model": self.model_name,
            # Thinking counts toward max_tokens: the budget comes on top of the reply's own cap.
            "max_tokens": limit + (self.thinking_budget or 0),
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": request.stream,
        }
        output_config: dict[str, Any] = {}
        if self.structured == "tool":
            name = schema_name(request.reply_name)
            body["tools"] = [{"name": name, "description": TOOL_DESCRIPTION, "input_schema": dict(request.reply_schema)}]
            if self.force_tool:
                body["tool_choice"] = {"type": "tool", "name": name}
            else:
                body["tool_choice"] = {"type": "auto"}
                system = f"{system}\n\nAlways answer by calling the tool `{name}`, and only that tool.".strip()
        elif self.structured == "output_format":
            output_config["format"] = {"type": "json_schema", "schema": strict_json_schema(request.reply_schema)}
        else:
            system = f"{system}\n\n{text_instruction(request.reply_schema)}".strip()
        if system:
            body["system"] = system
        if self.thinking_budget is not None:
            body["thinking"] = (
                {"type": "enabled", "budget_tokens": self.thinking_budget} if self.thinking_budget else {"type": "disabled"}
            )
        if self.reasoning_effort is not None:
            output_config["effort"] = self.reasoning_effort
        if output_config:
            body["output_config"] = output_config
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.extra_body)
        headers = {"anthropic-version": self.api_version}
        if self.browser:
            headers["anthropic-dangerous-direct-browser-access"] = "true"
        return self.http_request(f"{self.base_url}/v1/messages", body, stream=request.stream, headers=headers)

    def new_decoder(self, request: CompletionRequest) -> ReplyDecoder:
        return AnthropicDecoder(self, self.structured)

    def adapt(self, error: ProviderError) -> bool:
        if super().adapt(error):
            return True
        if self.structured == "tool" and self.force_tool and rejected(error, "tool_choice"):
            self.force_tool = False  # e.g. "Thinking may not be enabled when tool_choice forces tool use"
            return True
        return False
