"""Backoff, jitter, retry-after, and the provider's retry loop (no network: replayed exchanges)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from typing import Any

import pytest

from py_agent.providers.base import ChatMessage, CompletionRequest, TextDelta
from py_agent.providers.errors import (
    AuthenticationError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from py_agent.providers.openai import OpenAIProvider
from py_agent.providers.retry import NO_RETRIES, RetryPolicy, parse_retry_after
from py_agent.transports import Headers, ReplayTransport

REQUEST = CompletionRequest("system", (ChatMessage("user", "hi"),), {"type": "object", "properties": {}})


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# --- the policy ----------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, multiplier=2, max_delay=3, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_only_shortens_within_bounds() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=0.25)
    assert policy.backoff(1, rand=lambda: 0.0) == 1.0
    assert policy.backoff(1, rand=lambda: 1.0) == 0.75
    assert 0.75 <= policy.backoff(1) <= 1.0


def test_gives_up_after_max_attempts_and_on_final_errors() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    error = ServerError("boom")
    assert policy.delay_before_retry(1, error) == 0.5
    assert policy.delay_before_retry(2, error) == 1.0
    assert policy.delay_before_retry(3, error) is None
    assert policy.delay_before_retry(1, AuthenticationError("no")) is None
    assert NO_RETRIES.delay_before_retry(1, error) is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay_before_retry(1, RateLimitedError("slow down", retry_after=7)) == 7
    assert policy.delay_before_retry(1, RateLimitedError("slow down", retry_after=0)) == 0
    # Longer than we are willing to wait: give up now, the error's hint says when to come back.
    assert policy.delay_before_retry(1, RateLimitedError("slow down", retry_after=3600)) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(Headers(headers)) == expected


def test_parse_retry_after_http_date_uses_the_clock() -> None:
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(Headers({"retry-after": when}), clock=lambda: 1_000_000) == 30.0


def test_parse_retry_after_from_gemini_body() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}],
        }
    }
    assert parse_retry_after(Headers({}), body) == 13.0


# --- the provider's retry loop ------------------------------------------------------


def ok_stream(text: str = '{"message": "hi", "code": ""}') -> dict[str, Any]:
    events = [{"choices": [{"index": 0, "delta": {"content": text[i : i + 5]}}]} for i in range(0, len(text), 5)]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return {"response": {"status": 200, "headers": {"content-type": "text/event-stream"}, "chunks": chunks}}


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "response": {
            "status": status,
            "headers": {"content-type": "application/json", **(headers or {})},
            "body": json.dumps({"error": {"message": message, "type": "x", "code": None}}),
        }
    }


def provider(exchanges: list[dict[str, Any]], sleeps: Sleeps, **options: Any) -> tuple[OpenAIProvider, ReplayTransport]:
    transport = ReplayTransport({"exchanges": exchanges})
    options.setdefault("retry", RetryPolicy(max_attempts=4, jitter=0.0))
    return OpenAIProvider("gpt-4.1-mini", api_key="k", transport=transport, sleep=sleeps, **options), transport


async def collect(p: Any) -> list[Any]:
    return [item async for item in p.stream(REQUEST)]


def test_rate_limit_then_success_waits_the_retry_after() -> None:
    sleeps = Sleeps()
    p, transport = provider([error(429, "Rate limit reached", {"retry-after": "2"}), ok_stream()], sleeps)
    items = asyncio.run(collect(p))
    assert items[-1].text == '{"message": "hi", "code": ""}'
    assert sleeps.delays == [2.0]
    assert len(transport.requests) == 2


def test_server_errors_back_off_then_give_up() -> None:
    sleeps = Sleeps()
    p, transport = provider([error(500), error(502), error(503), error(500)], sleeps)
    with pytest.raises(ServerError) as caught:
        asyncio.run(collect(p))
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert len(transport.requests) == 4
    assert caught.value.status == 500 and caught.value.hint


def test_overloaded_529_is_retried() -> None:
    sleeps = Sleeps()
    p, _ = provider([error(529, "Overloaded"), ok_stream()], sleeps)
    assert asyncio.run(collect(p))[-1].finish_reason == "stop"
    assert len(sleeps.delays) == 1
    assert OverloadedError.retryable


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried(status: int) -> None:
    sleeps = Sleeps()
    p, _ = provider([error(status), ok_stream()], sleeps)
    assert asyncio.run(collect(p))[-1].text


def test_bad_key_is_not_retried() -> None:
    sleeps = Sleeps()
    p, transport = provider([error(401, "Incorrect API key provided"), ok_stream()], sleeps)
    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(collect(p))
    assert sleeps.delays == [] and len(transport.requests) == 1
    assert "OPENAI_API_KEY" in caught.value.hint


def test_quota_exhausted_429_is_not_retried() -> None:
    sleeps = Sleeps()
    p, _ = provider([error(429, "You exceeded your current quota, please check your plan and billing details.")], sleeps)
    with pytest.raises(RateLimitedError) as caught:
        asyncio.run(collect(p))
    assert not caught.value.retryable and "billing" in caught.value.hint
    assert sleeps.delays == []


def test_no_retry_after_text_was_streamed() -> None:
    sleeps = Sleeps()
    broken = ok_stream()
    broken["response"]["chunks"] = broken["response"]["chunks"][:2]
    broken["response"]["error"] = {"type": "StreamInterruptedError", "message": "connection reset"}
    p, transport = provider([broken, ok_stream()], sleeps)

    async def run() -> list[Any]:
        seen: list[Any] = []
        with pytest.raises(StreamInterruptedError):
            async for item in p.stream(REQUEST):
                seen.append(item)
        return seen

    seen = asyncio.run(run())
    assert [type(i) for i in seen] == [TextDelta, TextDelta]
    assert sleeps.delays == [] and len(transport.requests) == 1


def test_interruption_before_any_text_is_retried() -> None:
    sleeps = Sleeps()
    broken = {"response": {"status": 200, "headers": {"content-type": "text/event-stream"}, "chunks": [],
                           "error": {"type": "StreamInterruptedError", "message": "connection reset"}}}
    p, _ = provider([broken, ok_stream()], sleeps)
    assert asyncio.run(collect(p))[-1].text
    assert len(sleeps.delays) == 1


def test_unreachable_endpoint_is_retried_then_reported() -> None:
    sleeps = Sleeps()
    down = {"request": {}, "error": {"type": "EndpointUnreachableError", "message": "connection refused"}}
    p, _ = provider([down, down, down], sleeps, retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(ProviderError) as caught:
        asyncio.run(collect(p))
    assert type(caught.value).__name__ == "EndpointUnreachableError"
    assert caught.value.provider == "openai:gpt-4.1-mini"
    assert sleeps.delays == [0.5, 1.0]
