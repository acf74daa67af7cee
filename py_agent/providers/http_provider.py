"""What every HTTP wire format shares: send, retry, read the stream, count usage.

A wire-format module (OpenAI, Anthropic, Gemini) subclasses
:class:`HttpProvider` and supplies two pure pieces:

* ``build_request(request)`` -- a :class:`CompletionRequest` to an :class:`HttpRequest`;
* ``new_decoder(request)`` -- a :class:`ReplyDecoder` that turns the server's
  events (streamed) or body (not streamed) into pieces of reply text, usage and
  a finish reason.

This module does the rest: timeouts, retries (only before the first piece of
text has been passed on: retrying later would repeat text the person has
already seen), mapping HTTP errors to typed errors, and closing the response
the moment the caller stops listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal

from ..errors import ConfigurationError
from ..transports.base import AuthHeader, HttpRequest, HttpResponse, Timeouts, Transport
from .base import Completion, CompletionRequest, ReplyFormat, StreamItem, TextDelta, Usage
from .models import DEFAULT_TEMPERATURE, model_facts
from .errors import (
    BadRequestError,
    MalformedResponseError,
    MissingApiKeyError,
    ProviderError,
    ProviderTimeoutError,
    ResponseTooLargeError,
    StreamInterruptedError,
    error_from_response,
    excerpt,
)
from .retry import RetryPolicy, parse_retry_after
from .sse import SSEEvent, SSEParser, SSETooLargeError

Sleep = Callable[[float], Awaitable[None]]

ERROR_BODY_LIMIT = 64 * 1024


class ReplyDecoder(ABC):
    """Reads one reply in one wire format, streamed or whole.

    ``feed_event`` and ``feed_body`` return the new pieces of reply text; they
    update ``usage``, ``finish_reason`` and ``done`` (the stream's final event
    was seen) as they go, and raise a :class:`ProviderError` for errors the
    server reports inside a successful response.
    """

    def __init__(self, provider: HttpProvider, format: ReplyFormat = "json") -> None:
        self.provider = provider
        self.format: ReplyFormat = format
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.done = False

    def reported_error(self, status: int, error: Any) -> ProviderError:
        """A typed error for a failure the server reported inside a 200 response."""
        p = self.provider
        return error_from_response(
            status,
            json.dumps(error).encode("utf-8"),
            label=p.label,
            model=p.model,
            base_url=p.base_url,
            key_hint=p.key_hint,
        )

    def malformed(self, what: str, data: Any) -> MalformedResponseError:
        p = self.provider
        return MalformedResponseError(
            f"{p.label} ({p.base_url}) sent {what}: {excerpt(json.dumps(data))!r}",
            hint="check that the base URL points at the right kind of API",
        )

    @property
    def complete(self) -> bool:
        """The reply is whole: the final event was seen, or at least a finish reason."""
        return self.done or self.finish_reason is not None

    @abstractmethod
    def feed_event(self, event: SSEEvent) -> list[str]: ...

    @abstractmethod
    def feed_body(self, data: Any) -> list[str]: ...


def rejected(error: ProviderError, parameter: str) -> bool:
    """``error`` is a 400/422 that names ``parameter`` (the server refuses that field)."""
    if not isinstance(error, BadRequestError) or error.status not in (400, 422):
        return False
    return parameter in f"{error.detail} {error.message}".lower()


def load_json(text: str | bytes, what: str) -> Any:
    """Parse JSON from the server, turning a failure into a clear error."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponseError(
            f"The server sent {what} that is not valid JSON: {excerpt(text)!r}",
            hint="check that the base URL points at the right kind of API; if it does, try again",
        ) from None


def env_value(name: str | None, browser: bool) -> str | None:
    """An environment variable, read only on CPython (in the browser the page supplies settings)."""
    if name is None or browser:
        return None
    return os.environ.get(name) or None


def default_transport() -> Transport:
    """The transport used when none is given: plain HTTP on CPython."""
    if sys.platform == "emscripten":
        raise ConfigurationError(
            "there is no default HTTP transport in the browser",
            hint="pass transport= (the browser runtime supplies one that goes through the page)",
        )
    from ..transports.http import HttpTransport

    return HttpTransport()


# --- instructions for endpoints without structured output --------------------

def json_instruction(schema: Mapping[str, Any]) -> str:
    """Appended to the system prompt in JSON mode, where the schema is not enforced."""
    return (
        "Reply with one JSON object and nothing else (no prose around it, no code fences). "
        "It must match this JSON schema:\n" + json.dumps(schema, ensure_ascii=False)
    )


