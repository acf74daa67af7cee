"""Fault injection on the fake servers, for every wire format.

Each fault ends either in a retry that succeeds or in a clear, typed error,
and the provider keeps working for the next request (the conversation can go on).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fake_servers import FakeAnthropic, FakeGemini, FakeModelServer, FakeOpenAI, Fault, RecordedSleep, free_port, run

from py_agent.providers import resolve
from py_agent.providers.anthropic import AnthropicProvider
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, TextDelta, complete
from py_agent.providers.errors import (
    EndpointUnreachableError,
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    StreamInterruptedError,
)
from py_agent.providers.fallback import FallbackProvider
from py_agent.providers.gemini import GeminiProvider
from py_agent.providers.http_provider import HttpProvider
from py_agent.providers.openai import OpenAIProvider
from py_agent.providers.retry import NO_RETRIES, RetryPolicy
from py_agent.transports import Timeouts

pytestmark = pytest.mark.cpython_only

SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "code": {"type": "string"}},
    "required": ["message", "code"],
}
REQUEST = CompletionRequest("You are a helpful agent.", (ChatMessage("user", "Add a book"),), SCHEMA)
REPLY = {"message": "Adding “Dune” by Frank Herbert — 日本 ✓", "code": "session.add(Book(title='Dune'))"}
SERVERS = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[FakeModelServer]:
    with SERVERS[request.param]() as fake:
        yield fake


def provider_for(server: FakeModelServer, base_url: str | None = None, **options: Any) -> HttpProvider:
    options.setdefault("retry", RetryPolicy(max_attempts=3, jitter=0))
    options.setdefault("sleep", RecordedSleep())
    options.setdefault("timeouts", Timeouts(connect=2, read=2, total=5))
    base = base_url or server.base_url
    if isinstance(server, FakeOpenAI):
        return OpenAIProvider("gpt-4.1-mini", api_key="test-key", base_url=base, **options)
    if isinstance(server, FakeAnthropic):
        return AnthropicProvider("claude-sonnet-4-5", api_key="test-key", base_url=base, **options)
    return GeminiProvider("gemini-2.5-flash", api_key="test-key", base_url=base, **options)


async def collect(provider: Any, request: CompletionRequest = REQUEST) -> list[Any]:
    return [item async for item in provider.stream(request)]


async def collect_until_error(provider: Any) -> tuple[list[Any], ProviderError]:
    items: list[Any] = []
    try:
        async for item in provider.stream(REQUEST):
            items.append(item)
    except ProviderError as error:
        return items, error
    raise AssertionError("no error was raised")


def still_usable(server: FakeModelServer, provider: HttpProvider) -> None:
    """The same provider answers the next request normally."""
    server.faults.clear()
    server.reply(REPLY)
    assert json.loads(run(complete(provider, REQUEST)).text) == REPLY


def plain(error: ProviderError) -> None:
    """Errors read as a sentence plus the hint that fixes them."""
    assert error.message and error.hint and "<" not in error.message
    assert str(error) == f"{error.message} ({error.hint})"


# --- statuses ---------------------------------------------------------------------------------


def test_429_with_retry_after_then_success(server: FakeModelServer) -> None:
    server.fault(Fault.http(429, "Rate limit reached", {"retry-after": "1"})).reply(REPLY)
    sleep = RecordedSleep()
    final = run(complete(provider_for(server, sleep=sleep), REQUEST))
    assert json.loads(final.text) == REPLY
    assert sleep.delays == [1.0] and len(server.requests) == 2


def test_429_retry_after_too_long_gives_up_with_a_hint(server: FakeModelServer) -> None:
    server.fault(Fault.http(429, "Rate limit reached", {"retry-after": "600"}))
    sleep = RecordedSleep()
    with pytest.raises(RateLimitedError) as caught:
        run(complete(provider_for(server, sleep=sleep), REQUEST))
    assert sleep.delays == [] and "600 s" in caught.value.hint
    plain(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_retried(server: FakeModelServer, status: int) -> None:
    server.fault(Fault.http(status, "Overloaded" if status == 529 else "Internal error")).reply(REPLY)
    sleep = RecordedSleep()
    assert json.loads(run(complete(provider_for(server, sleep=sleep), REQUEST)).text) == REPLY
    assert sleep.delays == [0.5]


def test_persistent_failure_is_a_clear_error_and_the_provider_recovers(server: FakeModelServer) -> None:
    server.fault(*[Fault.http(529, "Overloaded")] * 3)
    provider = provider_for(server)
    with pytest.raises(OverloadedError) as caught:
        run(complete(provider, REQUEST))
    assert len(server.requests) == 3 and caught.value.status == 529
    plain(caught.value)
    still_usable(server, provider)


def test_html_error_page_is_retried_and_reported_without_markup(server: FakeModelServer) -> None:
    server.fault(Fault.html(502)).reply(REPLY)
    assert json.loads(run(complete(provider_for(server), REQUEST)).text) == REPLY

    server.fault(Fault.html(502))
    with pytest.raises(ServerError) as caught:
        run(complete(provider_for(server, retry=NO_RETRIES), REQUEST))
    assert "502 Bad Gateway" in caught.value.message
    plain(caught.value)


def test_html_page_with_200_means_a_wrong_base_url(server: FakeModelServer) -> None:
    server.fault(Fault.html(200))
    provider = provider_for(server)
    with pytest.raises(MalformedResponseError) as caught:
        run(complete(provider, REQUEST))
    assert "text/html" in caught.value.message and "base URL" in caught.value.hint
    assert len(server.requests) == 1
    plain(caught.value)
    still_usable(server, provider)


def test_wrong_content_type(server: FakeModelServer) -> None:
    server.fault(Fault.wrong_content_type())
    with pytest.raises(MalformedResponseError) as caught:
        run(complete(provider_for(server), REQUEST))
    assert "text/plain" in caught.value.message and "Hello from a web server" in caught.value.message
    plain(caught.value)


@pytest.mark.parametrize("stream", [True, False])
def test_invalid_json(server: FakeModelServer, stream: bool) -> None:
    server.fault(Fault.invalid_json())
    provider = provider_for(server)
    with pytest.raises(MalformedResponseError) as caught:
        run(complete(provider, replace(REQUEST, stream=stream)))
    assert "not valid JSON" in caught.value.message and len(server.requests) == 1
    plain(caught.value)
    still_usable(server, provider)


# --- broken connections -------------------------------------------------------------------------


def test_reset_before_headers_is_retried(server: FakeModelServer) -> None:
    server.fault(Fault.reset(after=0)).reply(REPLY)
    sleep = RecordedSleep()
    assert json.loads(run(complete(provider_for(server, sleep=sleep), REQUEST)).text) == REPLY
    assert len(sleep.delays) == 1


def test_reset_mid_stream_after_text_is_a_clear_error(server: FakeModelServer) -> None:
    server.fault(Fault.reset(after=4)).reply(REPLY)
    provider = provider_for(server)
    items, error = run(collect_until_error(provider))
    assert isinstance(error, StreamInterruptedError)
    assert items and all(isinstance(i, TextDelta) for i in items)
    assert len(server.requests) == 1  # no retry once text has been passed on
    plain(error)
    still_usable(server, provider)


@pytest.mark.parametrize("kind", ["truncate", "end_early"])
def test_truncated_stream_after_text(server: FakeModelServer, kind: str) -> None:
    server.fault(Fault(kind, after=4)).reply(REPLY)
    provider = provider_for(server)
    items, error = run(collect_until_error(provider))
    assert isinstance(error, StreamInterruptedError) and items
    plain(error)
    still_usable(server, provider)


@pytest.mark.parametrize("kind", ["truncate", "end_early"])
def test_truncated_stream_before_text_is_retried(server: FakeModelServer, kind: str) -> None:
    server.fault(Fault(kind, after=0)).reply(REPLY)  # the headers, then no event at all
    items = run(collect(provider_for(server)))
    assert json.loads(items[-1].text) == REPLY and len(server.requests) == 2


def test_truncated_plain_body_is_retried(server: FakeModelServer) -> None:
    server.fault(Fault.truncate()).reply(REPLY)
    final = run(complete(provider_for(server), replace(REQUEST, stream=False)))
    assert json.loads(final.text) == REPLY and len(server.requests) == 2


def test_connection_refused() -> None:
    port = free_port()
    sleep = RecordedSleep()
    provider = OpenAIProvider("m", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", sleep=sleep,
                              retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(EndpointUnreachableError) as caught:
        run(complete(provider, REQUEST))
    assert sleep.delays == [0.5, 1.0]
    assert f"is the server running at http://127.0.0.1:{port}" in caught.value.hint
    plain(caught.value)


# --- time ------------------------------------------------------------------------------------------


def test_slow_drip_within_the_read_timeout_succeeds(server: FakeModelServer) -> None:
    server.fault(Fault.drip(0.01)).reply(REPLY)
    final = run(complete(provider_for(server, timeouts=Timeouts(connect=1, read=1, total=5)), REQUEST))
    assert json.loads(final.text) == REPLY


def test_read_timeout_then_retry_succeeds(server: FakeModelServer) -> None:
    server.fault(Fault.drip(0.5)).reply(REPLY)
    sleep = RecordedSleep()
    final = run(complete(provider_for(server, sleep=sleep, timeouts=Timeouts(connect=1, read=0.15, total=5)), REQUEST))
    assert json.loads(final.text) == REPLY and len(sleep.delays) == 1


def test_read_timeout_is_a_clear_error(server: FakeModelServer) -> None:
    server.fault(Fault.hang())
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        run(complete(provider_for(server, retry=NO_RETRIES, timeouts=Timeouts(connect=1, read=0.2, total=5)), REQUEST))
    assert time.monotonic() - started < 2
    plain(caught.value)
    assert server.dropped.wait(2.0)  # giving up closed the connection


def test_total_timeout(server: FakeModelServer) -> None:
    server.fault(Fault.drip(0.05)).reply({"message": "m" * 400, "code": ""})
    with pytest.raises(ProviderTimeoutError) as caught:
        run(complete(provider_for(server, retry=NO_RETRIES, timeouts=Timeouts(connect=1, read=1, total=0.3)), REQUEST))
    assert "total time limit" in caught.value.message


# --- size ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_five_megabyte_reply_is_read_when_allowed(server: FakeModelServer, stream: bool) -> None:
    server.fault(Fault.big(5 * 1024 * 1024))
    started = time.monotonic()
    final = run(complete(provider_for(server, max_reply_chars=8_000_000), replace(REQUEST, stream=stream)))
    assert len(json.loads(final.text)["message"]) == 5 * 1024 * 1024
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("stream", [True, False])
def test_five_megabyte_reply_is_refused_by_default(server: FakeModelServer, stream: bool) -> None:
    server.fault(Fault.big(5 * 1024 * 1024))
    provider = provider_for(server)
    with pytest.raises(ResponseTooLargeError) as caught:
        run(complete(provider, replace(REQUEST, stream=stream)))
    assert len(server.requests) == 1 and "max_reply_chars" in caught.value.hint
    plain(caught.value)
    still_usable(server, provider)


# --- abort ------------------------------------------------------------------------------------------------


def test_closing_the_stream_closes_the_connection(server: FakeModelServer) -> None:
    server.fault(Fault.hang_mid_stream(after=4)).reply(REPLY)

    async def first_delta_then_stop() -> TextDelta:
        stream = provider_for(server).stream(REQUEST)
        item = await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        return item

    assert isinstance(run(first_delta_then_stop()), TextDelta)
    assert server.dropped.wait(2.0)


def test_cancelling_the_task_closes_the_connection(server: FakeModelServer) -> None:
    server.fault(Fault.hang_mid_stream(after=4)).reply(REPLY)

    async def cancel_after_first_delta() -> None:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for item in provider_for(server).stream(REQUEST):
                if isinstance(item, TextDelta):
                    got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_after_first_delta())
    assert server.dropped.wait(2.0)


def test_cancelling_while_waiting_for_headers(server: FakeModelServer) -> None:
    server.fault(Fault.hang())

    async def cancel_early() -> None:
        task = asyncio.create_task(complete(provider_for(server), REQUEST))
        while not server.requests:  # cancel once the server holds the request (a fixed sleep flakes under load)
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_early())
    assert server.dropped.wait(2.0)


# --- fallbacks -------------------------------------------------------------------------------------------


def test_fallback_to_the_next_model() -> None:
    with FakeOpenAI() as broken, FakeAnthropic() as working:
        broken.fault(*[Fault.http(500, "down")] * 5)
        working.reply(REPLY)
        chain = FallbackProvider([provider_for(broken, retry=NO_RETRIES), provider_for(working)])
        items = run(collect(chain))
        assert isinstance(items[-1], Completion) and items[-1].model == "anthropic:claude-sonnet-4-5"
        assert json.loads(items[-1].text) == REPLY
        assert [type(e) for e in chain.errors] == [ServerError]


def test_fallback_raises_the_last_error_when_all_fail() -> None:
    with FakeOpenAI() as one, FakeGemini() as two:
        one.fault(Fault.http(500, "down"))
        two.fault(Fault.http(429, "slow down", {"retry-after": "9999"}))
        chain = FallbackProvider([provider_for(one, retry=NO_RETRIES), provider_for(two)])
        with pytest.raises(RateLimitedError) as caught:
            run(complete(chain, REQUEST))
        assert isinstance(caught.value.__cause__, ServerError)


def test_fallback_does_not_repeat_text_after_a_mid_stream_failure() -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        one.fault(Fault.truncate(after=4))
        chain = FallbackProvider([provider_for(one), provider_for(two)])
        items, error = run(collect_until_error(chain))
        assert isinstance(error, StreamInterruptedError) and items and not two.requests


def test_a_list_of_model_ids_means_fallbacks() -> None:
    with FakeOpenAI(api_key=None) as one, FakeOpenAI(api_key=None) as two:
        one.fault(*[Fault.http(503, "unavailable")] * 4)
        two.reply(REPLY)
        chain = resolve(
            ["openai-compatible:first", "openai-compatible:second"],
            base_url=one.base_url,
            retry=NO_RETRIES,
        )
        assert isinstance(chain, FallbackProvider)
        chain.providers[1].base_url = two.base_url  # type: ignore[attr-defined]
        final = run(complete(chain, REQUEST))
        assert final.model == "openai-compatible:second" and json.loads(final.text) == REPLY
