"""Anthropic Messages: the fake speaks the real format (the official SDK says so), then
py-agent's provider against the same fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fake_servers import FakeAnthropic, Fault, RecordedSleep, run
from pydantic import BaseModel

from py_agent.providers import resolve
from py_agent.providers.anthropic import AnthropicProvider
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, TextDelta, complete
from py_agent.providers.errors import AuthenticationError, MissingApiKeyError, ModelNotFoundError, OverloadedError
from py_agent.providers.retry import RetryPolicy
from py_agent.transports import ReplayTransport


class Reply(BaseModel):
    message: str
    code: str


SCHEMA = Reply.model_json_schema()
REQUEST = CompletionRequest("You are a helpful agent.", (ChatMessage("user", "Add a book"),), SCHEMA)
REPLY = {"message": "Adding “Dune” — 日本 ✓", "code": "session.add(Book(title='Dune'))"}

cpython_only = pytest.mark.cpython_only


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def make(server: FakeAnthropic, **options: Any) -> AnthropicProvider:
    options.setdefault("retry", RetryPolicy(max_attempts=3, jitter=0))
    options.setdefault("sleep", RecordedSleep())
    return AnthropicProvider("claude-sonnet-4-5", api_key="test-key", base_url=server.base_url, **options)


# --- the official SDK against the fake --------------------------------------------


@cpython_only
def test_sdk_forced_tool_call(anthropic_server: FakeAnthropic) -> None:
    import anthropic

    anthropic_server.reply(REPLY)
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="test-key", max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"name": "reply", "description": "reply", "input_schema": SCHEMA}],
        tool_choice={"type": "tool", "name": "reply"},
    )
    block = message.content[0]
    assert block.type == "tool_use" and block.input == REPLY
    assert message.stop_reason == "tool_use" and message.usage.output_tokens >= 1


@cpython_only
def test_sdk_streaming_tool_input(anthropic_server: FakeAnthropic) -> None:
    import anthropic

    anthropic_server.reply(REPLY)
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="test-key", max_retries=0)
    partial: list[str] = []
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"name": "reply", "description": "reply", "input_schema": SCHEMA}],
        tool_choice={"type": "tool", "name": "reply"},
    ) as stream:
        for event in stream:
            if event.type == "input_json":
                partial.append(event.partial_json)
        final = stream.get_final_message()
    assert json.loads("".join(partial)) == REPLY
    assert final.content[0].input == REPLY and final.stop_reason == "tool_use"


@cpython_only
def test_sdk_text_stream_and_structured_output_match_py_agent(anthropic_server: FakeAnthropic) -> None:
    import anthropic

    anthropic_server.reply("Hello there", REPLY, REPLY)
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="test-key", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Hello there"

    parsed = client.messages.parse(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}], output_format=Reply
    )
    assert parsed.parsed_output == Reply(**REPLY)
    sdk_config = anthropic_server.requests[-1].body["output_config"]

    final = run(complete(make(anthropic_server, structured="output_format"), REQUEST))
    assert json.loads(final.text) == REPLY
    assert anthropic_server.requests[-1].body["output_config"] == sdk_config


@cpython_only
def test_sdk_sees_overloaded_errors(anthropic_server: FakeAnthropic) -> None:
    import anthropic

    anthropic_server.fault(Fault.http(529, "Overloaded"))
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="test-key", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


# --- py-agent's provider against the fake ------------------------------------------


@cpython_only
def test_forced_tool_call_streams_the_json(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.reply(REPLY)

    async def collect() -> list[Any]:
        return [item async for item in make(anthropic_server).stream(REQUEST)]

    items = run(collect())
    deltas = "".join(i.text for i in items if isinstance(i, TextDelta))
    final = items[-1]
    assert isinstance(final, Completion) and json.loads(deltas) == REPLY and final.text == deltas
    assert final.format == "json" and final.finish_reason == "tool_use"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 1

    sent = anthropic_server.requests[-1]
    assert sent.headers["x-api-key"] == "test-key" and sent.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-dangerous-direct-browser-access" not in sent.headers
    body = sent.body
    assert body["tool_choice"] == {"type": "tool", "name": "reply"}
    assert body["tools"][0]["input_schema"] == SCHEMA
    # The default output cap and a temperature for code (Claude Sonnet 4.5 takes one).
    assert body["system"] == "You are a helpful agent." and body["max_tokens"] == 4096 and body["stream"] is True
    assert body["temperature"] == 0.2


@cpython_only
def test_non_streaming_tool_call(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.reply(REPLY)
    final = run(complete(make(anthropic_server), replace(REQUEST, stream=False, max_output_tokens=300)))
    assert json.loads(final.text) == REPLY and final.finish_reason == "tool_use"
    assert anthropic_server.requests[-1].body["max_tokens"] == 300


@cpython_only
def test_text_mode(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.reply("Adding it.\n```python\nsession.add(Book())\n```")
    final = run(complete(make(anthropic_server, structured="text"), REQUEST))
    assert final.format == "text" and final.finish_reason == "end_turn" and "```python" in final.text
    body = anthropic_server.requests[-1].body
    assert "tools" not in body and "fenced block" in body["system"]


@cpython_only
def test_overloaded_event_before_any_text_is_retried(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.fault(Fault.stream_error(after=1), Fault.http(529, "Overloaded"))
    anthropic_server.reply(REPLY)
    sleep = RecordedSleep()
    final = run(complete(make(anthropic_server, sleep=sleep), REQUEST))
    assert json.loads(final.text) == REPLY
    assert len(sleep.delays) == 2 and len(anthropic_server.requests) == 3


@cpython_only
def test_overloaded_event_after_text_is_a_clear_error(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.fault(Fault.stream_error(after=5))
    with pytest.raises(OverloadedError) as caught:
        run(complete(make(anthropic_server), REQUEST))
    assert "overloaded" in caught.value.message.lower() and caught.value.hint


@cpython_only
def test_typed_errors(anthropic_server: FakeAnthropic) -> None:
    with pytest.raises(AuthenticationError) as bad_key:
        run(complete(AnthropicProvider("claude-sonnet-4-5", api_key="nope", base_url=anthropic_server.base_url), REQUEST))
    assert "ANTHROPIC_API_KEY" in bad_key.value.hint

    anthropic_server.models = {"claude-sonnet-4-5"}
    with pytest.raises(ModelNotFoundError):
        run(complete(AnthropicProvider("claude-9", api_key="test-key", base_url=anthropic_server.base_url), REQUEST))


# --- configuration (no network) ----------------------------------------------------------


def test_env_vars_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.invalid")
    replay = ReplayTransport({"exchanges": []})
    p = resolve("anthropic:claude-sonnet-4-5", transport=replay)
    assert p.api_key == "env-key" and p.build_request(REQUEST).url == "http://proxy.invalid/v1/messages"
    p = resolve("anthropic:claude-sonnet-4-5", api_key="arg", base_url="https://api.anthropic.com", transport=replay)
    assert p.build_request(REQUEST).headers["x-api-key"] == "arg"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(MissingApiKeyError) as caught:
        resolve("anthropic:claude-sonnet-4-5", transport=replay)
    assert "ANTHROPIC_API_KEY" in caught.value.hint


def test_browser_mode_header_and_no_key() -> None:
    p = resolve("anthropic:claude-sonnet-4-5", browser=True, transport=ReplayTransport({"exchanges": []}))
    request = p.build_request(REQUEST)
    assert request.headers["anthropic-dangerous-direct-browser-access"] == "true"
    assert "x-api-key" not in request.headers
    assert request.to_json()["auth"] == {"header": "x-api-key"}


def test_output_format_schema_is_strict() -> None:
    replay = ReplayTransport({"exchanges": []})
    p = AnthropicProvider("claude-sonnet-4-5", api_key="k", structured="output_format", transport=replay)
    schema = p.build_request(REQUEST).json()["output_config"]["format"]["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["message", "code"]