def text_instruction(schema: Mapping[str, Any]) -> str:
    """Appended to the system prompt when the reply is plain text with a fenced code block."""
    return (
        "Do not reply in JSON here: write your message to the person in plain text, then the "
        "Python code to run in a single fenced block that starts with ```python and ends with ```. "
        "Leave the block out when there is no code to run."
    )


def _time_limit(seconds: float) -> contextlib.AbstractAsyncContextManager[Any]:
    """``asyncio.timeout``, or no limit when no event loop runs.

    Inside Pyodide the sync ``run()`` steps coroutines by hand, without a loop;
    a replayed exchange then needs no timer (and none could fire).
    """
    if asyncio._get_running_loop() is None:
        return contextlib.nullcontext()
    return asyncio.timeout(max(0.0, seconds))


class HttpProvider(ABC):
    """A provider that speaks one wire format over a :class:`Transport`.

    Options shared by all formats:

    ``api_key``        the key (or ``None``: read from ``key_env`` on CPython).
    ``base_url``       the API root.
    ``transport``      how requests travel (default: :class:`HttpTransport`).
    ``browser``        requests are made from a web page: the key may be
                       missing (the page's fetch shim adds it).
    ``retry``          a :class:`RetryPolicy`; ``timeouts`` a :class:`Timeouts`.
    ``sleep``          the coroutine used to wait between retries (tests inject one).
    ``headers``        extra request headers.
    ``max_reply_chars`` longest reply accepted (characters) before giving up;
    ``max_body_bytes``  longest non-streamed body accepted.
    ``key_env``/``key_required``  where the key comes from, and whether one is needed.

    What the model is asked for (see :mod:`py_agent.providers.models` for the defaults):

    ``max_output_tokens`` the most output tokens per reply; always sent. Default:
                       4096, or 16384 for models that think, at most the model's own limit.
                       A thinking budget comes on top of it.
    ``temperature``    ``"auto"`` (default): 0.2 where the model takes a temperature
                       (not OpenAI's reasoning models, Claude 5, Gemini 3, nor when
                       thinking is switched on), dropped by itself if the server
                       refuses it; a number: always sent; ``None``: never sent.
    ``reasoning_effort`` how hard a reasoning model thinks: OpenAI ``reasoning_effort``,
                       Anthropic ``output_config.effort``, Gemini 3 ``thinkingLevel``
                       (Gemini 2.5: a budget of 1024/8192/24576 tokens for low/medium/high).
    ``thinking_budget``  thinking tokens per reply: Anthropic ``thinking.budget_tokens``,
                       Gemini ``thinkingConfig.thinkingBudget`` (OpenAI has no budget).
    """

    label: str = "The model server"
    auth: AuthHeader | None = None

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        key_env: str | None = None,
        key_required: bool = True,
        prefix: str,
        transport: Transport | None = None,
        browser: bool = False,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        sleep: Sleep | None = None,
        headers: Mapping[str, str] | None = None,
        max_reply_chars: int = 2_000_000,
        max_body_bytes: int = 32 * 1024 * 1024,
        rand: Callable[[], float] = random.random,
        max_output_tokens: int | None = None,
        temperature: float | Literal["auto"] | None = "auto",
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
    ) -> None:
        if not model_name:
            raise ConfigurationError(
                f"no model name was given for the {prefix!r} provider",
                hint=f"write the model id as '{prefix}:<model name>'",
            )
        self.model_name = model_name
        self.model = f"{prefix}:{model_name}"
        self.base_url = base_url.rstrip("/")
        self.browser = browser
        self.key_env = key_env
        self.key_required = key_required
        self.api_key = api_key if api_key is not None else env_value(key_env, browser)
        if key_required and not self.api_key and not browser:
            where = f"set the {key_env} environment variable or pass api_key=" if key_env else "pass api_key="
            raise MissingApiKeyError(
                f"no API key for {self.model}",
                hint=where,
                provider=self.model,
            )
        self.transport: Transport = transport if transport is not None else default_transport()
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rand = rand
        self.extra_headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.max_reply_chars = max_reply_chars
        self.max_body_bytes = max_body_bytes
        self.facts = model_facts(self.model)
        if max_output_tokens is not None and max_output_tokens < 1:
            raise ConfigurationError(
                f"max_output_tokens must be a positive number of tokens, not {max_output_tokens}",
                hint="leave it out for py-agent's default (4096, or 16384 for models that think)",
            )
        self.max_output_tokens = max_output_tokens or self.facts.default_output_tokens
        if thinking_budget is not None and thinking_budget < 0:
            raise ConfigurationError(f"thinking_budget must be 0 or more tokens, not {thinking_budget}")
        self.reasoning_effort = reasoning_effort
        self.thinking_budget = thinking_budget
        self._default_temperature = temperature == "auto"
        if temperature == "auto":
            thinking_on = reasoning_effort is not None or bool(thinking_budget)
            self.temperature: float | None = DEFAULT_TEMPERATURE if self.facts.temperature and not thinking_on else None
        elif temperature is None or isinstance(temperature, (int, float)):
            self.temperature = None if temperature is None else float(temperature)
        else:
            raise ConfigurationError(f"temperature must be a number, 'auto' or None, not {temperature!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, base_url={self.base_url!r})"

    # --- what a wire format supplies ------------------------------------------

    @abstractmethod
    def build_request(self, request: CompletionRequest) -> HttpRequest:
        """The HTTP request for ``request`` (pure: no I/O)."""

    @abstractmethod
    def new_decoder(self, request: CompletionRequest) -> ReplyDecoder:
        """A fresh decoder for the reply to ``request``."""

    def adapt(self, error: ProviderError) -> bool:
        """Change how requests are built after ``error``; True means "try again now".

        Formats extend this for fallbacks such as the OpenAI structured-output
        ladder. Here: a server that refuses py-agent's *default* temperature (a
        reasoning model the table does not know) gets requests without one from
        now on; a temperature the developer chose is never dropped.
        """
        if (
            self._default_temperature
            and self.temperature is not None
            and rejected(error, "temperature")
        ):
            self.temperature = None
            return True
        return False

    def output_limit(self, request: CompletionRequest) -> int:
        """The output-token cap of the reply to ``request`` (the request's own, or the provider's)."""
        return request.max_output_tokens or self.max_output_tokens

    # --- helpers for build_request ----------------------------------------------

    @property
    def key_hint(self) -> str:
        if self.browser:
            return "the API key set in the page"
        if self.key_env:
            return f"the {self.key_env} environment variable or api_key="
        return "api_key="

    def http_request(
        self, url: str, body: Mapping[str, Any], *, stream: bool, headers: Mapping[str, str] | None = None
    ) -> HttpRequest:
        """A JSON POST with the auth header added only when the key is known."""
        all_headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        all_headers.update(headers or {})
        all_headers.update(self.extra_headers)
        auth = self.auth
        if auth is not None:
            if self.api_key:
                all_headers[auth.header] = auth.value(self.api_key)
            if not self.key_required:
                auth = dataclasses.replace(auth, required=False)
        return HttpRequest(
            method="POST",
            url=url,
            headers=all_headers,
            body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            auth=auth,
            stream=stream,
            timeouts=self.timeouts,
        )

    # --- the provider protocol ----------------------------------------------------

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Text deltas as they arrive, then the :class:`Completion` (see :class:`Provider`).

        Failures before the first delta are retried per ``self.retry``; after
        it they are raised, typed, as they happen.
        """
        attempts = 0
        while True:
            attempts += 1
            decoder = self.new_decoder(request)
            pieces: list[str] = []
            try:
                async with contextlib.aclosing(self._exchange(self.build_request(request), decoder)) as exchange:
                    async for piece in exchange:
                        pieces.append(piece)
                        yield TextDelta(piece, decoder.format)
            except ProviderError as error:
                error.provider = error.provider or self.model
                if pieces:
                    raise  # text was already passed on: a retry would repeat it
                if self.adapt(error):
                    attempts -= 1  # a change of request shape is not a failed attempt
                    continue
                delay = self.retry.delay_before_retry(attempts, error, self._rand)
                if delay is None:
                    raise
                await self._sleep(delay)
                continue
            yield Completion(
                text="".join(pieces),
                model=self.model,
                usage=decoder.usage,
                format=decoder.format,
                finish_reason=decoder.finish_reason,
            )
            return

    # --- one exchange -----------------------------------------------------------

    async def _exchange(self, http_request: HttpRequest, decoder: ReplyDecoder) -> AsyncGenerator[str, None]:
        timeouts = http_request.timeouts
        deadline = time.monotonic() + timeouts.total
        response = await self._send(http_request, deadline)
        try:
            if not response.ok:
                raise await self._error(response, deadline)
            content_type = response.headers.get("content-type", "").lower()
            if "text/event-stream" in content_type or (not content_type and http_request.stream):
                async with contextlib.aclosing(self._read_events(response, decoder, deadline)) as pieces:
                    async for piece in pieces:
                        yield piece
            elif "json" in content_type or not content_type:
                body = await self._read(response, self.max_body_bytes + 1, deadline)
                if len(body) > self.max_body_bytes:
                    raise self._too_large(f"{len(body)} bytes")
                text = "".join(decoder.feed_body(load_json(body, "a reply")))
                if len(text) > self.max_reply_chars:
                    raise self._too_large(f"{len(text)} characters")
                if text:
                    yield text
            else:
                body = await self._read(response, ERROR_BODY_LIMIT, deadline)
                expected = "an event stream" if http_request.stream else "JSON"
                raise MalformedResponseError(
                    f"{self.label} ({self.base_url}) answered with {content_type!r} instead of {expected}: "
                    f"{excerpt(body)!r}",
                    hint=f"check the base URL {self.base_url!r}: it should be the API root, "
                    "not a web page, login page or proxy",
                    status=response.status,
                    detail=excerpt(body),
                )
        finally:
            await response.aclose()

    async def _send(self, http_request: HttpRequest, deadline: float) -> HttpResponse:
        timeouts = http_request.timeouts
        limit = min(timeouts.connect + timeouts.read, deadline - time.monotonic())
        try:
            async with _time_limit(limit):
                return await self.transport.send(http_request)
        except TimeoutError:
            raise ProviderTimeoutError(
                f"{self.label} ({self.base_url}) did not answer within {limit:g} s",
                hint="try again; if it keeps happening the server is overloaded or the timeouts are too short",
            ) from None

    async def _next_chunk(self, chunks: AsyncIterator[bytes], deadline: float, read_timeout: float) -> bytes | None:
        remaining = deadline - time.monotonic()
        wait = min(read_timeout, remaining)
        try:
            async with _time_limit(wait):
                return await chunks.__anext__()
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if wait < read_timeout:
                message = f"{self.label} ({self.base_url}) took longer than the total time limit"
            else:
                message = f"{self.label} ({self.base_url}) sent nothing for {read_timeout:g} s"
            raise ProviderTimeoutError(
                message,
                hint="try again; if it keeps happening raise the timeouts or use a faster model",
            ) from None

    async def _read(self, response: HttpResponse, limit: int, deadline: float) -> bytes:
        chunks = response.aiter_bytes()
        parts: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await self._next_chunk(chunks, deadline, self.timeouts.read)
            if chunk is None:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    async def _read_events(
        self, response: HttpResponse, decoder: ReplyDecoder, deadline: float
    ) -> AsyncGenerator[str, None]:
        parser = SSEParser(max_event_chars=self.max_body_bytes)
        chunks = response.aiter_bytes()
        size = 0
        while not decoder.done:
            chunk = await self._next_chunk(chunks, deadline, self.timeouts.read)
            try:
                events = parser.feed(chunk) if chunk is not None else parser.finish()
            except SSETooLargeError:
                raise self._too_large("one event") from None
            # The pieces of all the events that came in one network chunk go on as one piece:
            # they arrived together, and a long reply streams as thousands of tiny events.
            batch: list[str] = []
            try:
                for event in events:
                    for piece in decoder.feed_event(event):
                        size += len(piece)
                        if size > self.max_reply_chars:
                            raise self._too_large(f"more than {self.max_reply_chars} characters")
                        batch.append(piece)
                    if decoder.done:
                        break
            except ProviderError:
                if batch:
                    yield "".join(batch)  # what came before the failure, as it would have streamed
                raise
            if batch:
                yield "".join(batch)
            if chunk is None:
                break
        if not decoder.complete:
            raise StreamInterruptedError(
                f"The reply stream from {self.label} ({self.base_url}) ended before the reply was complete",
                hint="try again; if it keeps happening a proxy between you and the server may be cutting streams",
            )

    async def _error(self, response: HttpResponse, deadline: float) -> ProviderError:
        body = await self._read(response, ERROR_BODY_LIMIT, deadline)
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        return error_from_response(
            response.status,
            body,
            label=self.label,
            model=self.model,
            base_url=self.base_url,
            key_hint=self.key_hint,
            retry_after=parse_retry_after(response.headers, parsed),
            content_type=response.headers.get("content-type", ""),
        )

    def _too_large(self, size: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"The reply from {self.label} ({self.base_url}) is too large ({size})",
            hint="ask for a shorter answer, or raise max_reply_chars if the reply is expected",
        )
