"""Typed provider failures, each with a plain message and the hint that fixes it.

Providers raise these after their retries are spent; transports raise the
connection-level ones (unreachable, CORS, timeout, interrupted). Every error
says whether retrying could help (``retryable``), which the retry policy and
:class:`~py_agent.providers.fallback.FallbackProvider` use.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError, PyAgentError


class ProviderError(PyAgentError):
    """A language-model request failed.

    ``status`` is the HTTP status when there was one; ``retry_after`` the delay
    in seconds the server asked for; ``detail`` a short excerpt of what the
    server said, for the curious.
    """

    kind = "provider"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        detail: str = "",
        provider: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        self.provider = provider

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (for events crossing postMessage)."""
        return {
            "kind": self.kind,
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "status": self.status,
            "retryable": self.retryable,
            "provider": self.provider,
        }


class MissingApiKeyError(ProviderError, ConfigurationError):
    """No API key was given and none was found in the environment."""

    kind = "configuration"


class AuthenticationError(ProviderError):
    """The key was refused (401/403)."""

    kind = "authentication"


class ModelNotFoundError(ProviderError):
    kind = "model_not_found"


class ContextTooLongError(ProviderError):
    """The conversation no longer fits the model's context window."""

    kind = "context_too_long"


class BadRequestError(ProviderError):
    """The endpoint rejected the request for another reason (4xx)."""

    kind = "bad_request"


class RefusedError(ProviderError):
    """The model declined to answer (OpenAI ``refusal``, blocked prompts)."""

    kind = "refused"


class RateLimitedError(ProviderError):
    kind = "rate_limited"
    retryable = True


class ServerError(ProviderError):
    """The provider failed (5xx, 408, 409)."""

    kind = "server_error"
    retryable = True


class OverloadedError(ServerError):
    """The provider is overloaded (Anthropic's 529, Gemini's "model is overloaded")."""

    kind = "overloaded"


class EndpointUnreachableError(ProviderError):
    """No connection could be made to the endpoint."""

    kind = "unreachable"
    retryable = True


class CorsRefusedError(EndpointUnreachableError):
    """The browser refused the cross-origin request (raised by the browser transport)."""

    kind = "cors"
    retryable = False


class ProviderTimeoutError(ProviderError):
    kind = "timeout"
    retryable = True


class StreamInterruptedError(ProviderError):
    """The response broke off before the reply was complete."""

    kind = "interrupted"
    retryable = True


class MalformedResponseError(ProviderError):
    """The endpoint answered, but not in the expected wire format."""

    kind = "malformed_response"


class ResponseTooLargeError(MalformedResponseError):
    kind = "too_large"


# --- turning an HTTP error response into one of the above -------------------

_CONTEXT_RE = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|prompt is too long|too many tokens"
    r"|input token count|exceeds the maximum number of tokens|reduce the length",
    re.IGNORECASE,
)
_MODEL_RE = re.compile(r"\bmodels?\b", re.IGNORECASE)
_KEY_RE = re.compile(r"api[ _-]?key", re.IGNORECASE)
_OVERLOADED_RE = re.compile(r"overloaded", re.IGNORECASE)
_QUOTA_RE = re.compile(r"insufficient_quota|exceeded your current quota|billing", re.IGNORECASE)


def excerpt(body: bytes | str, limit: int = 200) -> str:
    """A short, single-line, tag-free excerpt of a response body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "<" in text and ">" in text:
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_details(body: bytes) -> tuple[str, str]:
    """``(message, code)`` from the JSON error body any of the three formats uses.

    OpenAI: ``{"error": {"message", "type", "code"}}``; Anthropic:
    ``{"type": "error", "error": {"type", "message"}}``; Gemini:
    ``{"error": {"code", "message", "status"}}``; some compatible servers send
    ``{"error": "text"}`` or ``{"detail": "..."}``. Falls back to an excerpt.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return excerpt(body), ""
    if isinstance(data, list) and data:  # Gemini's streaming endpoint wraps errors in a list
        data = data[0]
    if not isinstance(data, Mapping):
        return excerpt(body), ""
    error = data.get("error", data)
    if isinstance(error, str):
        return error, ""
    if not isinstance(error, Mapping):
        return excerpt(body), ""
    message = error.get("message") or data.get("detail") or data.get("message") or excerpt(body)
    code = error.get("code") or error.get("type") or error.get("status") or ""
    if isinstance(code, int):
        code = str(error.get("status") or error.get("type") or code)
    return str(message), str(code)


def error_from_response(
    status: int,
    body: bytes,
    *,
    label: str,
    model: str,
    base_url: str,
    key_hint: str,
    retry_after: float | None = None,
    content_type: str = "",
) -> ProviderError:
    """Map an HTTP error status and body to a typed error.

    ``label`` names the provider for people ("OpenAI"), ``model`` is the model
    id, ``key_hint`` says where the key comes from (e.g. "the OPENAI_API_KEY
    environment variable or api_key=").
    """
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        message, code = excerpt(body), ""
        is_html = True
    else:
        message, code = error_details(body)
        is_html = False
    said = f"{label} said: {message}" if message else f"{label} gave no reason"
    where = f"{label} ({base_url})"

    def make(cls: type[ProviderError], text: str, hint: str, retryable: bool | None = None) -> ProviderError:
        return cls(text, hint=hint, status=status, retryable=retryable, retry_after=retry_after, detail=message, provider=model)

    both = f"{code} {message}"

    if status in (401, 403) or (status == 400 and _KEY_RE.search(both)):
        return make(
            AuthenticationError,
            f"{where} refused the API key (HTTP {status}). {said}",
            f"check the API key ({key_hint}) and that it may use {model}",
        )
    if status == 404:
        if _MODEL_RE.search(both) and not is_html:
            return make(
                ModelNotFoundError,
                f"{label} does not know the model {model!r} (HTTP 404). {said}",
                "check the model name after the ':' in the model id, and that your account can use it",
            )
        return make(
            BadRequestError,
            f"{where} has no such endpoint (HTTP 404). {said}",
            f"check the base URL {base_url!r}: it should point at the API root (often ending in /v1)",
        )
    if status in (400, 413, 422) and _CONTEXT_RE.search(both):
        return make(
            ContextTooLongError,
            f"The conversation is too long for {model} (HTTP {status}). {said}",
            "start a new conversation, or use a model with a larger context window",
        )
    if status == 429:
        if _QUOTA_RE.search(both):
            return make(
                RateLimitedError,
                f"{label} says the account has run out of quota (HTTP 429). {said}",
                "check the plan and billing of the account the API key belongs to",
                retryable=False,
            )
        wait = f"wait {retry_after:g} s and try again" if retry_after else "wait a moment and try again"
        return make(
            RateLimitedError,
            f"{label} is rate-limiting requests (HTTP 429). {said}",
            f"{wait}, or send fewer requests (check the plan's rate limits)",
        )
    if status == 529 or (status >= 500 and _OVERLOADED_RE.search(both)) or "overloaded" in code:
        return make(
            OverloadedError,
            f"{label} is overloaded (HTTP {status}). {said}",
            "try again in a little while, or give a fallback model",
        )
    if status >= 500 or status in (408, 409):
        return make(
            ServerError,
            f"{where} failed with HTTP {status}. {said}",
            "this is on the provider's side: try again in a moment",
        )
    return make(
        BadRequestError,
        f"{where} rejected the request (HTTP {status}). {said}",
        "check the model id and options; if they are right this may be a py-agent bug",
    )
